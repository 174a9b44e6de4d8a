//! The API layer: one handler per Kafka API key, and the single dispatch point `handle_frame`.
//!
//! A handler decodes nothing itself (kafka-protocol does), checks what the request asks against
//! the broker's state, calls the layer below (controller, replica manager, coordinators) and
//! builds the response. It never touches files. Before it acts on a resource it asks
//! the `Authorizer` whether the request's `Session` may (a refusal is that resource's
//! *_AUTHORIZATION_FAILED code). Per-partition failures become per-partition
//! error codes; only a frame that cannot be understood closes the connection, as Kafka does.
//!
//! `dispatch` is the only code here that sees the whole `Broker`; each handler takes just the
//! services it uses (`MetadataView`, `ReplicaManager`, `GroupCoordinator`, `Controller`,
//! `Authorizer`, config), so it can be tested with those alone.

#[cfg(test)]
mod acl_handler_tests;
mod alter_client_quotas;
mod alter_partition_reassignments;
mod api_versions;
#[cfg(test)]
mod authorized_ops_tests;
#[cfg(test)]
mod config_api_tests;
mod configs;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_groups;
mod describe_log_dirs;
mod describe_quorum;
mod describe_topic_partitions;
mod elect_leaders;
mod fetch;
mod find_coordinator;
#[cfg(test)]
mod group_api_tests;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
pub mod sasl;
#[cfg(test)]
mod scram_api_tests;
mod sync_group;
#[cfg(test)]
mod test_support;
mod throttle;
mod user_scram_credentials;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use tracing::{debug, error, trace};

use crate::broker::Broker;
use crate::metadata::MetadataView;
use crate::quota::{BusyTime, PollTimed};
use crate::security::Session;

/// What the connection does with a request.
pub enum Outcome {
    /// Write this frame (size prefix included).
    Respond(Bytes),
    /// acks=0 produce that succeeded: Kafka sends nothing back.
    NoResponse,
    /// Unparseable or unsupported request: close the connection, as Kafka does.
    Close(&'static str),
    /// Over a client quota: write the frame (if any) only after the delay, and read nothing
    /// more from the connection meanwhile (Kafka mutes the channel).
    Throttled(Option<Bytes>, std::time::Duration),
}

/// The versions this broker implements, per API key. ApiVersions advertises exactly these.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    let range = key.valid_versions();
    let implemented = matches!(
        key,
        ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::Metadata
            | ApiKey::ApiVersions
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::DeleteRecords
            | ApiKey::InitProducerId
            | ApiKey::OffsetForLeaderEpoch
            | ApiKey::DescribeConfigs
            | ApiKey::AlterConfigs
            | ApiKey::CreatePartitions
            | ApiKey::IncrementalAlterConfigs
            | ApiKey::DescribeCluster
            | ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::DescribeGroups
            | ApiKey::ListGroups
            | ApiKey::DeleteGroups
            | ApiKey::OffsetDelete
            | ApiKey::CreateAcls
            | ApiKey::DescribeAcls
            | ApiKey::DeleteAcls
            | ApiKey::DescribeQuorum
            | ApiKey::ListConfigResources
            | ApiKey::DescribeTopicPartitions
            | ApiKey::ElectLeaders
            | ApiKey::AlterPartitionReassignments
            | ApiKey::ListPartitionReassignments
            | ApiKey::DescribeUserScramCredentials
            | ApiKey::AlterUserScramCredentials
            | ApiKey::DescribeClientQuotas
            | ApiKey::AlterClientQuotas
            | ApiKey::DescribeLogDirs
            | ApiKey::SaslHandshake
            | ApiKey::SaslAuthenticate
    );
    // `valid_versions` includes response-only versions for a few keys (OffsetCommit and
    // OffsetFetch v10, InitProducerId v6) whose requests kafka-protocol cannot decode.
    let max = match key {
        ApiKey::OffsetCommit => range.max.min(9),
        ApiKey::OffsetFetch => range.max.min(9),
        ApiKey::InitProducerId => range.max.min(5),
        _ => range.max,
    };
    implemented.then_some((range.min, max))
}

/// Decodes one request frame, runs its handler and encodes the response frame.
pub async fn handle_frame(broker: Arc<Broker>, session: Arc<Session>, frame: Bytes) -> Outcome {
    // A handler bug must cost one connection, not the broker. Shared state sits behind
    // non-poisoning locks whose holders never await, so unwinding cannot leave a lock held.
    let busy = Arc::new(BusyTime::default());
    let handling = std::panic::AssertUnwindSafe(dispatch(broker, &session, frame, &busy));
    match PollTimed::new(handling.catch_unwind(), busy.clone()).await {
        Ok(outcome) => outcome,
        Err(_) => {
            error!("request handler panicked; closing the connection");
            Outcome::Close("handler panicked")
        }
    }
}

