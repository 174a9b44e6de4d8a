//! CreateAcls (key 30, KIP-140): validate each creation (Kafka's rules: no UNKNOWN/ANY/MATCH
//! values, a resource name, a `Type:name` principal) and add the valid ones in one persisted
//! change. Needs ALTER on the cluster.
//!
//! Also home of [`change_acls`], the request flow CreateAcls and DeleteAcls share
//! (authorize, parse each item, apply the valid ones in one change, per-item errors).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::security::acl::InvalidAcl;
use crate::security::{AclBinding, AclOperation, AclStore, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let results = change_acls(
        broker,
        session,
        &request.creations,
        |c| {
            AclBinding::from_wire(
                c.resource_type,
                &c.resource_name,
                c.resource_pattern_type,
                &c.principal,
                &c.host,
                c.operation,
                c.permission_type,
            )
        },
        |acls, valid| acls.create(valid).map(|()| vec![(); valid.len()]),
        |()| AclCreationResult::default(),
        |error, message| {
            AclCreationResult::default()
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message)))
        },
    );
    CreateAclsResponse::default().with_results(results)
}

/// One result per item of an ACL-changing request (CreateAcls creations, DeleteAcls
/// filters), in request order:
/// - without ALTER on the cluster, every item `failed` with CLUSTER_AUTHORIZATION_FAILED;
/// - an item `parse` refuses fails with INVALID_REQUEST and the reason;
/// - the valid items are applied together by `apply`, one persisted change returning one
///   outcome per valid item (a missing one counts as `S::default()`); if it fails, every
///   valid item fails with UNKNOWN_SERVER_ERROR, else each becomes `succeeded(outcome)`.
pub(super) fn change_acls<I, P: Clone, S: Default, R>(
    broker: &Broker,
    session: &Session,
    items: &[I],
    parse: impl Fn(&I) -> Result<P, InvalidAcl>,
    apply: impl FnOnce(&AclStore, &[P]) -> anyhow::Result<Vec<S>>,
    mut succeeded: impl FnMut(S) -> R,
    failed: impl Fn(ResponseError, &str) -> R,
) -> Vec<R> {
    if !broker.authorizer.cluster(session, AclOperation::Alter) {
        return items
            .iter()
            .map(|_| {
                failed(
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter ACLs",
                )
            })
            .collect();
    }
    let parsed: Vec<_> = items.iter().map(parse).collect();
    let valid: Vec<P> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let (mut outcomes, apply_error) = match apply(broker.authorizer.acls(), &valid) {
        Ok(outcomes) => (outcomes.into_iter(), None),
        Err(e) => (Vec::new().into_iter(), Some(format!("storing ACLs: {e}"))),
    };
    parsed
        .into_iter()
        .map(|p| match (p, &apply_error) {
            (Err(invalid), _) => failed(ResponseError::InvalidRequest, &invalid.0),
            (Ok(_), Some(message)) => failed(ResponseError::UnknownServerError, message),
            (Ok(_), None) => succeeded(outcomes.next().unwrap_or_default()),
        })
        .collect()
}
