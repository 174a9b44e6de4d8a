//! DeleteAcls (key 31, KIP-140): remove every binding matched by any of the filters, in one
//! committed metadata change, and report per filter the bindings it matched. Needs ALTER on the cluster.
//! The request flow (authorize, parse, apply, per-item errors) is shared with CreateAcls:
//! `create_acls::change_acls`.

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::create_acls::change_acls;
use super::str_bytes;
use crate::controller::Controller;
use crate::security::Authorizer;
use crate::security::{AclBinding, AclBindingFilter, Session};

pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let results = change_acls(
        authorizer,
        session,
        &request.filters,
        |f| {
            AclBindingFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        },
        |valid: Vec<AclBindingFilter>| controller.delete_acls(valid),
        |matched: Vec<AclBinding>| {
            let acls = matched
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
        },
        |code, message| {
            DeleteAclsFilterResult::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message)))
        },
    )
    .await;
    DeleteAclsResponse::default().with_filter_results(results)
}
