//! `ReplicaManager`: the partitions this broker hosts, and the two hot paths through them —
//! append (then wait until durable, as the flush policy requires) and fetch (with long-poll).
//!
//! It is driven by the metadata image (through `metadata::publisher`): `reconcile_topic` opens
//! the partitions of a topic the image assigns to this broker (and stops hosting, with
//! `stop_replica`, those it no longer assigns here) and `remove_topic` deletes a topic's partitions and their files (`partition_dir`: each directory
//! records its topic id, so a re-created topic never reopens a deleted one's data). Handlers
//! never touch files.
//!
//! A partition that cannot be opened is *offline*: remembered with its error, logged once, and
//! answered KAFKA_STORAGE_ERROR until the broker restarts; every other partition keeps serving.
//!
//! Durability: one `Journal` per data directory (`<data>/journal/`). Under the default flush
//! policy every append goes through it, and its round's fsync moves the partition's durable end
//! (and so its high watermark); under `os` appends bypass it. Either way it keeps the recovery
//! points, and at start it hands each partition its recovery point and the batches to replay;
//! [`ReplicaManager::finish_recovery`] then lets it delete what was replayed.
//!
//! Concurrency: the partition map is behind an `RwLock` taken only to look up or change entries;
//! no lock is held across an await. Produce waits for the durable end or high watermark and fetch
//! long-polls on the high watermark, each on a `watch` channel: no polling loops, no task per
//! request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chronik_storage::fs::RealFs;
use chronik_storage::journal::{Journal, JournalOptions, LogId, Replay};
use futures::future::select_all;
use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::hw_checkpoint;
use super::partition::{
    log_id, Appended, Durability, Partition, PartitionError, PartitionStorage, Recovery,
};
use super::partition_dir::{self, DirRemover};
use super::stats::{ReplicaStatus, ReplicationStats};
use super::traffic::Waiting;
use crate::config::{FlushPolicy, LogDefaults};
use crate::metadata::topic_config::{resolve, PartitionSettings};
use crate::metadata::TopicImage;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Who fetches: a consumer reads up to the high watermark; a follower (its broker id) reads
/// up to the log end, and its fetch offset tells the leader what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchFrom {
    Consumer,
    Follower(i32),
}

/// One partition of a fetch request.
#[derive(Clone, Debug)]
pub struct FetchPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
    /// The leader epoch the fetcher believes current (-1: unchecked).
    pub current_leader_epoch: i32,
    /// The epoch of the fetcher's last batch, to find a divergence (-1: none).
    pub last_fetched_epoch: i32,
}

/// What a fetch returns for one partition.
#[derive(Clone, Debug, Default)]
pub struct FetchedPartition {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
    /// The follower's log diverged: (epoch, end offset) to cut back to (KIP-320).
    pub diverging_epoch: Option<(i32, i64)>,
}

/// A partition whose directory could not be opened.
#[derive(Clone, Debug)]
pub struct OfflinePartition {
    pub topic_id: Uuid,
    pub error: String,
}

pub struct ReplicaManager {
    data_dir: PathBuf,
    /// Topic-config defaults: the static ones with dynamic broker configs laid over them.
    defaults: RwLock<LogDefaults>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Consulted only when a lookup in `partitions` misses, so it costs the hot path nothing.
    offline: RwLock<HashMap<(String, i32), OfflinePartition>>,
    /// Serialises creating, reopening and deleting partition directories, so a delete and a
    /// re-create of the same name cannot interleave on one directory. Never taken by
    /// produce or fetch.
    layout: Mutex<()>,
    remover: DirRemover,
    journal: Arc<Journal>,
    storage: PartitionStorage,
    /// What the journal held at start, taken by each partition as it opens, until
    /// `finish_recovery`.
    replay: Mutex<Replay>,
    /// Replication counters since start (also handed to every partition through `storage`).
    stats: Arc<ReplicationStats>,
    /// The high watermarks checkpointed before this start (None: no checkpoint file).
    checkpointed_hw: Option<hw_checkpoint::Checkpoint>,
    /// What the last checkpoint wrote, so an unchanged one is not written again.
    last_checkpoint: Mutex<Vec<(String, i32, i64)>>,
    /// Produce and fetch requests parked right now.
    pub waiting: Waiting,
}

