//! Fetch (key 1) for consumers: whole batches from each requested partition up to the high
//! watermark, within partition_max_bytes and max_bytes (at least one batch even if larger),
//! long-polling until min_bytes or max_wait_ms. Only the partition's leader answers
//! (NOT_LEADER_OR_FOLLOWER elsewhere), checking the request's leader epoch (KIP-320).
//!
//! A fetch with a replica id is a follower's (`replica::fetcher` on another broker): it reads
//! up to the log end, its fetch offset tells the leader what the follower holds, and a log
//! that diverged gets DivergingEpoch. It needs CLUSTER_ACTION on the cluster.
//!
//! Fetch sessions (KIP-227) are answered session-less: session id 0 tells the client no session
//! was created, so it keeps sending full requests; an incremental request for a session we
//! never created gets FETCH_SESSION_ID_NOT_FOUND. Topics are named by id from v13.

use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::metadata::MetadataView;
use crate::replica::ReplicaManager;
use crate::replica::{FetchFrom, FetchPartition};
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

/// Upper bound on a long-poll, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

pub async fn handle(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    authorizer: &Authorizer,
    fetch_max_bytes: usize,
    session: &Session,
    request: FetchRequest,
    version: i16,
) -> FetchResponse {
    if request.session_id != 0 || request.session_epoch > 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let from = if replica_id >= 0 {
        if !authorizer.cluster(session, AclOperation::ClusterAction) {
            return FetchResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
                .with_session_id(0);
        }
        FetchFrom::Follower(replica_id)
    } else {
        FetchFrom::Consumer
    };
    let mut wanted = Vec::new();
    let mut layout = Vec::new();
    for topic in &request.topics {
        let name = if version >= 13 {
            metadata.topic_by_id(topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.topic.to_string())
        };
        let partitions: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
        let refused = match &name {
            None => Some(ResponseError::UnknownTopicId.code()),
            Some(name)
                if from == FetchFrom::Consumer
                    && !authorizer.topic(session, AclOperation::Read, name) =>
            {
                Some(ResponseError::TopicAuthorizationFailed.code())
            }
            Some(_) => None,
        };
        if let (Some(name), None) = (&name, refused) {
            wanted.extend(topic.partitions.iter().map(|p| FetchPartition {
                topic: name.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            }));
        }
        layout.push((
            topic.topic.clone(),
            topic.topic_id,
            refused,
            partitions,
            name.clone(),
        ));
    }
    let max_wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let fetched = replicas
        .fetch(
            from,
            &wanted,
            // fetch.max.bytes caps what one response may carry, whatever the client asks.
            (request.max_bytes.max(0) as usize).min(fetch_max_bytes),
            request.min_bytes.max(0) as usize,
            max_wait,
        )
        .await;
    let mut fetched = fetched.into_iter();
    let mut endpoints: Vec<NodeEndpoint> = Vec::new();
    let responses = layout
        .into_iter()
        .map(|(topic, topic_id, refused, partitions, topic_name)| {
            let partitions = partitions
                .into_iter()
                .map(|index| {
                    let data = PartitionData::default().with_partition_index(index);
                    if let Some(code) = refused {
                        return data
                            .with_error_code(code)
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)
                            .with_records(Some(Default::default()));
                    }
                    let f = fetched.next().unwrap_or_default();
                    let code = if f.error_code == ResponseError::UnknownTopicOrPartition.code() {
                        super::not_hosted(metadata, topic_name.as_deref().unwrap_or(""), index)
                    } else {
                        f.error_code
                    };
                    let diverging = f.diverging_epoch.map_or_else(Default::default, |(e, o)| {
                        EpochEndOffset::default().with_epoch(e).with_end_offset(o)
                    });
                    // KIP-951: where the leader is, so the client re-routes at once.
                    let hint = super::wants_leader_hint(code)
                        .then(|| {
                            super::leader_hint(
                                metadata,
                                &session.listener,
                                topic_name.as_deref().unwrap_or(""),
                                index,
                            )
                        })
                        .flatten();
                    let current_leader = hint.as_ref().map_or_else(Default::default, |h| {
                        LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(h.leader))
                            .with_leader_epoch(h.leader_epoch)
                    });
                    if let Some((id, host, port)) = hint.and_then(|h| h.endpoint) {
                        if !endpoints.iter().any(|e| e.node_id.0 == id) {
                            endpoints.push(
                                NodeEndpoint::default()
                                    .with_node_id(BrokerId(id))
                                    .with_host(str_bytes(&host))
                                    .with_port(port),
                            );
                        }
                    }
                    data.with_error_code(code)
                        .with_current_leader(current_leader)
                        .with_diverging_epoch(diverging)
                        .with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.high_watermark)
                        .with_log_start_offset(f.log_start_offset)
                        .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                        // Never null: librdkafka rejects a MessageSetSize of -1.
                        .with_records(Some(f.records))
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(TopicName(str_bytes(topic.as_str())))
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
        .with_node_endpoints(endpoints)
}
