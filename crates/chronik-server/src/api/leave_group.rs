//! LeaveGroup (key 13): members leave at once instead of waiting out their session. v0-2 name
//! one member; v3+ a batch, by member id and/or group.instance.id, with a result per member.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use kafka_protocol::ResponseError;

use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub fn handle(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group_id = request.group_id.as_str();
    if !authorizer.group(session, AclOperation::Read, group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Some(code) = groups.not_coordinator(group_id) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    if version < 3 {
        let codes = groups.leave_group(group_id, &[(request.member_id.to_string(), None)]);
        return LeaveGroupResponse::default().with_error_code(codes[0]);
    }
    let members: Vec<(String, Option<String>)> = request
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        })
        .collect();
    let codes = groups.leave_group(group_id, &members);
    let results = request
        .members
        .into_iter()
        .zip(codes)
        .map(|(m, code)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(results)
}