impl ReplicaManager {
    /// Opens the data directory's journal (reading what a crash left in it). Partitions open as
    /// metadata names them; call [`ReplicaManager::finish_recovery`] once they have.
    pub fn new(
        data_dir: PathBuf,
        defaults: LogDefaults,
        flush_policy: FlushPolicy,
    ) -> std::io::Result<Self> {
        let fs = RealFs::shared();
        let (journal, replay) = Journal::open(
            fs.clone(),
            &data_dir.join("journal"),
            JournalOptions::default(),
        )?;
        let journal = Arc::new(journal);
        let durability = match flush_policy {
            FlushPolicy::GroupCommit => Durability::Journal(journal.clone()),
            FlushPolicy::Os => Durability::PageCache,
        };
        let remover = DirRemover::start();
        let stats = Arc::new(ReplicationStats::default());
        // Deletions a crash or a failure interrupted.
        match partition_dir::leftovers(&data_dir) {
            Ok(dirs) => dirs.into_iter().for_each(|dir| remover.remove(dir)),
            Err(e) => {
                warn!(dir = %data_dir.display(), error = %e, "listing deleted partition directories")
            }
        }
        // An unreadable checkpoint costs only how far high watermarks start back (at the log
        // start, as for a partition it does not list); the next one replaces it.
        let checkpointed_hw = match hw_checkpoint::read(&*fs, &data_dir) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                warn!(dir = %data_dir.display(), error = %e, "unreadable high-watermark checkpoint; high watermarks start at the log start");
                Some(Default::default())
            }
        };
        Ok(ReplicaManager {
            checkpointed_hw,
            last_checkpoint: Mutex::new(Vec::new()),
            data_dir,
            defaults: RwLock::new(defaults),
            partitions: RwLock::new(HashMap::new()),
            offline: RwLock::new(HashMap::new()),
            layout: Mutex::new(()),
            remover,
            journal,
            storage: PartitionStorage {
                fs,
                durability,
                stats: stats.clone(),
            },
            replay: Mutex::new(replay),
            stats,
            waiting: Waiting::default(),
        })
    }

    /// After the partitions the restored metadata image names were opened (each replayed and
    /// flushed what the journal held for it): starts the journal. Batches of logs not opened
    /// yet stay in memory for them, and the journal files read at start are kept (and read
    /// again at the next start) while any are left: such a log may be an offline partition, or
    /// one of a topic the image does not show yet (created after the last commit this node
    /// persisted), and its journaled batches may be all that is left of acknowledged data.
    /// A topic deleted meanwhile keeps them until a start finds nothing left (see
    /// ARCHITECTURE.md).
    pub fn finish_recovery(&self) -> std::io::Result<()> {
        let left = self.replay.lock().records.len();
        if left > 0 {
            warn!(
                logs = left,
                "journaled batches of logs not opened yet: the journal read at start is kept"
            );
        }
        let ends: Vec<(LogId, i64)> = self
            .all_partitions()
            .iter()
            .map(|p| (p.log_id(), p.log_end_offset()))
            .collect();
        self.journal.finish_replay(ends, left > 0)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// The hosted partition, or why there is none: offline (KAFKA_STORAGE_ERROR) or not hosted
    /// (UNKNOWN_TOPIC_OR_PARTITION).
    pub fn online_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<Partition>, PartitionError> {
        self.partition(topic, partition)
            .ok_or_else(|| self.missing(topic, partition))
    }

    /// Why `topic`/`partition` is not in the partition map.
    pub fn missing(&self, topic: &str, partition: i32) -> PartitionError {
        match self.offline_partition(topic, partition) {
            Some(offline) => PartitionError::Offline(offline.error),
            None => PartitionError::UnknownTopicOrPartition,
        }
    }

    /// Partitions assigned here that are offline.
    pub fn offline_count(&self) -> usize {
        self.offline.read().len()
    }

    pub fn offline_partition(&self, topic: &str, partition: i32) -> Option<OfflinePartition> {
        self.offline
            .read()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Every hosted partition (for the log cleaner and metrics).
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// The replication counters since start (for the status report and metrics).
    pub fn stats(&self) -> &ReplicationStats {
        &self.stats
    }

    /// Every hosted partition's offsets and replication state, and the counters: what
    /// `ReplicaStatus` on the controller listener answers. `broker` is this broker's id.
    pub fn status(&self, broker: i32) -> ReplicaStatus {
        let mut partitions: Vec<_> = self.all_partitions().iter().map(|p| p.status()).collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        ReplicaStatus {
            broker,
            counters: self.stats.counters(),
            partitions,
        }
    }

    /// The topic-config defaults in force (for describing effective topic configs).
    pub fn log_defaults(&self) -> LogDefaults {
        self.defaults.read().clone()
    }

    /// New defaults (dynamic broker configs changed); callers reconcile every topic after.
    pub fn set_log_defaults(&self, defaults: LogDefaults) {
        *self.defaults.write() = defaults;
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Opens or creates every partition of `topic` the image assigns to broker `node_id` that
    /// is not hosted yet, and applies its current config to those that are. A partition that
    /// cannot be opened goes offline (logged here, once) and the others are still opened; the
    /// first such error is returned.
    pub fn reconcile_topic(&self, topic: &TopicImage, node_id: i32) -> Result<(), PartitionError> {
        let settings = resolve(&self.defaults.read(), &topic.configs);
        let _layout = self.layout.lock();
        let mut first_error = None;
        for (index, state) in topic.partitions.iter().enumerate() {
            let index = index as i32;
            if !state.replicas.contains(&node_id) {
                let hosted = self
                    .partition(&topic.name, index)
                    .filter(|p| p.topic_id == topic.id);
                let offline = self
                    .offline_partition(&topic.name, index)
                    .is_some_and(|o| o.topic_id == topic.id);
                // Or left on disk by a crash before it was removed (released only if it is
                // this topic's).
                let on_disk = || self.partition_dir(&topic.name, index).exists();
                if hosted.is_some() || offline || on_disk() {
                    if let Some(partition) = &hosted {
                        // No longer leading or following: producers waiting on it are told.
                        partition.apply_state(node_id, state, now_ms());
                    }
                    info!(topic = %topic.name, partition = index,
                        "no longer a replica: removing the partition");
                    self.stop_replica_locked(topic, index);
                }
                continue;
            }
            let key = (topic.name.clone(), index);
            if let Some(existing) = self.partition(&topic.name, index) {
                if existing.topic_id == topic.id {
                    existing.update_settings(settings.clone());
                    let old = existing.applied_state();
                    let change = existing.apply_state(node_id, state, now_ms());
                    self.stats
                        .record_applied(node_id, old.as_ref(), state, change);
                    continue;
                }
                // An earlier topic of this name whose deletion has not reached us yet.
                self.partitions.write().remove(&key);
            }
            {
                let mut offline = self.offline.write();
                match offline.get(&key) {
                    // Offline until restart, as Kafka keeps a failed log directory offline.
                    Some(o) if o.topic_id == topic.id => continue,
                    Some(_) => {
                        offline.remove(&key);
                    }
                    None => {}
                }
            }
            let dir = self.partition_dir(&topic.name, index);
            match self.open_partition(&dir, topic, index, settings.clone()) {
                Ok(partition) => {
                    let change = partition.apply_state(node_id, state, now_ms());
                    self.stats.record_applied(node_id, None, state, change);
                    self.partitions.write().insert(key, Arc::new(partition));
                }
                Err(e) => {
                    warn!(topic = %topic.name, partition = index, dir = %dir.display(), error = %e,
                        "cannot open partition: it is offline (KAFKA_STORAGE_ERROR) until restart");
                    let offline = OfflinePartition {
                        topic_id: topic.id,
                        error: e.to_string(),
                    };
                    self.offline.write().insert(key, offline);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Claims the directory for this topic incarnation, then opens (or creates) its log.
    fn open_partition(
        &self,
        dir: &Path,
        topic: &TopicImage,
        index: i32,
        settings: PartitionSettings,
    ) -> Result<Partition, PartitionError> {
        let stale =
            partition_dir::claim(dir, topic.id).map_err(|e| PartitionError::Storage(e.into()))?;
        if let Some(stale) = stale {
            self.remover.remove(stale);
        }
        let id = log_id(topic.id, index);
        let recovery = {
            let replay = self.replay.lock();
            Recovery {
                point: replay.recovery_points.get(&id).copied(),
                journaled: replay.records.get(&id).cloned().unwrap_or_default(),
                // A partition missing from an existing checkpoint had none yet: it starts
                // from its log start.
                high_watermark: self.checkpointed_hw.as_ref().map(|checkpoint| {
                    checkpoint
                        .get(&(topic.name.clone(), index))
                        .copied()
                        .unwrap_or(0)
                }),
            }
        };
        let partition = Partition::open(
            &self.storage,
            dir,
            &topic.name,
            topic.id,
            index,
            settings,
            &recovery,
        )?;
        // Replayed: an offline partition keeps its batches for the next start instead.
        self.replay.lock().records.remove(&id);
        Ok(partition)
    }

    /// Stops hosting `topic` and removes its data: each partition directory is renamed aside at
    /// once (the name is free for a new topic) and removed in the background.
    pub fn remove_topic(&self, topic: &TopicImage) {
        let _layout = self.layout.lock();
        for index in 0..topic.partition_count() {
            self.release_partition(topic, index);
        }
    }

    /// Stops hosting one partition of `topic` this broker is no longer a replica of (a
    /// reassignment moved it away) and removes its data, as `remove_topic` does. Its recovery
    /// point in the journal comes down to 0, so if the partition comes back here later, the
    /// next start never trusts a point the old directory had reached.
    pub fn stop_replica(&self, topic: &TopicImage, index: i32) {
        let _layout = self.layout.lock();
        self.stop_replica_locked(topic, index);
    }

    /// `stop_replica` under the layout lock.
    fn stop_replica_locked(&self, topic: &TopicImage, index: i32) {
        if let Err(e) = self
            .journal
            .lower_recovery_point(log_id(topic.id, index), 0)
        {
            warn!(topic = %topic.name, partition = index, error = %e,
                "lowering the recovery point of a removed replica failed");
        }
        self.release_partition(topic, index);
    }

    /// Drops partition `index` of `topic` (this incarnation only) from the partition map and
    /// the offline set and moves its directory aside for deletion. Under the layout lock.
    fn release_partition(&self, topic: &TopicImage, index: i32) {
        let key = (topic.name.clone(), index);
        // Requests still holding the partition finish on files already unlinked: harmless.
        {
            let mut partitions = self.partitions.write();
            if partitions.get(&key).is_some_and(|p| p.topic_id == topic.id) {
                partitions.remove(&key);
            }
        }
        {
            let mut offline = self.offline.write();
            if offline.get(&key).is_some_and(|o| o.topic_id == topic.id) {
                offline.remove(&key);
            }
        }
        let dir = self.partition_dir(&topic.name, index);
        match partition_dir::release(&dir, topic.id) {
            Ok(Some(moved)) => self.remover.remove(moved),
            Ok(None) => {}
            // Its partition.metadata still keeps a new topic of this name from reopening it.
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "moving deleted partition aside failed")
            }
        }
    }

    /// Appends a producer's records to one partition (which hands them to the journal).
    /// `acks` decides only the ISR check here; waiting is `wait_for_acks`.
    pub fn append(
        &self,
        topic: &str,
        partition: i32,
        records: &Bytes,
        acks: i16,
    ) -> Result<(Arc<Partition>, Appended), PartitionError> {
        let Some(p) = self.partition(topic, partition) else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        if acks == -1 && p.isr_size() < p.min_insync_replicas() {
            return Err(PartitionError::NotEnoughReplicas {
                isr: p.isr_size(),
                min: p.min_insync_replicas(),
            });
        }
        let appended = p.append(records, now_ms()).inspect_err(|e| {
            debug!(topic, partition, error = %e, "append refused");
        })?;
        p.traffic
            .record_append(appended.end_offset - appended.base_offset, records.len());
        Ok((p, appended))
    }

    /// Waits until each appended partition reached its end offset — its durable end for acks=1,
    /// its high watermark for acks=all — or `timeout` passed. One Kafka error code per entry.
    pub async fn wait_for_acks(
        &self,
        appended: &[(Arc<Partition>, i64)],
        acks: i16,
        timeout: Duration,
    ) -> Vec<i16> {
        // One partition at a time against one deadline: they advance together, so this waits
        // as long as the slowest, and a journal round wakes the task once, not once per
        // partition (polling every partition's future at each wake costs O(n²) per request).
        let deadline = tokio::time::Instant::now() + timeout;
        let mut codes = Vec::with_capacity(appended.len());
        let mut waiting = None;
        for (partition, end_offset) in appended {
            let mut mark = if acks == -1 {
                partition.subscribe_high_watermark()
            } else {
                partition.subscribe_durable_end()
            };
            // A replica that stops leading never sees its high watermark reach the batch.
            let done = |offset: &i64| {
                *offset >= *end_offset || partition.storage_failed() || !partition.is_leader()
            };
            let reached = if done(&mark.borrow_and_update()) {
                Ok(true)
            } else {
                waiting.get_or_insert_with(|| Waiting::enter(&self.waiting.produce));
                tokio::time::timeout_at(deadline, mark.wait_for(done))
                    .await
                    .map(|r| r.is_ok())
            };
            let reached_end = || *mark.borrow() >= *end_offset;
            codes.push(match reached {
                _ if partition.storage_failed() => ResponseError::KafkaStorageError.code(),
                Ok(true) if reached_end() => {
                    if acks == -1 && partition.isr_size() < partition.min_insync_replicas() {
                        // Replicated, but the ISR shrank below min.insync.replicas meanwhile.
                        ResponseError::NotEnoughReplicasAfterAppend.code()
                    } else {
                        0
                    }
                }
                Ok(_) => ResponseError::NotLeaderOrFollower.code(),
                Err(_) => ResponseError::RequestTimedOut.code(),
            });
        }
        codes
    }

    /// Reads the requested partitions from their leader (this broker); if fewer than
    /// `min_bytes` are available, waits for appends (woken by high-watermark moves, or for a
    /// follower by log-end moves) until `max_wait`. A follower's fetch first checks its log
    /// against the leader's epochs and records what it holds.
    pub async fn fetch(
        &self,
        from: FetchFrom,
        requests: &[FetchPartition],
        max_bytes: usize,
        min_bytes: usize,
        max_wait: Duration,
    ) -> Vec<FetchedPartition> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let now = now_ms();
        let partitions: Vec<Result<Arc<Partition>, PartitionError>> = requests
            .iter()
            .map(|r| {
                let p = self.online_partition(&r.topic, r.partition)?;
                p.check_leader(r.current_leader_epoch)?;
                Ok(p)
            })
            .collect();
        let mut diverged = vec![None; requests.len()];
        if let FetchFrom::Follower(replica) = from {
            for ((request, partition), diverged) in
                requests.iter().zip(&partitions).zip(&mut diverged)
            {
                let Ok(p) = partition else { continue };
                *diverged = divergence(p, request);
                if diverged.is_none() {
                    p.record_follower_fetch(replica, request.offset, now);
                }
            }
        }
        // Subscribe before the first read so an append between read and wait is not missed.
        let mut watchers: Vec<_> = partitions
            .iter()
            .flatten()
            .map(|p| match from {
                FetchFrom::Consumer => p.subscribe_high_watermark(),
                FetchFrom::Follower(_) => p.subscribe_log_end(),
            })
            .collect();
        if diverged.iter().any(Option::is_some) {
            watchers.clear();
        }
        let mut waiting = None;
        loop {
            let results = Self::read_once(from, requests, &partitions, &diverged, max_bytes);
            let total: usize = results.iter().map(|r| r.records.len()).sum();
            let any_error = results.iter().any(|r| r.error_code != 0);
            if total >= min_bytes.max(1) || any_error || watchers.is_empty() {
                return count_reads(from, &partitions, results);
            }
            waiting.get_or_insert_with(|| Waiting::enter(&self.waiting.fetch));
            let woken = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            match tokio::time::timeout_at(deadline, woken).await {
                Ok(_) if tokio::time::Instant::now() < deadline => continue,
                _ => {
                    let results =
                        Self::read_once(from, requests, &partitions, &diverged, max_bytes);
                    return count_reads(from, &partitions, results);
                }
            }
        }
    }

    fn read_once(
        from: FetchFrom,
        requests: &[FetchPartition],
        partitions: &[Result<Arc<Partition>, PartitionError>],
        diverged: &[Option<(i32, i64)>],
        max_bytes: usize,
    ) -> Vec<FetchedPartition> {
        let mut remaining = max_bytes;
        let mut have_data = false;
        requests
            .iter()
            .zip(partitions)
            .zip(diverged)
            .map(|((request, partition), diverged)| {
                let p = match partition {
                    Ok(p) => p,
                    Err(e) => {
                        return FetchedPartition {
                            error_code: e.code(),
                            high_watermark: -1,
                            log_start_offset: -1,
                            ..FetchedPartition::default()
                        }
                    }
                };
                let mut fetched = FetchedPartition {
                    error_code: 0,
                    high_watermark: p.high_watermark(),
                    log_start_offset: p.log_start_offset(),
                    records: Bytes::new(),
                    diverging_epoch: *diverged,
                };
                if diverged.is_some() {
                    return fetched;
                }
                let limit = request.max_bytes.min(remaining);
                // KIP-74: the first partition with data returns at least one whole batch, so a
                // batch larger than the limits never blocks the consumer.
                let read = match from {
                    FetchFrom::Consumer => p.read(request.offset, limit, !have_data),
                    FetchFrom::Follower(_) => p.read_to_log_end(request.offset, limit),
                };
                match read {
                    Ok(read) => {
                        remaining = remaining.saturating_sub(read.bytes.len());
                        have_data |= !read.bytes.is_empty();
                        fetched.records = read.bytes;
                    }
                    Err(e) => fetched.error_code = e.code(),
                }
                fetched
            })
            .collect()
    }

    /// The data directory's journal (its round and fsync figures).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The data directory this broker's partitions live in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Retention and compaction over every partition; run periodically off the async workers.
    pub fn clean_logs(&self) {
        let now = now_ms();
        for partition in self.all_partitions() {
            if let Err(e) = partition.clean(now) {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "log cleaning failed");
            }
        }
    }

    /// Writes every hosted partition's high watermark to the checkpoint, unless nothing moved
    /// since the last one. Blocking: run off the async workers.
    pub fn checkpoint_high_watermarks(&self) -> std::io::Result<()> {
        let mut entries: Vec<(String, i32, i64)> = self
            .all_partitions()
            .iter()
            .map(|p| (p.topic.clone(), p.index, p.high_watermark()))
            .collect();
        entries.sort();
        let mut last = self.last_checkpoint.lock();
        if *last == entries {
            return Ok(());
        }
        hw_checkpoint::write(&*self.storage.fs, &self.data_dir, &entries)?;
        *last = entries;
        Ok(())
    }

    /// Flushes and closes every log (clean shutdown).
    pub fn shutdown(&self) {
        if let Err(e) = self.checkpoint_high_watermarks() {
            warn!(error = %e, "writing the high-watermark checkpoint at shutdown");
        }
        // Pending journal rounds complete (or fail) first, releasing their partitions.
        self.journal.stop();
        let partitions: Vec<_> = self.partitions.write().drain().map(|(_, p)| p).collect();
        let mut ends = Vec::with_capacity(partitions.len());
        let mut all_closed = true;
        for partition in partitions {
            match Arc::try_unwrap(partition) {
                Ok(p) => {
                    let id = p.log_id();
                    match p.close() {
                        Ok(end) => ends.push((id, end)),
                        Err(e) => {
                            warn!(error = %e, "closing partition; left for recovery");
                            all_closed = false;
                        }
                    }
                }
                Err(p) => {
                    warn!(topic = %p.topic, partition = p.index, "partition still in use at shutdown; left for recovery");
                    all_closed = false;
                }
            }
        }
        // The journal goes only when every log is durable without it.
        if all_closed && !self.replay_pending() {
            if let Err(e) = self.journal.close(ends) {
                warn!(error = %e, "closing the journal; it is replayed at the next start");
            }
        }
    }

    fn replay_pending(&self) -> bool {
        !self.replay.lock().records.is_empty()
    }
}

/// Counts what a fetch returns (not the reads a long-poll discarded) as bytes out.
fn count_reads(
    from: FetchFrom,
    partitions: &[Result<Arc<Partition>, PartitionError>],
    results: Vec<FetchedPartition>,
) -> Vec<FetchedPartition> {
    for (partition, fetched) in partitions.iter().zip(&results) {
        if let Ok(p) = partition {
            p.traffic.record_read(from, fetched.records.len());
        }
    }
    results
}

/// KIP-320 on the leader: whether a follower's log, ending at the request's offset with a
/// batch of `last_fetched_epoch`, diverged from this leader's. Kafka's rule: the leader's
/// end offset for that epoch must be the same epoch and not below the fetch offset;
/// otherwise the follower must cut back to (epoch, end offset).
fn divergence(partition: &Partition, request: &FetchPartition) -> Option<(i32, i64)> {
    if request.last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end) = partition.end_offset_for_epoch(request.last_fetched_epoch);
    (epoch != request.last_fetched_epoch || end < request.offset).then_some((epoch, end))
}

#[cfg(test)]
#[path = "replica_manager_tests.rs"]
mod tests;
