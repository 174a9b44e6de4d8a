//! `GroupCoordinator`: every consumer group this broker coordinates, their committed offsets,
//! and their persistence in `__consumer_offsets`.
//!
//! A group lives in partition `abs(java_hash(group)) % N` of `__consumer_offsets`; the broker
//! leading that partition coordinates it (on a single node, this one). Offset commits are
//! appended there and acknowledged once durable; group metadata is appended after each completed
//! rebalance. `load` rebuilds offsets and generations from those partitions at start.
//!
//! Concurrency: the group map and each `Group` sit behind their own `parking_lot` mutexes, taken
//! in that order and never across an await. Appends to `__consumer_offsets` happen under the
//! group's lock (a file write, not an await) so the log order of one group's records matches the
//! order its state changed; the durability wait happens after the lock is released.
//! Timers: one task (`run_timers`) sleeps until the earliest group deadline (session, join,
//! pending member id) or until a state change notifies it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chronik_storage::batch::batches;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use super::group::{
    Group, GroupSettings, GroupState, JoinOutcome, JoinRequest, Pending, SyncOutcome,
};
use super::offsets_log::{decode_batches, encode_batch, partition_for, OffsetValue, OffsetsRecord};
use crate::config::BrokerConfig;
use crate::controller::{Controller, NewTopic, CONSUMER_OFFSETS_TOPIC};
use crate::metadata::MetadataView;
use crate::replica::replica_manager::now_ms;
use crate::replica::{Partition, PartitionError, ReplicaManager};

/// Largest offset-commit metadata string accepted (Kafka's offset.metadata.max.bytes).
const MAX_METADATA_BYTES: usize = 4096;
/// How long a group request waits for `__consumer_offsets` to be created.
const OFFSETS_TOPIC_CREATE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an OffsetCommit waits for its write to become durable.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// One member, for DescribeGroups.
#[derive(Clone, Debug)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// One group, for DescribeGroups.
#[derive(Clone, Debug)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<MemberDescription>,
}

/// One group, for ListGroups.
#[derive(Clone, Debug)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}

/// Committed offset against the log end, per group/topic/partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    /// -1 when this broker does not host the partition.
    pub log_end_offset: i64,
    /// `log_end_offset - committed`, never negative; -1 when the log end is unknown.
    pub lag: i64,
}

/// An offset to commit.
#[derive(Clone, Debug)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct GroupCoordinator {
    config: Arc<BrokerConfig>,
    metadata: MetadataView,
    replicas: Arc<ReplicaManager>,
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    settings: GroupSettings,
    timer: Notify,
}

impl GroupCoordinator {
    pub fn new(
        config: Arc<BrokerConfig>,
        metadata: MetadataView,
        replicas: Arc<ReplicaManager>,
    ) -> GroupCoordinator {
        let settings = GroupSettings {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
        };
        GroupCoordinator {
            config,
            metadata,
            replicas,
            groups: Mutex::new(HashMap::new()),
            settings,
            timer: Notify::new(),
        }
    }

    /// Partitions of `__consumer_offsets` (the configured count until the topic exists).
    pub fn offsets_partitions(&self) -> i32 {
        self.metadata
            .topic(CONSUMER_OFFSETS_TOPIC)
            .map(|t| t.partition_count())
            .unwrap_or(self.config.offsets_topic_num_partitions)
    }

    /// NOT_COORDINATOR when the image makes another broker leader of the group's
    /// `__consumer_offsets` partition (the client asks FindCoordinator again); None when this
    /// broker coordinates it, or the topic does not exist yet (the request creates it).
    pub fn not_coordinator(&self, group: &str) -> Option<i16> {
        let topic = self.metadata.topic(CONSUMER_OFFSETS_TOPIC)?;
        let index = partition_for(group, topic.partition_count()) as usize;
        let leader = topic.partitions.get(index).map(|p| p.leader);
        (leader != Some(self.config.node_id)).then_some(ResponseError::NotCoordinator.code())
    }

    /// The `__consumer_offsets` partition holding `group`.
    pub fn partition_for(&self, group: &str) -> i32 {
        partition_for(group, self.offsets_partitions())
    }

