//! FindCoordinator (key 10): which broker coordinates a group. Key type 0 (group) is answered
//! with the leader of the group's `__consumer_offsets` partition, from the metadata image (the
//! topic is created on first use). Key type 1 (transaction) gets COORDINATOR_NOT_AVAILABLE
//! until the transaction coordinator exists. v4+ batches keys in `coordinator_keys`. Each key
//! needs DESCRIBE on its group (GROUP_AUTHORIZATION_FAILED) or transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as in Kafka.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::controller::CONSUMER_OFFSETS_TOPIC;
use crate::coordinator::GroupCoordinator;
use crate::metadata::MetadataView;
use crate::security::Authorizer;
use crate::security::{AclOperation, ResourceType, Session};

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// The coordinator of `key`: (node id, host, port), or (error code, message). Only an
/// authorized key is looked up (an unauthorized session must not get the offsets topic
/// created).
async fn lookup(
    metadata: &MetadataView,
    groups: &GroupCoordinator,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), (i16, &'static str)> {
    authorize(authorizer, session, key_type, key)?;
    match key_type {
        GROUP => {
            groups
                .ensure_offsets_topic(controller)
                .await
                .map_err(|code| (code, "the offsets topic is not available"))?;
            let image = metadata.image();
            let partition = groups.partition_for(key);
            image
                .partition(CONSUMER_OFFSETS_TOPIC, partition)
                .and_then(|p| image.brokers.get(&p.leader))
                .filter(|b| !b.fenced)
                .and_then(|b| {
                    let (host, port) = b.endpoint(&session.listener)?;
                    Some((b.id, host.to_string(), port))
                })
                .ok_or((
                    ResponseError::CoordinatorNotAvailable.code(),
                    "the group's offsets partition has no live leader",
                ))
        }
        TRANSACTION => Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "transactions are not supported",
        )),
        _ => Err((ResponseError::InvalidRequest.code(), "unknown key type")),
    }
}

/// Kafka checks DESCRIBE on the key before looking the coordinator up.
fn authorize(
    authorizer: &Authorizer,
    session: &Session,
    key_type: i8,
    key: &str,
) -> Result<(), (i16, &'static str)> {
    let (resource_type, error) = match key_type {
        GROUP => (ResourceType::Group, ResponseError::GroupAuthorizationFailed),
        TRANSACTION => (
            ResourceType::TransactionalId,
            ResponseError::TransactionalIdAuthorizationFailed,
        ),
        _ => return Ok(()),
    };
    if authorizer.authorize(session, AclOperation::Describe, resource_type, key) {
        Ok(())
    } else {
        Err((error.code(), "not authorized to describe this key"))
    }
}

pub async fn handle(
    metadata: &MetadataView,
    groups: &GroupCoordinator,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version >= 4 {
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let result = lookup(
                metadata,
                groups,
                controller,
                authorizer,
                session,
                request.key_type,
                key.as_str(),
            )
            .await;
            let c = Coordinator::default().with_key(key);
            coordinators.push(match result {
                Ok((node, host, port)) => c
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(&host))
                    .with_port(port),
                Err((code, message)) => c
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message))),
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    let result = lookup(
        metadata,
        groups,
        controller,
        authorizer,
        session,
        request.key_type,
        request.key.as_str(),
    )
    .await;
    match result {
        Ok((node, host, port)) => response
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(&host))
            .with_port(port),
        Err((code, message)) => {
            let response = response
                .with_error_code(code)
                .with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1);
            if version >= 1 {
                response.with_error_message(Some(str_bytes(message)))
            } else {
                response
            }
        }
    }
}
