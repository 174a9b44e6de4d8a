//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3) or the first offset at or
//! after a timestamp, per partition. Timestamp lookups may inflate a compressed batch, so they
//! run on the blocking pool, after the partition's lock is released (`Partition::offset_for_timestamp`).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use crate::metadata::MetadataView;
use crate::replica::PartitionError;
use crate::replica::ReplicaManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    authorizer: &Authorizer,
    session: &Session,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let authorized = authorizer.topic(session, AclOperation::Describe, topic.name.as_str());
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let response = async {
                let response = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1);
                if !authorized {
                    return response
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                }
                let partition =
                    match replicas.online_partition(topic.name.as_str(), p.partition_index) {
                        Ok(partition) => partition,
                        Err(PartitionError::UnknownTopicOrPartition) => {
                            return response.with_error_code(super::not_hosted(
                                metadata,
                                topic.name.as_str(),
                                p.partition_index,
                            ))
                        }
                        Err(e) => return response.with_error_code(e.code()),
                    };
                // Only the leader answers: a follower's high watermark lags the leader's
                // (and the request's epoch, from v4, is checked as Kafka does).
                let request_epoch = if version >= 4 {
                    p.current_leader_epoch
                } else {
                    -1
                };
                if let Err(e) = partition.check_leader(request_epoch) {
                    return response.with_error_code(e.code());
                }
                // A new (or restarted) leader whose high watermark has not yet reached the
                // start of its epoch would answer offsets that go back: retriable, as in
                // Kafka (KAFKA-2334), until its followers have caught up.
                if partition.high_watermark() < partition.leader_epoch_start_offset() {
                    return response.with_error_code(ResponseError::OffsetNotAvailable.code());
                }
                // The field exists from v4; older versions must leave it at its default.
                let epoch = if version >= 4 {
                    partition.leader_epoch()
                } else {
                    -1
                };
                let found = match p.timestamp {
                    LATEST => Ok(Some((partition.high_watermark(), -1))),
                    EARLIEST => Ok(Some((partition.log_start_offset(), -1))),
                    MAX_TIMESTAMP => {
                        let partition = partition.clone();
                        off_runtime(move || Ok(partition.max_timestamp_offset())).await
                    }
                    ts if ts >= 0 => {
                        let partition = partition.clone();
                        off_runtime(move || partition.offset_for_timestamp(ts)).await
                    }
                    // -4 (earliest local) and -5 (latest tiered) equal earliest/latest without tiering.
                    -4 => Ok(Some((partition.log_start_offset(), -1))),
                    -5 => Ok(Some((partition.high_watermark(), -1))),
                    _ => Err(ResponseError::InvalidRequest.code()),
                };
                match found {
                    Ok(Some((offset, timestamp))) => response
                        .with_offset(offset)
                        .with_timestamp(timestamp)
                        .with_leader_epoch(epoch),
                    // No record at or after the timestamp: offset -1, as Kafka answers.
                    Ok(None) => response.with_leader_epoch(epoch),
                    Err(code) => response.with_error_code(code),
                }
            }
            .await;
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// Runs a lookup that may decompress on the blocking pool, never on a runtime thread.
async fn off_runtime(
    lookup: impl FnOnce() -> Result<Option<(i64, i64)>, PartitionError> + Send + 'static,
) -> Result<Option<(i64, i64)>, i16> {
    match tokio::task::spawn_blocking(lookup).await {
        Ok(found) => found.map_err(|e| e.code()),
        Err(_) => Err(ResponseError::UnknownServerError.code()),
    }
}
