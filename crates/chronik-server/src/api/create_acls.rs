//! CreateAcls (key 30, KIP-140): validate each creation (Kafka's rules: no UNKNOWN/ANY/MATCH
//! values, a resource name, a `Type:name` principal) and add the valid ones in one committed
//! metadata change. Needs ALTER on the cluster.
//!
//! Also home of [`change_acls`], the request flow CreateAcls and DeleteAcls share
//! (authorize, parse each item, apply the valid ones in one change, per-item errors).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::controller::ControllerError;
use crate::security::acl::InvalidAcl;
use crate::security::Authorizer;
use crate::security::{AclBinding, AclOperation, Session};

pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let results = change_acls(
        authorizer,
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
        |valid: Vec<AclBinding>| async move {
            let n = valid.len();
            controller.create_acls(valid).await.map(|()| vec![(); n])
        },
        |()| AclCreationResult::default(),
        |code, message| {
            AclCreationResult::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
        },
    )
    .await;
    CreateAclsResponse::default().with_results(results)
}

/// One result per item of an ACL-changing request (CreateAcls creations, DeleteAcls
/// filters), in request order:
/// - without ALTER on the cluster, every item `failed` with CLUSTER_AUTHORIZATION_FAILED;
/// - an item `parse` refuses fails with INVALID_REQUEST and the reason;
/// - the valid items are applied together by `apply`, one committed metadata change returning
///   one outcome per valid item (a missing one counts as `S::default()`); if it fails, every
///   valid item fails with the controller's error, else each becomes `succeeded(outcome)`.
pub(super) async fn change_acls<I, P: Clone, S: Default, R, F>(
    authorizer: &Authorizer,
    session: &Session,
    items: &[I],
    parse: impl Fn(&I) -> Result<P, InvalidAcl>,
    apply: impl FnOnce(Vec<P>) -> F,
    mut succeeded: impl FnMut(S) -> R,
    failed: impl Fn(i16, &str) -> R,
) -> Vec<R>
where
    F: std::future::Future<Output = Result<Vec<S>, ControllerError>>,
{
    if !authorizer.cluster(session, AclOperation::Alter) {
        return items
            .iter()
            .map(|_| {
                failed(
                    ResponseError::ClusterAuthorizationFailed.code(),
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
    let (mut outcomes, apply_error) = match apply(valid).await {
        Ok(outcomes) => (outcomes.into_iter(), None),
        Err(e) => (Vec::new().into_iter(), Some(e)),
    };
    parsed
        .into_iter()
        .map(|p| match (p, &apply_error) {
            (Err(invalid), _) => failed(ResponseError::InvalidRequest.code(), &invalid.0),
            (Ok(_), Some(e)) => failed(e.code, &e.message),
            (Ok(_), None) => succeeded(outcomes.next().unwrap_or_default()),
        })
        .collect()
}
