//! FindCoordinator (key 10): which broker coordinates a group. Key type 0 (group) is answered
//! with the leader of the group's `__consumer_offsets` partition (this broker on a single node;
//! the topic is created on first use). Key type 1 (transaction) gets COORDINATOR_NOT_AVAILABLE
//! until the transaction coordinator exists. v4+ batches keys in `coordinator_keys`. Each key
//! needs DESCRIBE on its group (GROUP_AUTHORIZATION_FAILED) or transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as in Kafka.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::security::{AclOperation, ResourceType, Session};

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// (error code, message) or this broker as the coordinator of `key`.
fn lookup(broker: &Broker, key_type: i8) -> Result<(), (i16, &'static str)> {
    match key_type {
        GROUP => broker
            .groups
            .ensure_offsets_topic(&broker.controller)
            .map_err(|code| (code, "the offsets topic is not available")),
        TRANSACTION => Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "transactions are not supported",
        )),
        _ => Err((ResponseError::InvalidRequest.code(), "unknown key type")),
    }
}

/// Kafka checks DESCRIBE on the key before looking the coordinator up.
fn authorize(
    broker: &Broker,
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
    if broker
        .authorizer
        .authorize(session, AclOperation::Describe, resource_type, key)
    {
        Ok(())
    } else {
        Err((error.code(), "not authorized to describe this key"))
    }
}

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = broker.advertised.clone();
    let node = BrokerId(broker.config.node_id);
    // Looked up once, and only for an authorized key (an unauthorized session must not get
    // the offsets topic created).
    let looked_up = std::cell::OnceCell::new();
    let result = || *looked_up.get_or_init(|| lookup(broker, request.key_type));
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let result = authorize(broker, session, request.key_type, key.as_str())
                    .and_then(|()| result());
                let c = Coordinator::default().with_key(key);
                match result {
                    Ok(()) => c
                        .with_node_id(node)
                        .with_host(str_bytes(&host))
                        .with_port(port),
                    Err((code, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(str_bytes(""))
                        .with_port(-1)
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    match authorize(broker, session, request.key_type, request.key.as_str()).and_then(|()| result())
    {
        Ok(()) => response
            .with_node_id(node)
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
