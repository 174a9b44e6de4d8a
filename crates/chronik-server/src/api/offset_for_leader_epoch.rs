//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, so a consumer or follower can
//! detect that its log diverged from the leader's and truncate. As in Kafka (KIP-320),
//! CLUSTER_ACTION on the cluster (replicas) covers every topic; otherwise each topic needs
//! DESCRIBE, else its partitions get TOPIC_AUTHORIZATION_FAILED.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use crate::replica::ReplicaManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub fn handle(
    replicas: &ReplicaManager,
    authorizer: &Authorizer,
    session: &Session,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let cluster_action = authorizer.cluster(session, AclOperation::ClusterAction);
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let authorized = cluster_action
                || authorizer.topic(session, AclOperation::Describe, topic.topic.as_str());
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !authorized {
                        return result
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let partition =
                        match replicas.online_partition(topic.topic.as_str(), p.partition) {
                            Ok(partition) => partition,
                            Err(e) => return result.with_error_code(e.code()),
                        };
                    // Leader only, at the request's epoch (KIP-320); -1 skips the epoch check.
                    if let Err(e) = partition.check_leader(p.current_leader_epoch.max(-1)) {
                        return result.with_error_code(e.code());
                    }
                    let (epoch, end_offset) = partition.end_offset_for_epoch(p.leader_epoch);
                    result.with_leader_epoch(epoch).with_end_offset(end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
