//! DescribeAcls (key 29, KIP-140): the bindings matching one filter, grouped by resource
//! pattern. Needs DESCRIBE on the cluster.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::security::Authorizer;
use crate::security::{AclBindingFilter, AclOperation, Session};

pub fn handle(
    authorizer: &Authorizer,
    session: &Session,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let failed = |error: ResponseError, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !authorizer.cluster(session, AclOperation::Describe) {
        return failed(
            ResponseError::ClusterAuthorizationFailed,
            "not authorized to describe ACLs",
        );
    }
    let filter = match AclBindingFilter::from_wire(
        request.resource_type_filter,
        request.resource_name_filter.as_deref(),
        request.pattern_type_filter,
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
        request.operation,
        request.permission_type,
    ) {
        Ok(filter) => filter,
        Err(invalid) => return failed(ResponseError::InvalidRequest, &invalid.0),
    };
    let mut resources: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for b in authorizer.acls().describe(&filter) {
        resources
            .entry((b.resource_type, b.resource_name.clone(), b.pattern_type))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(&b.principal))
                    .with_host(str_bytes(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = resources
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type.code())
                .with_resource_name(str_bytes(&name))
                .with_pattern_type(pattern_type.code())
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}
