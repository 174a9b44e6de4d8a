//! OffsetCommit (key 8): stores a group's consumed positions in `__consumer_offsets`; answered
//! once the records are durable. Membership and generation are checked by the coordinator.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::ResponseError;

use crate::controller::Controller;
use crate::coordinator::group_coordinator::OffsetToCommit;
use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub async fn handle(
    groups: &GroupCoordinator,
    controller: &Controller,
    authorizer: &Authorizer,
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
    } else if !authorizer.group(session, AclOperation::Read, request.group_id.as_str()) {
        Err(ResponseError::GroupAuthorizationFailed.code())
    } else if request
        .topics
        .iter()
        .any(|t| !authorizer.topic(session, AclOperation::Read, t.name.as_str()))
    {
        // Kafka refuses only the unauthorized topics' partitions; refusing the whole commit
        // keeps it atomic and never stores an offset for a topic the member may not read.
        Err(ResponseError::TopicAuthorizationFailed.code())
    } else if let Err(code) = groups.ensure_offsets_topic(controller).await {
        Err(code)
    } else if let Some(code) = groups.not_coordinator(request.group_id.as_str()) {
        Err(code)
    } else {
        groups
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