async fn dispatch(
    broker: Arc<Broker>,
    session: &Session,
    frame: Bytes,
    busy: &BusyTime,
) -> Outcome {
    let request_size = frame.len();
    if frame.len() < 8 {
        return Outcome::Close("frame shorter than a request header");
    }
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        debug!(api_key_raw, "unknown API key");
        return Outcome::Close("unknown API key");
    };
    let Some((min, max)) = supported_versions(api_key) else {
        debug!(?api_key, "API not implemented");
        return Outcome::Close("API not implemented");
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer a too-new ApiVersions with v0 + UNSUPPORTED_VERSION + our list.
            return respond(
                correlation_id,
                ApiKey::ApiVersions,
                0,
                ResponseKind::ApiVersions(api_versions::unsupported_version_response()),
            );
        }
        debug!(?api_key, version, "unsupported version");
        return Outcome::Close("unsupported API version");
    }
    let mut body = frame;
    let header = match RequestHeader::decode(&mut body, api_key.request_header_version(version)) {
        Ok(header) => header,
        Err(e) => {
            debug!(?api_key, error = %e, "malformed request header");
            return Outcome::Close("malformed request header");
        }
    };
    let request = match RequestKind::decode(api_key, &mut body, version) {
        Ok(request) => request,
        Err(e) => {
            debug!(?api_key, version, error = %e, "malformed request body");
            return Outcome::Close("malformed request body");
        }
    };
    trace!(?api_key, version, correlation_id, "request");
    // A follower's fetch is replication, not a client: no client quota applies.
    let exempt = matches!(&request, RequestKind::Fetch(f)
        if f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0);
    let response = match request {
        RequestKind::ApiVersions(req) => {
            Some(ResponseKind::ApiVersions(api_versions::handle(&req)))
        }
        RequestKind::Metadata(req) => Some(ResponseKind::Metadata(
            metadata::handle(
                &broker.metadata,
                &broker.replicas,
                &broker.controller,
                &broker.config,
                &broker.authorizer,
                session,
                req,
                version,
            )
            .await,
        )),
        RequestKind::Produce(req) => match produce::handle(
            &broker.metadata,
            &broker.replicas,
            &broker.authorizer,
            session,
            req,
            version,
        )
        .await
        {
            produce::Answer::Respond(response) => Some(ResponseKind::Produce(response)),
            produce::Answer::Nothing => None,
            produce::Answer::CloseConnection => return Outcome::Close("acks=0 produce failed"),
        },
        RequestKind::Fetch(req) => Some(ResponseKind::Fetch(
            fetch::handle(
                &broker.metadata,
                &broker.replicas,
                &broker.authorizer,
                broker.config.fetch_max_bytes,
                session,
                req,
                version,
            )
            .await,
        )),
        RequestKind::ListOffsets(req) => Some(ResponseKind::ListOffsets(
            list_offsets::handle(
                &broker.metadata,
                &broker.replicas,
                &broker.authorizer,
                session,
                req,
                version,
            )
            .await,
        )),
        RequestKind::OffsetForLeaderEpoch(req) => Some(ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(&broker.replicas, &broker.authorizer, session, req),
        )),
        RequestKind::CreateTopics(req) => Some(ResponseKind::CreateTopics(
            create_topics::handle(
                &broker.replicas,
                &broker.controller,
                &broker.authorizer,
                session,
                req,
                version,
            )
            .await,
        )),
        RequestKind::DeleteTopics(req) => Some(ResponseKind::DeleteTopics(
            delete_topics::handle(
                &broker.metadata,
                &broker.controller,
                &broker.authorizer,
                session,
                req,
            )
            .await,
        )),
        RequestKind::CreatePartitions(req) => Some(ResponseKind::CreatePartitions(
            create_partitions::handle(&broker.controller, &broker.authorizer, session, req).await,
        )),
        RequestKind::ElectLeaders(req) => Some(ResponseKind::ElectLeaders(
            elect_leaders::handle(
                &broker.controller,
                &broker.authorizer,
                session,
                req,
                version,
            )
            .await,
        )),
        RequestKind::AlterPartitionReassignments(req) => {
            Some(ResponseKind::AlterPartitionReassignments(
                alter_partition_reassignments::handle(
                    &broker.controller,
                    &broker.authorizer,
                    session,
                    req,
                    version,
                )
                .await,
            ))
        }
        RequestKind::ListPartitionReassignments(req) => {
            Some(ResponseKind::ListPartitionReassignments(
                list_partition_reassignments::handle(
                    &broker.controller,
                    &broker.authorizer,
                    session,
                    req,
                )
                .await,
            ))
        }
        RequestKind::DescribeConfigs(req) => {
            Some(ResponseKind::DescribeConfigs(configs::describe(
                &broker.metadata,
                &broker.replicas,
                &broker.config,
                &broker.authorizer,
                session,
                req,
                version,
            )))
        }
        RequestKind::AlterConfigs(req) => Some(ResponseKind::AlterConfigs(
            configs::alter(&broker.controller, &broker.authorizer, session, req).await,
        )),
        RequestKind::IncrementalAlterConfigs(req) => Some(ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter(
                &broker.metadata,
                &broker.replicas,
                &broker.controller,
                &broker.config,
                &broker.authorizer,
                session,
                req,
            )
            .await,
        )),
        RequestKind::DescribeCluster(req) => {
            Some(ResponseKind::DescribeCluster(describe_cluster::handle(
                &broker.metadata,
                &broker.authorizer,
                metadata::controller_id(&broker.controller),
                session,
                req,
                version,
            )))
        }
        RequestKind::DeleteRecords(req) => Some(ResponseKind::DeleteRecords(
            delete_records::handle(&broker.replicas, &broker.authorizer, session, req),
        )),
        RequestKind::InitProducerId(req) => Some(ResponseKind::InitProducerId(
            init_producer_id::handle(
                &broker.producer_ids,
                &broker.controller,
                &broker.authorizer,
                session,
                req,
            )
            .await,
        )),
        RequestKind::FindCoordinator(req) => Some(ResponseKind::FindCoordinator(
            find_coordinator::handle(
                &broker.metadata,
                &broker.groups,
                &broker.controller,
                &broker.authorizer,
                session,
                req,
                version,
            )
            .await,
        )),
        RequestKind::JoinGroup(req) => {
            let client_id = header.client_id.as_deref().unwrap_or_default();
            Some(ResponseKind::JoinGroup(
                join_group::handle(
                    &broker.groups,
                    &broker.controller,
                    &broker.authorizer,
                    session,
                    req,
                    version,
                    client_id,
                )
                .await,
            ))
        }
        RequestKind::SyncGroup(req) => Some(ResponseKind::SyncGroup(
            sync_group::handle(&broker.groups, &broker.authorizer, session, req, version).await,
        )),
        RequestKind::Heartbeat(req) => Some(ResponseKind::Heartbeat(heartbeat::handle(
            &broker.groups,
            &broker.authorizer,
            session,
            req,
        ))),
        RequestKind::LeaveGroup(req) => Some(ResponseKind::LeaveGroup(leave_group::handle(
            &broker.groups,
            &broker.authorizer,
            session,
            req,
            version,
        ))),
        RequestKind::OffsetCommit(req) => Some(ResponseKind::OffsetCommit(
            offset_commit::handle(
                &broker.groups,
                &broker.controller,
                &broker.authorizer,
                session,
                req,
            )
            .await,
        )),
        RequestKind::OffsetFetch(req) => Some(ResponseKind::OffsetFetch(offset_fetch::handle(
            &broker.groups,
            &broker.authorizer,
            session,
            req,
            version,
        ))),
        RequestKind::DescribeGroups(req) => Some(ResponseKind::DescribeGroups(
            describe_groups::handle(&broker.groups, &broker.authorizer, session, req, version),
        )),
        RequestKind::ListGroups(req) => Some(ResponseKind::ListGroups(list_groups::handle(
            &broker.groups,
            &broker.authorizer,
            session,
            req,
            version,
        ))),
        RequestKind::DeleteGroups(req) => Some(ResponseKind::DeleteGroups(delete_groups::handle(
            &broker.groups,
            &broker.authorizer,
            session,
            req,
        ))),
        RequestKind::OffsetDelete(req) => Some(ResponseKind::OffsetDelete(offset_delete::handle(
            &broker.groups,
            &broker.authorizer,
            session,
            req,
        ))),
        RequestKind::CreateAcls(req) => Some(ResponseKind::CreateAcls(
            create_acls::handle(&broker.controller, &broker.authorizer, session, req).await,
        )),
        RequestKind::DescribeAcls(req) => Some(ResponseKind::DescribeAcls(describe_acls::handle(
            &broker.authorizer,
            session,
            req,
        ))),
        RequestKind::DeleteAcls(req) => Some(ResponseKind::DeleteAcls(
            delete_acls::handle(&broker.controller, &broker.authorizer, session, req).await,
        )),
        RequestKind::DescribeQuorum(req) => Some(ResponseKind::DescribeQuorum(
            describe_quorum::handle(
                &broker.controller,
                &broker.authorizer,
                session,
                req,
                version,
            )
            .await,
        )),
        RequestKind::ListConfigResources(req) => Some(ResponseKind::ListConfigResources(
            list_config_resources::handle(
                &broker.metadata,
                &broker.authorizer,
                session,
                req,
                version,
            ),
        )),
        RequestKind::DescribeUserScramCredentials(req) => Some(
            ResponseKind::DescribeUserScramCredentials(user_scram_credentials::describe(
                &broker.metadata,
                &broker.authorizer,
                session,
                req,
            )),
        ),
        RequestKind::AlterUserScramCredentials(req) => {
            Some(ResponseKind::AlterUserScramCredentials(
                user_scram_credentials::alter(
                    &broker.metadata,
                    &broker.controller,
                    &broker.authorizer,
                    session,
                    req,
                )
                .await,
            ))
        }
        RequestKind::DescribeTopicPartitions(req) => Some(ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(&broker.metadata, &broker.authorizer, session, req),
        )),
        RequestKind::DescribeClientQuotas(req) => Some(ResponseKind::DescribeClientQuotas(
            describe_client_quotas::handle(&broker.metadata, &broker.authorizer, session, req),
        )),
        RequestKind::AlterClientQuotas(req) => Some(ResponseKind::AlterClientQuotas(
            alter_client_quotas::handle(&broker.controller, &broker.authorizer, session, req).await,
        )),
        RequestKind::DescribeLogDirs(req) => Some(ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(&broker.replicas, &broker.authorizer, session, req, version),
        )),
        // SASL listeners answer these before the API layer (`sasl::ConnectionAuth`).
        RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_) => {
            sasl::illegal_state(api_key)
        }
        _ => return Outcome::Close("API not implemented"),
    };
    let throttle = throttle::count(
        &broker.metadata,
        &broker.quotas,
        session,
        header.client_id.as_deref().unwrap_or_default(),
        api_key,
        request_size,
        response.as_ref(),
        version,
        busy.elapsed(),
        exempt,
    );
    match response {
        Some(mut response) => {
            broker.requests.count_errors(api_key, &response);
            throttle::report(&mut response, throttle);
            match respond(header.correlation_id, api_key, version, response) {
                Outcome::Respond(frame) if !throttle.is_zero() => {
                    Outcome::Throttled(Some(frame), throttle)
                }
                outcome => outcome,
            }
        }
        None if !throttle.is_zero() => Outcome::Throttled(None, throttle),
        None => Outcome::NoResponse,
    }
}

