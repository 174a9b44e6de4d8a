//! CreateAcls (key 30, KIP-140): validate each creation (Kafka's rules: no UNKNOWN/ANY/MATCH
//! values, a resource name, a `Type:name` principal) and add the valid ones in one persisted
//! change. Needs ALTER on the cluster.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::security::{AclBinding, AclOperation, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let failed = |error: ResponseError, message: &str| {
        AclCreationResult::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !broker.authorizer.cluster(session, AclOperation::Alter) {
        let results = request
            .creations
            .iter()
            .map(|_| {
                failed(
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter ACLs",
                )
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    let parsed: Vec<_> = request
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_wire(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let stored = broker.authorizer.acls().create(&valid);
    let results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Err(invalid), _) => failed(ResponseError::InvalidRequest, &invalid.0),
            (Ok(_), Err(e)) => failed(
                ResponseError::UnknownServerError,
                &format!("storing ACLs: {e}"),
            ),
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}
