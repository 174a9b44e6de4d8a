//! Produce (key 0): validate and append each partition's batches, then answer according to acks:
//! acks=0 gets no response at all, unless a partition failed: then the connection is closed, as
//! Kafka does, so the producer learns of it (and refreshes its metadata); acks=1 is answered once each partition's durable end passed
//! the batch (the group-commit fsync, under the default flush policy), acks=all once its high
//! watermark did; a partition that does not get there within timeout_ms gets REQUEST_TIMED_OUT.
//! A partition that fails gets its own error code; it never reports success for unwritten data.

use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::CONSUMER_OFFSETS_TOPIC;
use crate::metadata::MetadataView;
use crate::replica::PartitionError;
use crate::replica::ReplicaManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

/// Upper bound on how long a produce waits for its acks, whatever the client asks.
const MAX_TIMEOUT_MS: i32 = 300_000;

/// What the connection does after a produce.
pub enum Answer {
    Respond(ProduceResponse),
    /// acks=0, every partition written.
    Nothing,
    /// acks=0 and some partition failed.
    CloseConnection,
}

pub async fn handle(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    authorizer: &Authorizer,
    session: &Session,
    request: ProduceRequest,
    version: i16,
) -> Answer {
    let acks = request.acks;
    let timeout = Duration::from_millis(request.timeout_ms.clamp(0, MAX_TIMEOUT_MS) as u64);
    // (topic index, partition index) in the response, with what to wait for.
    let mut pending = Vec::new();
    let mut waits = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let invalid_acks = !matches!(acks, -1..=1);
    let transactional = request.transactional_id.is_some();
    for topic in request.topic_data {
        // v13+ names topics by id.
        let name = if version >= 13 {
            metadata.topic_by_id(topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.name.to_string())
        };
        let known: Result<&str, i16> = match &name {
            _ if invalid_acks => Err(ResponseError::InvalidRequiredAcks.code()),
            // Transactions are not built yet; refuse rather than write outside a transaction.
            _ if transactional => Err(ResponseError::TransactionalIdAuthorizationFailed.code()),
            Some(name) if !authorizer.topic(session, AclOperation::Write, name) => {
                Err(ResponseError::TopicAuthorizationFailed.code())
            }
            // Only the group coordinator writes the offsets topic (Kafka refuses clients too).
            Some(name) if name == CONSUMER_OFFSETS_TOPIC => {
                Err(ResponseError::InvalidTopicException.code())
            }
            Some(name) => Ok(name.as_str()),
            None => Err(ResponseError::UnknownTopicId.code()),
        };
        let topic_index = responses.len();
        let partition_responses = topic
            .partition_data
            .iter()
            .enumerate()
            .map(|(partition_index, p)| {
                let response = PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let result = known.map(|topic| {
                    let records = p.records.clone().unwrap_or_default();
                    let append = || replicas.append(topic, p.index, &records, acks);
                    off_async_workers_if_compressed(&records, append).map_err(|e| match e {
                        // Not hosted because it is offline: say so (KAFKA_STORAGE_ERROR).
                        PartitionError::UnknownTopicOrPartition => replicas.missing(topic, p.index),
                        other => other,
                    })
                });
                match result {
                    Err(code) => response.with_error_code(code),
                    Ok(Err(PartitionError::UnknownTopicOrPartition)) => response
                        .with_error_code(super::not_hosted(metadata, known.unwrap_or(""), p.index)),
                    Ok(Err(refusal)) => refused(response, &refusal, version),
                    Ok(Ok((partition, appended))) => {
                        pending.push((topic_index, partition_index));
                        waits.push((partition, appended.end_offset));
                        response
                            .with_base_offset(appended.base_offset)
                            .with_log_append_time_ms(appended.log_append_time)
                            .with_log_start_offset(appended.log_start_offset)
                    }
                }
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(TopicName(str_bytes(name.as_deref().unwrap_or(""))))
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        let failed = responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|p| p.error_code != 0);
        return match failed {
            true => Answer::CloseConnection,
            false => Answer::Nothing,
        };
    }
    let codes = replicas.wait_for_acks(&waits, acks, timeout).await;
    for ((topic_index, partition_index), code) in pending.into_iter().zip(codes) {
        if code != 0 {
            // Written but not known to be durable: the producer must not take it as acknowledged.
            let partition = &mut responses[topic_index].partition_responses[partition_index];
            partition.error_code = code;
            partition.base_offset = -1;
        }
    }
    let node_endpoints = add_leader_hints(metadata, &session.listener, &mut responses);
    Answer::Respond(
        ProduceResponse::default()
            .with_responses(responses)
            .with_node_endpoints(node_endpoints),
    )
}

/// Runs `append` in place, or, when a batch is compressed (its records are inflated to be
/// checked, up to 64 × max.message.bytes), as blocking work the runtime moves its other tasks
/// away from, so no async worker stalls behind a decompression.
fn off_async_workers_if_compressed<T>(records: &[u8], append: impl FnOnce() -> T) -> T {
    let compressed = chronik_storage::batches(records)
        .any(|b| b.is_ok_and(|(header, _)| header.compression() != 0));
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if compressed && multi_thread {
        tokio::task::block_in_place(append)
    } else {
        append()
    }
}

/// KIP-951: partitions answered NOT_LEADER_OR_FOLLOWER (or FENCED_LEADER_EPOCH) name their
/// current leader, and the response lists those leaders' endpoints (v10+ carries them).
fn add_leader_hints(
    metadata: &MetadataView,
    listener: &str,
    responses: &mut [TopicProduceResponse],
) -> Vec<NodeEndpoint> {
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    for topic in responses.iter_mut() {
        let name = topic.name.0.to_string();
        for partition in topic.partition_responses.iter_mut() {
            if !super::wants_leader_hint(partition.error_code) {
                continue;
            }
            let Some(hint) = super::leader_hint(metadata, listener, &name, partition.index) else {
                continue;
            };
            partition.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(hint.leader))
                .with_leader_epoch(hint.leader_epoch);
            if let Some((id, host, port)) = hint.endpoint {
                if !endpoints.iter().any(|e| e.node_id.0 == id) {
                    endpoints.push(
                        NodeEndpoint::default()
                            .with_node_id(BrokerId(id))
                            .with_host(str_bytes(&host))
                            .with_port(port),
                    );
                }
            }
        }
    }
    endpoints
}

/// A partition's refusal: its error code and, from v8, the message and the records to blame.
fn refused(
    response: PartitionProduceResponse,
    refusal: &PartitionError,
    version: i16,
) -> PartitionProduceResponse {
    let response = response.with_error_code(refusal.code());
    if version < 8 {
        return response;
    }
    let record_errors = match refusal {
        PartitionError::InvalidRecord { record_errors, .. } => record_errors
            .iter()
            .map(|(index, message)| {
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(*index)
                    .with_batch_index_error_message(Some(str_bytes(message)))
            })
            .collect(),
        _ => Vec::new(),
    };
    response
        .with_error_message(Some(str_bytes(&refusal.to_string())))
        .with_record_errors(record_errors)
}