/// Encodes the size prefix, the response header (its version depends on the API key and
/// version, never on the connection) and the body.
pub(crate) fn respond(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    response: ResponseKind,
) -> Outcome {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    // Sized up front: a fetch response carries megabytes, and growing the buffer by doubling
    // would copy them several times.
    let body_size = match &response {
        ResponseKind::Fetch(fetch) => fetch.compute_size(version).unwrap_or(0),
        _ => 256,
    };
    let capacity = 4 + header.compute_size(header_version).unwrap_or(0) + body_size;
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    if let Err(e) = header
        .encode(&mut buf, header_version)
        .and_then(|_| response.encode(&mut buf, version))
    {
        error!(?api_key, version, error = %e, "encoding response failed");
        return Outcome::Close("response encoding failed");
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Outcome::Respond(buf.freeze())
}

/// The error for a partition this broker does not host: NOT_LEADER_OR_FOLLOWER when the
/// metadata image places it on other brokers (the client refreshes metadata and goes there),
/// UNKNOWN_TOPIC_OR_PARTITION when it does not exist at all.
pub(crate) fn not_hosted(metadata: &MetadataView, topic: &str, partition: i32) -> i16 {
    if metadata.image().partition(topic, partition).is_some() {
        kafka_protocol::ResponseError::NotLeaderOrFollower.code()
    } else {
        kafka_protocol::ResponseError::UnknownTopicOrPartition.code()
    }
}

/// Where a partition's leader is, for a client this broker answered NOT_LEADER_OR_FOLLOWER
/// or FENCED_LEADER_EPOCH (KIP-951: it re-routes without a full metadata refresh): the
/// leader's id and epoch, and its endpoint `(id, host, port)` if it is registered.
pub(crate) struct LeaderHint {
    pub leader: i32,
    pub leader_epoch: i32,
    pub endpoint: Option<(i32, String, i32)>,
}

pub(crate) fn leader_hint(
    metadata: &MetadataView,
    listener: &str,
    topic: &str,
    partition: i32,
) -> Option<LeaderHint> {
    let image = metadata.image();
    let state = image.partition(topic, partition)?;
    let endpoint = image
        .brokers
        .get(&state.leader)
        .filter(|b| !b.fenced)
        .and_then(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some((b.id, host.to_string(), port))
        });
    Some(LeaderHint {
        leader: state.leader,
        leader_epoch: state.leader_epoch,
        endpoint,
    })
}

/// Whether an error code is one a leader hint goes with.
pub(crate) fn wants_leader_hint(code: i16) -> bool {
    code == kafka_protocol::ResponseError::NotLeaderOrFollower.code()
        || code == kafka_protocol::ResponseError::FencedLeaderEpoch.code()
}

/// Shorthand for kafka-protocol's string type.
pub(crate) fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}
