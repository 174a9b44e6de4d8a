//! JoinGroup (key 11): a member joins (or rejoins) a group; answered when the rebalance
//! completes (a delayed operation in the coordinator), or at once for errors, KIP-394's
//! MEMBER_ID_REQUIRED and KIP-345 static-member replacement.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::coordinator::group::{JoinOutcome, JoinRequest};
use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub async fn handle(
    groups: &GroupCoordinator,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: JoinGroupRequest,
    version: i16,
    client_id: &str,
) -> JoinGroupResponse {
    let group_id = request.group_id.to_string();
    let error = |e: ResponseError| JoinOutcome {
        error_code: e.code(),
        generation_id: -1,
        member_id: request.member_id.to_string(),
        ..Default::default()
    };
    let outcome = if group_id.is_empty() {
        error(ResponseError::InvalidGroupId)
    } else if !authorizer.group(session, AclOperation::Read, &group_id) {
        error(ResponseError::GroupAuthorizationFailed)
    } else if !groups.session_timeout_valid(request.session_timeout_ms) {
        error(ResponseError::InvalidSessionTimeout)
    } else if let Err(code) = groups.ensure_offsets_topic(controller).await {
        JoinOutcome {
            error_code: code,
            ..error(ResponseError::CoordinatorNotAvailable)
        }
    } else if let Some(code) = groups.not_coordinator(&group_id) {
        JoinOutcome {
            error_code: code,
            ..error(ResponseError::NotCoordinator)
        }
    } else {
        let req = JoinRequest {
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: client_id.to_string(),
            client_host: format!("/{}", session.host),
            session_timeout_ms: request.session_timeout_ms,
            // v0 has no rebalance timeout: it equals the session timeout.
            rebalance_timeout_ms: if version >= 1 {
                request.rebalance_timeout_ms
            } else {
                request.session_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            require_known_member_id: version >= 4,
        };
        groups.join_group(&group_id, req).await
    };
    response(outcome, version)
}

/// Builds the wire response, setting only fields `version` has.
pub(super) fn response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|m| {
            let member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
            } else {
                member
            }
        })
        .collect();
    let mut response = JoinGroupResponse::default()
        .with_error_code(outcome.error_code)
        .with_generation_id(outcome.generation_id)
        .with_leader(str_bytes(&outcome.leader))
        .with_member_id(str_bytes(&outcome.member_id))
        .with_members(members);
    if version >= 7 {
        response = response
            .with_protocol_type(outcome.protocol_type.as_deref().map(str_bytes))
            .with_protocol_name(outcome.protocol_name.as_deref().map(str_bytes));
    } else {
        response = response.with_protocol_name(Some(str_bytes(
            outcome.protocol_name.as_deref().unwrap_or_default(),
        )));
    }
    if version >= 9 {
        response = response.with_skip_assignment(outcome.skip_assignment);
    }
    response
}