    /// Creates `__consumer_offsets` (compacted) if it does not exist yet.
    pub async fn ensure_offsets_topic(&self, controller: &Controller) -> Result<(), i16> {
        if self.metadata.topic(CONSUMER_OFFSETS_TOPIC).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        // Groups must survive a broker loss: three replicas, or as many as there are brokers
        // (Kafka's offsets.topic.replication.factor is 3 too).
        let live = self.metadata.image().live_brokers().count().max(1);
        let new = NewTopic {
            name: CONSUMER_OFFSETS_TOPIC.to_string(),
            partitions: self.config.offsets_topic_num_partitions,
            replication_factor: live.min(3) as i16,
            assignments: None,
            configs,
            validate_only: false,
        };
        // Bounded short: callers hold a connection's response order (a consumer's fetches can
        // queue behind its FindCoordinator), and the client retries COORDINATOR_NOT_AVAILABLE.
        match controller
            .create_topic(new, OFFSETS_TOPIC_CREATE_TIMEOUT)
            .await
        {
            Ok(_) => {
                info!("created {CONSUMER_OFFSETS_TOPIC}");
                Ok(())
            }
            Err(e) if e.code == ResponseError::TopicAlreadyExists.code() => Ok(()),
            Err(e) => {
                warn!(error = %e.message, "creating {CONSUMER_OFFSETS_TOPIC} failed");
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
        }
    }

    /// Session timeout bounds (INVALID_SESSION_TIMEOUT outside them).
    pub fn session_timeout_valid(&self, ms: i32) -> bool {
        ms >= self.config.group_min_session_timeout_ms
            && ms <= self.config.group_max_session_timeout_ms
    }

    fn group(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.lock().get(id).cloned()
    }

    fn group_or_create(&self, id: &str) -> Arc<Mutex<Group>> {
        self.groups
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new(id))))
            .clone()
    }

    /// Appends to the group's `__consumer_offsets` partition; returns what to wait on for
    /// durability (the partition and the end offset of the write).
    fn append(&self, group: &str, records: &[OffsetsRecord]) -> Result<(Arc<Partition>, i64), i16> {
        let bytes = encode_batch(records, now_ms()).map_err(|e| {
            warn!(group, error = %e, "not writing a record that does not fit its layout");
            ResponseError::InvalidRequest.code()
        })?;
        let partition = self.partition_for(group);
        match self
            .replicas
            .append(CONSUMER_OFFSETS_TOPIC, partition, &bytes, -1)
        {
            Ok((partition, appended)) => Ok((partition, appended.end_offset)),
            Err(PartitionError::UnknownTopicOrPartition) => {
                Err(ResponseError::CoordinatorNotAvailable.code())
            }
            Err(e) => Err(e.code()),
        }
    }

    /// Writes the group's metadata if a state change asked for it. Called with the group locked.
    fn maybe_write_metadata(&self, group: &mut Group) {
        if !group.metadata_dirty || group.state == GroupState::Dead {
            return;
        }
        group.metadata_dirty = false;
        let record = OffsetsRecord::Group {
            group: group.id.clone(),
            value: Some(group.metadata_value()),
        };
        if let Err(code) = self.append(&group.id, &[record]) {
            warn!(group = %group.id, code, "writing group metadata failed");
        }
    }

    pub async fn join_group(&self, group_id: &str, req: JoinRequest) -> JoinOutcome {
        let group = if req.member_id.is_empty() {
            self.group_or_create(group_id)
        } else {
            match self.group(group_id) {
                Some(g) => g,
                None => {
                    return JoinOutcome {
                        error_code: ResponseError::UnknownMemberId.code(),
                        generation_id: -1,
                        member_id: req.member_id,
                        ..Default::default()
                    }
                }
            }
        };
        let member_id = req.member_id.clone();
        let pending = {
            let mut g = group.lock();
            let pending = g.join(req, Instant::now(), &self.settings);
            self.maybe_write_metadata(&mut g);
            pending
        };
        self.timer.notify_one();
        match pending {
            Pending::Ready(outcome) => outcome,
            Pending::Wait(rx) => rx.await.unwrap_or_else(|_| JoinOutcome {
                error_code: ResponseError::CoordinatorNotAvailable.code(),
                generation_id: -1,
                member_id,
                ..Default::default()
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn sync_group(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        let unknown = SyncOutcome {
            error_code: ResponseError::UnknownMemberId.code(),
            ..Default::default()
        };
        let Some(group) = self.group(group_id) else {
            return unknown;
        };
        let pending = {
            let mut g = group.lock();
            let pending = g.sync(
                member_id,
                instance,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                Instant::now(),
            );
            self.maybe_write_metadata(&mut g);
            pending
        };
        self.timer.notify_one();
        match pending {
            Pending::Ready(outcome) => outcome,
            Pending::Wait(rx) => rx.await.unwrap_or(SyncOutcome {
                error_code: ResponseError::CoordinatorNotAvailable.code(),
                ..Default::default()
            }),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        match self.group(group_id) {
            Some(g) => g
                .lock()
                .heartbeat(member_id, instance, generation, Instant::now()),
            None => ResponseError::UnknownMemberId.code(),
        }
    }

    /// LeaveGroup: an error code per (member id, instance id).
    pub fn leave_group(&self, group_id: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let Some(group) = self.group(group_id) else {
            return vec![ResponseError::UnknownMemberId.code(); members.len()];
        };
        let codes = {
            let mut g = group.lock();
            let now = Instant::now();
            let codes = members
                .iter()
                .map(|(id, instance)| g.leave(id, instance.as_deref(), now, &self.settings))
                .collect();
            self.maybe_write_metadata(&mut g);
            codes
        };
        self.timer.notify_one();
        codes
    }

    /// OffsetCommit: Err is a group-level error for every partition; Ok holds per-partition codes.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<i16>, i16> {
        let group = match self.group(group_id) {
            Some(g) => g,
            None if generation < 0 => self.group_or_create(group_id),
            None => return Err(ResponseError::IllegalGeneration.code()),
        };
        let now = now_ms();
        let mut codes = vec![0i16; offsets.len()];
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for (i, o) in offsets.iter().enumerate() {
            if o.metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                codes[i] = ResponseError::OffsetMetadataTooLarge.code();
            } else if self.replicas.partition(&o.topic, o.partition).is_none() {
                codes[i] = ResponseError::UnknownTopicOrPartition.code();
            } else {
                let value = OffsetValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone().unwrap_or_default(),
                    commit_timestamp: now,
                };
                records.push(OffsetsRecord::Offset {
                    group: group_id.to_string(),
                    topic: o.topic.clone(),
                    partition: o.partition,
                    value: Some(value.clone()),
                });
                accepted.push((i, (o.topic.clone(), o.partition), value));
            }
        }
        let sync = {
            let mut g = group.lock();
            g.validate_commit(member_id, instance, generation, Instant::now())
                .map_err(|e| e.code())?;
            if records.is_empty() {
                None
            } else {
                match self.append(group_id, &records) {
                    Ok(written) => {
                        for (_, key, value) in &accepted {
                            g.offsets.insert(key.clone(), value.clone());
                        }
                        Some(written)
                    }
                    Err(code) => {
                        for (i, _, _) in &accepted {
                            codes[*i] = code;
                        }
                        None
                    }
                }
            }
        };
        if let Some(written) = sync {
            let code = self
                .replicas
                .wait_for_acks(&[written], -1, COMMIT_TIMEOUT)
                .await[0];
            if code != 0 {
                for (i, _, _) in &accepted {
                    codes[*i] = code;
                }
            }
        }
        Ok(codes)
    }

    /// OffsetFetch: committed offsets of the given partitions (None: every committed partition).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<(String, i32, Option<OffsetValue>)> {
        let group = self.group(group_id);
        let g = group.as_ref().map(|g| g.lock());
        match partitions {
            Some(list) => list
                .into_iter()
                .map(|(t, p)| {
                    let v = g
                        .as_ref()
                        .and_then(|g| g.offsets.get(&(t.clone(), p)).cloned());
                    (t, p, v)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.group(group_id) else {
            return GroupDescription {
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: Vec::new(),
            };
        };
        let g = group.lock();
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.protocols
                            .iter()
                            .find(|(n, _)| *n == protocol)
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    pub fn list_groups(&self) -> Vec<GroupListing> {
        let groups: Vec<_> = self.groups.lock().values().cloned().collect();
        let mut out: Vec<GroupListing> = groups
            .iter()
            .filter_map(|g| {
                let g = g.lock();
                (g.state != GroupState::Dead).then(|| GroupListing {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    state: g.state.name(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups for one group: only an empty group can be deleted.
    pub fn delete_group(&self, group_id: &str) -> i16 {
        let Some(group) = self.group(group_id) else {
            return ResponseError::GroupIdNotFound.code();
        };
        let mut g = group.lock();
        match g.state {
            GroupState::Dead => return ResponseError::GroupIdNotFound.code(),
            GroupState::Empty if g.is_empty() => {}
            _ => return ResponseError::NonEmptyGroup.code(),
        }
        let mut records: Vec<OffsetsRecord> = g
            .offsets
            .keys()
            .map(|(topic, partition)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        records.push(OffsetsRecord::Group {
            group: group_id.to_string(),
            value: None,
        });
        if let Err(code) = self.append(group_id, &records) {
            return code;
        }
        g.mark_dead();
        drop(g);
        self.groups.lock().remove(group_id);
        0
    }

    /// OffsetDelete: Err is a group-level error; Ok holds a code per requested partition.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let Some(group) = self.group(group_id) else {
            return Err(ResponseError::GroupIdNotFound.code());
        };
        let mut g = group.lock();
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound.code());
        }
        let subscribed = if g.state == GroupState::Empty {
            Vec::new()
        } else {
            match g.subscribed_topics() {
                Some(topics) => topics,
                None => return Err(ResponseError::NonEmptyGroup.code()),
            }
        };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(topic) {
                codes.push(ResponseError::GroupSubscribedToTopic.code());
            } else {
                codes.push(0);
                if g.offsets.contains_key(&(topic.clone(), *partition)) {
                    records.push(OffsetsRecord::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                        value: None,
                    });
                }
            }
        }
        if !records.is_empty() {
            self.append(group_id, &records)?;
            for r in &records {
                if let OffsetsRecord::Offset {
                    topic, partition, ..
                } = r
                {
                    g.offsets.remove(&(topic.clone(), *partition));
                }
            }
        }
        Ok(codes)
    }

    /// Committed offset vs log end offset for every group, topic and partition.
    pub fn consumer_lag(&self) -> Vec<PartitionLag> {
        let groups: Vec<_> = self.groups.lock().values().cloned().collect();
        let mut out = Vec::new();
        for group in groups {
            let committed: Vec<(String, String, i32, i64)> = {
                let g = group.lock();
                g.offsets
                    .iter()
                    .map(|((t, p), v)| (g.id.clone(), t.clone(), *p, v.offset))
                    .collect()
            };
            for (group, topic, partition, committed) in committed {
                let log_end_offset = self
                    .replicas
                    .partition(&topic, partition)
                    .map(|p| p.high_watermark())
                    .unwrap_or(-1);
                let lag = if log_end_offset < 0 {
                    -1
                } else {
                    (log_end_offset - committed).max(0)
                };
                out.push(PartitionLag {
                    group,
                    topic,
                    partition,
                    committed,
                    log_end_offset,
                    lag,
                });
            }
        }
        out.sort_by(|a, b| {
            (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition))
        });
        out
    }

    /// Rebuilds committed offsets and group generations from `__consumer_offsets`.
    /// Loads the groups of `__consumer_offsets` partition `index` (this broker just became
    /// its leader): replays offsets and group metadata, tombstones deleting.
    pub fn load_partition(&self, index: i32) -> anyhow::Result<()> {
        let Some(partition) = self.replicas.partition(CONSUMER_OFFSETS_TOPIC, index) else {
            return Ok(());
        };
        let mut offsets = 0usize;
        let mut offset = partition.log_start_offset();
        // To the log end, as Kafka loads: a new leader's high watermark may still lag what its
        // log holds (it learned the old leader's with a fetch's delay).
        let end = partition.log_end_offset();
        while offset < end {
            let read = partition
                .read_to_log_end(offset, 1 << 20)
                .map_err(|e| anyhow::anyhow!("reading {CONSUMER_OFFSETS_TOPIC}-{index}: {e}"))?;
            if read.bytes.is_empty() {
                break;
            }
            let mut next = offset;
            for item in batches(&read.bytes) {
                let (header, _) =
                    item.map_err(|e| anyhow::anyhow!("{CONSUMER_OFFSETS_TOPIC}-{index}: {e}"))?;
                next = next.max(header.last_offset() + 1);
            }
            if next <= offset {
                break;
            }
            let records = decode_batches(&read.bytes, |at, error| {
                warn!(partition = index, offset = at, %error, "skipping an undecodable {CONSUMER_OFFSETS_TOPIC} record");
            });
            for record in records {
                offsets += self.apply_loaded(record);
            }
            offset = next;
        }
        if offsets > 0 {
            info!(
                partition = index,
                offsets, "loaded consumer groups from {CONSUMER_OFFSETS_TOPIC}"
            );
        }
        Ok(())
    }

    /// Loads every `__consumer_offsets` partition this broker hosts.
    pub fn load(&self) -> anyhow::Result<()> {
        for index in 0..self.offsets_partitions() {
            self.load_partition(index)?;
        }
        Ok(())
    }

    /// Drops the groups of `__consumer_offsets` partition `index` (this broker no longer leads
    /// it; the new leader loads them from the log).
    pub fn unload_partition(&self, index: i32) {
        let partitions = self.offsets_partitions();
        self.groups
            .lock()
            .retain(|group, _| partition_for(group, partitions) != index);
    }

    fn apply_loaded(&self, record: OffsetsRecord) -> usize {
        match record {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let g = self.group_or_create(&group);
                let mut g = g.lock();
                match value {
                    Some(v) => {
                        g.offsets.insert((topic, partition), v);
                        1
                    }
                    None => {
                        g.offsets.remove(&(topic, partition));
                        0
                    }
                }
            }
            OffsetsRecord::Group {
                group,
                value: Some(v),
            } => {
                self.group_or_create(&group).lock().restore(&v);
                0
            }
            OffsetsRecord::Group { group, value: None } => {
                self.groups.lock().remove(&group);
                0
            }
        }
    }

    /// Drives every group's deadlines; returns the earliest next one.
    fn tick_all(&self, now: Instant) -> Option<Instant> {
        let groups: Vec<_> = self.groups.lock().values().cloned().collect();
        groups
            .iter()
            .filter_map(|g| {
                let mut g = g.lock();
                let next = g.tick(now, &self.settings);
                self.maybe_write_metadata(&mut g);
                next
            })
            .min()
    }

    /// The single timer task: sessions, join deadlines and pending member ids of all groups.
    pub async fn run_timers(self: Arc<Self>) {
        loop {
            let next = self.tick_all(Instant::now());
            match next {
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = self.timer.notified() => {}
                    }
                }
                None => self.timer.notified().await,
            }
        }
    }

    /// Removes offsets of groups that have been empty longer than the retention, writing
    /// tombstones; a group with nothing left is forgotten.
    pub fn expire_offsets(&self, now: i64) {
        let retention = self.config.offsets_retention_minutes.saturating_mul(60_000);
        let groups: Vec<_> = self.groups.lock().values().cloned().collect();
        for group in groups {
            let mut g = group.lock();
            if g.state != GroupState::Empty || !g.is_empty() {
                continue;
            }
            let base = g.state_timestamp_ms;
            let expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, v)| base.max(v.commit_timestamp).saturating_add(retention) <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let mut records: Vec<OffsetsRecord> = expired
                .iter()
                .map(|(topic, partition)| OffsetsRecord::Offset {
                    group: g.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                })
                .collect();
            let forget = expired.len() == g.offsets.len();
            if forget {
                records.push(OffsetsRecord::Group {
                    group: g.id.clone(),
                    value: None,
                });
            }
            if !expired.is_empty() || forget {
                if let Err(code) = self.append(&g.id, &records) {
                    warn!(group = %g.id, code, "writing offset tombstones failed");
                    continue;
                }
                info!(group = %g.id, offsets = expired.len(), "expired committed offsets");
            }
            for key in &expired {
                g.offsets.remove(key);
            }
            if forget {
                g.mark_dead();
                let id = g.id.clone();
                drop(g);
                self.groups.lock().remove(&id);
            }
        }
    }

    /// Periodic offset expiry (Kafka's offsets.retention.check.interval.ms, 10 minutes).
    pub async fn run_offset_expiry(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(Duration::from_secs(600));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.expire_offsets(now_ms());
        }
    }
}

#[cfg(test)]
#[path = "group_coordinator_tests.rs"]
mod tests;
