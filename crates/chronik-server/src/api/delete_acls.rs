//! DeleteAcls (key 31, KIP-140): remove every binding matched by any of the filters, in one
//! persisted change, and report per filter the bindings it matched. Needs ALTER on the cluster.

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::security::{AclBindingFilter, AclOperation, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |error: ResponseError, message: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !broker.authorizer.cluster(session, AclOperation::Alter) {
        let results = request
            .filters
            .iter()
            .map(|_| {
                failed(
                    ResponseError::ClusterAuthorizationFailed,
                    "not authorized to alter ACLs",
                )
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let parsed: Vec<_> = request
        .filters
        .iter()
        .map(|f| {
            AclBindingFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBindingFilter> = parsed
        .iter()
        .filter_map(|p| p.as_ref().ok().cloned())
        .collect();
    let deleted = broker.authorizer.acls().delete(&valid);
    let mut matched = match &deleted {
        Ok(matched) => matched.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = parsed
        .into_iter()
        .map(|p| match (p, &deleted) {
            (Err(invalid), _) => failed(ResponseError::InvalidRequest, &invalid.0),
            (Ok(_), Err(e)) => failed(
                ResponseError::UnknownServerError,
                &format!("storing ACLs: {e}"),
            ),
            (Ok(_), Ok(_)) => {
                let acls = matched
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(str_bytes(&b.resource_name))
                            .with_pattern_type(b.pattern_type.code())
                            .with_principal(str_bytes(&b.principal))
                            .with_host(str_bytes(&b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(acls)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
