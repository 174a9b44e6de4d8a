//! ListGroups (key 16): every group this broker coordinates; v4+ filters by state, v5+ by type
//! (all groups here are "classic"). As in Kafka, DESCRIBE on the cluster lists every group;
//! otherwise only the groups the session may DESCRIBE are listed.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub fn handle(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let all = authorizer.cluster(session, AclOperation::Describe);
    let groups = groups
        .list_groups()
        .into_iter()
        .filter(|g| all || authorizer.group(session, AclOperation::Describe, &g.group_id))
        .filter(|g| {
            request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(g.state))
        })
        .filter(|_| {
            request.types_filter.is_empty()
                || request
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case("classic"))
        })
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                listed = listed.with_group_state(str_bytes(g.state));
            }
            if version >= 5 {
                listed = listed.with_group_type(str_bytes("classic"));
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
