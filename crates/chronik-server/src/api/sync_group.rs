//! SyncGroup (key 14): the leader hands out assignments; every member waits for its own.
//! Answered when the leader's SyncGroup arrives (a delayed operation in the coordinator).

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::coordinator::group::SyncOutcome;
use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub async fn handle(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    if !authorizer.group(session, AclOperation::Read, request.group_id.as_str()) {
        let refused = SyncOutcome {
            error_code: kafka_protocol::ResponseError::GroupAuthorizationFailed.code(),
            ..Default::default()
        };
        return response(refused, version);
    }
    if let Some(code) = groups.not_coordinator(request.group_id.as_str()) {
        let refused = SyncOutcome {
            error_code: code,
            ..Default::default()
        };
        return response(refused, version);
    }
    let assignments = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let outcome = groups
        .sync_group(
            request.group_id.as_str(),
            request.member_id.as_str(),
            request.group_instance_id.as_deref(),
            request.generation_id,
            request.protocol_type.as_deref(),
            request.protocol_name.as_deref(),
            assignments,
        )
        .await;
    response(outcome, version)
}

pub(super) fn response(outcome: SyncOutcome, version: i16) -> SyncGroupResponse {
    let response = SyncGroupResponse::default()
        .with_error_code(outcome.error_code)
        .with_assignment(outcome.assignment);
    if version >= 5 {
        response
            .with_protocol_type(outcome.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(outcome.protocol_name.as_deref().map(str_bytes))
    } else {
        response
    }
}
