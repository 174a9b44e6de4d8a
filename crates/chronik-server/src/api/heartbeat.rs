//! Heartbeat (key 12): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use kafka_protocol::ResponseError;

use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub fn handle(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    if !authorizer.group(session, AclOperation::Read, request.group_id.as_str()) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Some(code) = groups.not_coordinator(request.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(code);
    }
    let code = groups.heartbeat(
        request.group_id.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code)
}
