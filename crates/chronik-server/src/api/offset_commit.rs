//! OffsetCommit (key 8): stores a group's consumed positions in `__consumer_offsets`; answered
//! once the records are durable. Membership and generation are checked by the coordinator.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::coordinator::group_coordinator::OffsetToCommit;
use crate::security::{AclOperation, Session};

pub async fn handle(
    broker: &Broker,
    session: &Session,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let offsets: Vec<OffsetToCommit> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetToCommit {
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let result = if request.group_id.is_empty() {
        Err(ResponseError::InvalidGroupId.code())
    } else if !broker
        .authorizer
        .group(session, AclOperation::Read, request.group_id.as_str())
    {
        Err(ResponseError::GroupAuthorizationFailed.code())
    } else if request.topics.iter().any(|t| {
        !broker
            .authorizer
            .topic(session, AclOperation::Read, t.name.as_str())
    }) {
        // Kafka refuses only the unauthorized topics' partitions; refusing the whole commit
        // keeps it atomic and never stores an offset for a topic the member may not read.
        Err(ResponseError::TopicAuthorizationFailed.code())
    } else if let Err(code) = broker.groups.ensure_offsets_topic(&broker.controller).await {
        Err(code)
    } else if let Some(code) = broker.groups.not_coordinator(request.group_id.as_str()) {
        Err(code)
    } else {
        broker
            .groups
            .commit_offsets(
                request.group_id.as_str(),
                request.member_id.as_str(),
                request.group_instance_id.as_deref(),
                request.generation_id_or_member_epoch,
                offsets,
            )
            .await
    };
    let mut codes = match result {
        Ok(codes) => codes.into_iter(),
        Err(code) => {
            let n = request.topics.iter().map(|t| t.partitions.len()).sum();
            vec![code; n].into_iter()
        }
    };
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(codes.next().unwrap_or_default())
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
