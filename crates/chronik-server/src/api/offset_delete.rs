//! OffsetDelete (key 47): deletes committed offsets of partitions a group is not subscribed to.
//! Needs DELETE on the group (else GROUP_AUTHORIZATION_FAILED for the request) and READ on
//! each topic (else TOPIC_AUTHORIZATION_FAILED for its partitions), as in Kafka.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;

use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub fn handle(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = request.group_id.as_str();
    if !authorizer.group(session, AclOperation::Delete, group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let authorized: Vec<bool> = request
        .topics
        .iter()
        .map(|t| authorizer.topic(session, AclOperation::Read, t.name.as_str()))
        .collect();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .zip(&authorized)
        .filter(|(_, ok)| **ok)
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let codes = match groups.delete_offsets(group_id, &partitions) {
        Ok(codes) => codes,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .zip(authorized)
        .map(|(t, ok)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if ok {
                        codes.next().unwrap_or_default()
                    } else {
                        ResponseError::TopicAuthorizationFailed.code()
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
