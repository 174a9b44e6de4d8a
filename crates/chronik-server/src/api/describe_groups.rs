//! DescribeGroups (key 15): state, protocol and members of groups. An unknown group is reported
//! as Dead with no error, as Kafka does. A group the session may not DESCRIBE is
//! GROUP_AUTHORIZATION_FAILED; v3+ clients may ask for the session's authorized operations on
//! each group.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, ResourceType, Session};

pub fn handle(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let include_ops = request.include_authorized_operations && version >= 3;
    let groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            if !authorizer.group(session, AclOperation::Describe, group_id.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(group_id)
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let ops = if include_ops {
                authorizer.authorized_operations(session, ResourceType::Group, group_id.as_str())
            } else {
                i32::MIN
            };
            let d = groups.describe_group(group_id.as_str());
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    let member = DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment);
                    if version >= 4 {
                        member.with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
                    } else {
                        member
                    }
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(str_bytes(d.state))
                .with_protocol_type(str_bytes(&d.protocol_type))
                .with_protocol_data(str_bytes(&d.protocol_data))
                .with_members(members)
                .with_authorized_operations(ops)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
