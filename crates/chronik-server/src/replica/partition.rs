//! `Partition`: one topic-partition replica hosted by this broker — its leader epoch, high
//! watermark, idempotent-producer state and its `Log`.
//!
//! Concurrency notes: the log and the producer table sit behind one mutex (`PartitionLog`), held
//! only for an append's offset assignment and write, or a read's index lookup and positional
//! read — never across an await or an fsync. That single writer makes offset assignment atomic
//! and ordered.
//!
//! Two offsets move forward outside the lock, each in a `watch` channel: the *durable end*
//! (everything below it is on disk as the flush policy requires; acks=1 waits for it) and the
//! *high watermark* (everything below it is durable on every in-sync replica; consumers read up
//! to it and acks=all waits for it). A single replica is its whole ISR, so its high watermark
//! follows its durable end; consumers therefore never see a record that a crash could take back.
//!
//! Durability ([`Durability`], the flush policy): under the journal, each append is copied into
//! the data directory's journal while the partition lock is still held (so the journal keeps
//! this log's order), and the journal round's fsync completion moves the durable end. After a
//! failed fsync the partition is offline for good: no append, no read, and no durable-end move.
//!
//! Replication (Kafka's semantics): the metadata image makes this replica the partition's
//! leader or a follower under a leader epoch (`apply_state`). A leader appends producers'
//! batches stamped with its epoch and tracks each follower's fetches (`LeaderState`): the high
//! watermark is the least log end over the ISR, its own counted as its durable end. A follower
//! appends the leader's batches verbatim (`append_replicated`, fed by `fetcher.rs`), takes the
//! leader's high watermark capped by its own log end, and cuts a divergent tail
//! (`truncate_to`) before fetching under a new leader. The high watermark never moves back,
//! except that a cut may lower it to the new log end.
//!
//! At open, the log is recovered from its recovery point, the journal's batches for it are
//! replayed, and the producer table is loaded from the latest snapshot (`producer_snapshot`)
//! plus the batch headers after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chronik_storage::batch::{batches, validate_batch, BatchHeader};
use chronik_storage::decompress::DecompressError;
use chronik_storage::fs::FsRef;
use chronik_storage::journal::{DurableListener, Journal, LogId};
use chronik_storage::records::{check_client_batch, decompression_limit, RecordError};
use chronik_storage::{Log, ReadResult, StorageError};
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use super::leader_state::LeaderState;
use super::producer_snapshot;
use super::producer_state::{BatchMeta, ProducerStateTable, SequenceCheck};
use super::stats::{PartitionStatus, ReplicaRole, ReplicationStats};
use crate::metadata::records::PartitionState;
use crate::metadata::topic_config::PartitionSettings;

/// A partition-level failure; mapped to a Kafka error code at the API edge.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: i32 },
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    #[error("producer epoch is stale")]
    InvalidProducerEpoch,
    #[error("offset out of range")]
    OffsetOutOfRange,
    #[error("{isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas { isr: i32, min: i32 },
    #[error("storage error: {0}")]
    Storage(StorageError),
    #[error("this broker does not host the partition")]
    UnknownTopicOrPartition,
    #[error("this broker is not the partition's leader")]
    NotLeaderOrFollower,
    /// The request's leader epoch is older than the replica's.
    #[error("leader epoch {request} is older than the current {current}")]
    FencedLeaderEpoch { request: i32, current: i32 },
    /// The request's leader epoch is newer than the replica knows (its metadata lags).
    #[error("leader epoch {request} is newer than the current {current}")]
    UnknownLeaderEpoch { request: i32, current: i32 },
    /// Its directory could not be opened at startup or creation (the error, as text).
    #[error("partition is offline: {0}")]
    Offline(String),
    /// KIP-467: the batch was refused because of these records (index in batch, reason).
    #[error("{message}")]
    InvalidRecord {
        message: String,
        record_errors: Vec<(i32, String)>,
    },
}

impl PartitionError {
    pub fn code(&self) -> i16 {
        match self {
            PartitionError::CorruptMessage(_) => ResponseError::CorruptMessage.code(),
            PartitionError::MessageTooLarge { .. } => ResponseError::MessageTooLarge.code(),
            PartitionError::OutOfOrderSequence => ResponseError::OutOfOrderSequenceNumber.code(),
            PartitionError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch.code(),
            PartitionError::OffsetOutOfRange => ResponseError::OffsetOutOfRange.code(),
            PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
            PartitionError::Storage(_) | PartitionError::Offline(_) => {
                ResponseError::KafkaStorageError.code()
            }
            PartitionError::UnknownTopicOrPartition => {
                ResponseError::UnknownTopicOrPartition.code()
            }
            PartitionError::InvalidRecord { .. } => ResponseError::InvalidRecord.code(),
            PartitionError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower.code(),
            PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch.code(),
            PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch.code(),
        }
    }
}

impl From<StorageError> for PartitionError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::OffsetOutOfRange { .. } => PartitionError::OffsetOutOfRange,
            other => PartitionError::Storage(other),
        }
    }
}

/// The result of a successful append.
#[derive(Debug)]
pub struct Appended {
    pub base_offset: i64,
    /// The offset after the last record of these batches: the produce is complete once the
    /// durable end (acks=1) or the high watermark (acks=all) reaches it.
    pub end_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// How this broker makes appends durable: the flush policy.
#[derive(Clone)]
pub enum Durability {
    /// Acknowledge once the journal round holding the append is fsynced (`group-commit`).
    Journal(Arc<Journal>),
    /// Acknowledge once written; flushing is left to the OS (`os`).
    PageCache,
}

/// What a partition uses of its broker's storage.
#[derive(Clone)]
pub struct PartitionStorage {
    pub fs: FsRef,
    pub durability: Durability,
    /// The broker's replication counters (a follower's cuts are counted here).
    pub stats: Arc<ReplicationStats>,
}

/// What a crash left for a partition: the recovery point of the last checkpoint and the
/// batches the journal holds for it (replayed at open), and its high watermark as last
/// checkpointed (`hw_checkpoint`; None: the data directory has no checkpoint at all).
#[derive(Debug, Default)]
pub struct Recovery {
    pub point: Option<i64>,
    pub journaled: Vec<Bytes>,
    pub high_watermark: Option<i64>,
}

/// The journal's name for a partition's log.
pub fn log_id(topic_id: Uuid, index: i32) -> LogId {
    LogId {
        id: topic_id.as_u128(),
        index,
    }
}

struct PartitionLog {
    log: Log,
    producers: ProducerStateTable,
    settings: PartitionSettings,
}

/// This replica's part in the partition, as the last applied metadata image says.
enum Role {
    /// Opened, no state applied yet: neither appends nor fetches are served.
    Unassigned,
    Leader(LeaderState),
    Follower {
        leader: i32,
    },
}

struct Replication {
    node_id: i32,
    state: Option<PartitionState>,
    role: Role,
}

/// What applying a metadata state changed for this replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    BecameLeader,
    /// A new leader or leader epoch to follow: truncate if diverged, then fetch from it.
    BecameFollower {
        leader: i32,
    },
}

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    leader_epoch: AtomicI32,
    inner: Mutex<PartitionLog>,
    /// Taken after `inner` when both are needed, never the other way round.
    replication: Mutex<Replication>,
    durable_end: watch::Sender<i64>,
    high_watermark: watch::Sender<i64>,
    /// Moves with every append (before it is durable): replica fetches long-poll on it.
    log_end: watch::Sender<i64>,
    /// Set when an fsync failed: what follows the durable end may be lost, so appends stop.
    storage_failed: AtomicBool,
    storage: PartitionStorage,
    dir: PathBuf,
    log_id: LogId,
    /// Produce and fetch counters, summed per topic by the metrics exporter.
    pub traffic: super::traffic::PartitionTraffic,
}

impl Partition {
    /// Opens (recovering if needed) the log in `dir`, replays what the journal holds for it and
    /// rebuilds producer state.
    pub fn open(
        storage: &PartitionStorage,
        dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        settings: PartitionSettings,
        recovery: &Recovery,
    ) -> Result<Partition, StorageError> {
        let fs = &storage.fs;
        // No recovery point yet: nothing of this log was checkpointed.
        let point = recovery.point.unwrap_or(0);
        let mut log = Log::open_with_recovery_point(fs, dir, settings.log.clone(), point)?;
        let mut replayed = 0;
        for batches in &recovery.journaled {
            replayed += log.replay(batches)?;
        }
        if replayed > 0 {
            // The journal files go once every replayed log is durable (ReplicaManager).
            log.flush()?;
            warn!(
                topic,
                partition = index,
                batches = replayed,
                "replayed batches from the journal"
            );
        }
        let producers = rebuild_producer_state(fs, dir, &log)?;
        // What recovery kept is on disk. The high watermark starts where it was checkpointed
        // (never past the log end); a data directory from before checkpoints starts it at the
        // log end. A leader's then moves up with its ISR, a follower's with its leader's.
        let (durable_end, _) = watch::channel(log.log_end_offset());
        let initial_high_watermark = recovery.high_watermark.map_or(log.log_end_offset(), |hw| {
            hw.clamp(log.log_start_offset(), log.log_end_offset())
        });
        let (high_watermark, _) = watch::channel(initial_high_watermark);
        let (log_end, _) = watch::channel(log.log_end_offset());
        Ok(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            leader_epoch: AtomicI32::new(0),
            inner: Mutex::new(PartitionLog {
                log,
                producers,
                settings,
            }),
            replication: Mutex::new(Replication {
                node_id: -1,
                state: None,
                role: Role::Unassigned,
            }),
            durable_end,
            high_watermark,
            log_end,
            storage_failed: AtomicBool::new(false),
            storage: storage.clone(),
            dir: dir.to_path_buf(),
            log_id: log_id(topic_id, index),
            traffic: Default::default(),
        })
    }

    pub fn log_id(&self) -> LogId {
        self.log_id
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that sees every high-watermark advance (fetch long-polls, acks=all).
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// A receiver that sees every durable-end advance (acks=1).
    pub fn subscribe_durable_end(&self) -> watch::Receiver<i64> {
        self.durable_end.subscribe()
    }

    /// A receiver that sees every append (replica fetches long-poll on it).
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// Makes this replica what `state` (from the metadata image) says: leader, under a new
    /// epoch or with a new ISR, or a follower of another broker.
    pub fn apply_state(&self, node_id: i32, state: &PartitionState, now_ms: i64) -> RoleChange {
        let mut replication = self.replication.lock();
        let same_epoch = replication
            .state
            .as_ref()
            .is_some_and(|s| s.leader_epoch == state.leader_epoch && s.leader == state.leader);
        replication.node_id = node_id;
        let change = if state.leader == node_id {
            match &mut replication.role {
                Role::Leader(leader) if same_epoch => {
                    leader.set_isr(&state.replicas, state.isr.clone());
                    RoleChange::Unchanged
                }
                _ => {
                    let leader =
                        LeaderState::new(node_id, &state.replicas, state.isr.clone(), now_ms);
                    replication.role = Role::Leader(leader);
                    RoleChange::BecameLeader
                }
            }
        } else {
            let was_following = matches!(replication.role, Role::Follower { .. });
            replication.role = Role::Follower {
                leader: state.leader,
            };
            if was_following && same_epoch {
                RoleChange::Unchanged
            } else {
                RoleChange::BecameFollower {
                    leader: state.leader,
                }
            }
        };
        self.leader_epoch
            .store(state.leader_epoch, Ordering::Release);
        replication.state = Some(state.clone());
        drop(replication);
        self.update_high_watermark();
        if let RoleChange::BecameFollower { .. } = change {
            // Producers waiting on this replica's watermarks learn it no longer leads.
            self.high_watermark.send_modify(|_| {});
            self.durable_end.send_modify(|_| {});
        }
        change
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.replication.lock().role, Role::Leader(_))
    }

    /// The broker this replica follows, if it is a follower with a leader.
    pub fn leader_to_follow(&self) -> Option<i32> {
        match self.replication.lock().role {
            Role::Follower { leader } if leader >= 0 => Some(leader),
            _ => None,
        }
    }

    /// A request meant for the leader, carrying `request_epoch` (-1: none): refused unless
    /// this replica leads under that epoch (Kafka's KIP-320 fencing).
    pub fn check_leader(&self, request_epoch: i32) -> Result<(), PartitionError> {
        if !self.is_leader() {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        let current = self.leader_epoch();
        match request_epoch {
            -1 => Ok(()),
            e if e < current => Err(PartitionError::FencedLeaderEpoch {
                request: e,
                current,
            }),
            e if e > current => Err(PartitionError::UnknownLeaderEpoch {
                request: e,
                current,
            }),
            _ => Ok(()),
        }
    }

    /// A follower's fetch at `fetch_offset`: what it holds, so the high watermark may move.
    pub fn record_follower_fetch(&self, replica: i32, fetch_offset: i64, now_ms: i64) {
        let leader_end = *self.log_end.borrow();
        let recorded = match &mut self.replication.lock().role {
            Role::Leader(leader) => leader.record_fetch(replica, fetch_offset, leader_end, now_ms),
            _ => false,
        };
        if recorded {
            self.update_high_watermark();
        }
    }

    /// A leader's high watermark from what its followers hold and what it made durable.
    fn update_high_watermark(&self) {
        let durable = *self.durable_end.borrow();
        let hw = match &self.replication.lock().role {
            Role::Leader(leader) => leader.high_watermark(durable),
            _ => return,
        };
        advance(&self.high_watermark, hw);
    }

    /// A follower learns the leader's high watermark: its own moves to it, capped by what it
    /// holds itself.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let end = *self.log_end.borrow();
        advance(&self.high_watermark, leader_high_watermark.min(end));
    }

    /// A follower learns the leader's log start (DeleteRecords, retention): its own moves up
    /// to it, never past what it holds.
    pub fn follow_log_start(&self, leader_log_start: i64) {
        let mut inner = self.inner.lock();
        let target = leader_log_start.min(inner.log.log_end_offset());
        if target > inner.log.log_start_offset() {
            if let Err(e) = inner.log.delete_records_before(target) {
                warn!(topic = %self.topic, partition = self.index, error = %e, "moving the log start to the leader's failed");
            }
        }
    }

    /// The ISR change this leader should propose now, with the epochs the controller checks
    /// (Kafka's AlterPartition): lagging followers out, caught-up ones in. Recorded as pending
    /// until the image shows the outcome or `isr_proposal_failed`.
    pub fn propose_isr_change(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        let high_watermark = self.high_watermark();
        let epoch_start = self.leader_epoch_start_offset();
        let mut replication = self.replication.lock();
        let state = replication.state.clone()?;
        let Role::Leader(leader) = &mut replication.role else {
            return None;
        };
        let isr = leader
            .propose_shrink(now_ms, lag_max_ms)
            .or_else(|| leader.propose_expand(high_watermark, epoch_start, now_ms, lag_max_ms))?;
        Some(IsrProposal {
            topic: self.topic.clone(),
            partition: self.index,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr,
        })
    }

    /// Where the current leader epoch began: the end of the earlier epochs' batches (Kafka's
    /// leader-epoch start offset).
    pub fn leader_epoch_start_offset(&self) -> i64 {
        let epoch = self.leader_epoch();
        let (found, end) = self.inner.lock().log.end_offset_for_epoch(epoch - 1);
        if found < 0 {
            0
        } else {
            end
        }
    }

    /// The controller answered the last proposal (or failed to): proposals may follow again.
    pub fn isr_proposal_settled(&self) {
        if let Role::Leader(leader) = &mut self.replication.lock().role {
            leader.proposal_failed();
        }
    }

    /// The metadata state this replica last applied (None: none yet).
    pub fn applied_state(&self) -> Option<PartitionState> {
        self.replication.lock().state.clone()
    }

    /// This replica as the status report shows it. Takes the partition's locks briefly, one
    /// after the other: for the admin command, not the data path.
    pub fn status(&self) -> PartitionStatus {
        // The high watermark first: read after the log end, it could pass it.
        let high_watermark = self.high_watermark();
        let (log_start_offset, log_end_offset) = {
            let inner = self.inner.lock();
            (inner.log.log_start_offset(), inner.log.log_end_offset())
        };
        let replica_ends = self.replica_ends();
        let replication = self.replication.lock();
        let role = match replication.role {
            Role::Leader(_) => ReplicaRole::Leader,
            Role::Follower { .. } => ReplicaRole::Follower,
            Role::Unassigned => ReplicaRole::Unassigned,
        };
        let state = replication.state.clone().unwrap_or(PartitionState {
            replicas: Vec::new(),
            leader: -1,
            leader_epoch: -1,
            partition_epoch: -1,
            isr: Vec::new(),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        });
        PartitionStatus {
            topic: self.topic.clone(),
            partition: self.index,
            role,
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            replicas: state.replicas,
            isr: state.isr,
            high_watermark,
            log_start_offset,
            log_end_offset,
            replica_ends,
        }
    }

    /// Per replica, its log end as this leader knows it (-1: unknown); empty unless leader.
    pub fn replica_ends(&self) -> Vec<(i32, i64)> {
        let end = *self.log_end.borrow();
        match &self.replication.lock().role {
            Role::Leader(leader) => leader.replica_ends(end),
            _ => Vec::new(),
        }
    }

    /// An fsync failed (this partition's, or its journal's): offline until restart.
    pub fn storage_failed(&self) -> bool {
        self.storage_failed.load(Ordering::Acquire)
            || matches!(&self.storage.durability, Durability::Journal(j) if j.is_failed())
    }

    /// Refuses appends while storage cannot take them: after a failed fsync, for good; while
    /// the journal's writes fail (a full disk), until they succeed again.
    fn check_writable(&self) -> Result<(), PartitionError> {
        let refusal = if self.storage_failed() {
            "an fsync failed: the partition is offline until restart"
        } else if matches!(&self.storage.durability, Durability::Journal(j) if j.is_stalled()) {
            "the journal cannot be written (is the disk full?)"
        } else {
            return Ok(());
        };
        Err(PartitionError::Storage(StorageError::Io(
            std::io::Error::other(refusal),
        )))
    }

    /// Records that everything below `end_offset` is on disk; a leader's high watermark may
    /// follow. Never after a failed fsync: Linux reports a lost write once, and a later
    /// round's success says nothing about it.
    pub fn mark_durable(&self, end_offset: i64) {
        if self.storage_failed() {
            return;
        }
        advance(&self.durable_end, end_offset.min(*self.log_end.borrow()));
        self.update_high_watermark();
    }

    /// An fsync failed: stop taking appends and wake every waiter so it can answer with an error.
    pub fn mark_storage_failed(&self) {
        self.storage_failed.store(true, Ordering::Release);
        self.durable_end.send_modify(|_| {});
        self.high_watermark.send_modify(|_| {});
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.lock().log.log_start_offset()
    }

    /// Bytes of the log on disk (every segment's data file).
    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().log.size_bytes()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.lock().log.log_end_offset()
    }

    pub fn min_insync_replicas(&self) -> i32 {
        self.inner.lock().settings.min_insync_replicas
    }

    /// Size of the committed in-sync replica set.
    pub fn isr_size(&self) -> i32 {
        let replication = self.replication.lock();
        replication.state.as_ref().map_or(0, |s| s.isr.len() as i32)
    }

    pub fn update_settings(&self, settings: PartitionSettings) {
        let mut inner = self.inner.lock();
        inner.log.set_config(settings.log.clone());
        inner.settings = settings;
    }

    /// Validates the producer's batches, assigns offsets and appends them as one write, then
    /// hands them to the journal (or, under the `os` policy, counts them durable at once).
    pub fn append(
        self: &Arc<Self>,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        let (max_message_bytes, compacted) = {
            let inner = self.inner.lock();
            let log = &inner.settings.log;
            (log.max_message_bytes, log.cleanup_policy.includes_compact())
        };
        let mut headers = Vec::new();
        let mut end = 0;
        for item in batches(records) {
            let (_, range) = item.map_err(|e| PartitionError::CorruptMessage(e.to_string()))?;
            let header = validate_batch(&records[range.clone()])
                .map_err(|e| PartitionError::CorruptMessage(e.to_string()))?;
            if header.total_size() > max_message_bytes.max(0) as usize {
                return Err(PartitionError::MessageTooLarge {
                    size: header.total_size(),
                    max: max_message_bytes,
                });
            }
            if header.records_count <= 0 {
                return Err(PartitionError::InvalidRecord {
                    message: "empty record batch".into(),
                    record_errors: Vec::new(),
                });
            }
            check_records(
                &records[range.clone()],
                &header,
                max_message_bytes,
                compacted,
            )?;
            end = range.end;
            headers.push(header);
        }
        if headers.is_empty() || end != records.len() {
            return Err(PartitionError::CorruptMessage(
                "records do not hold whole record batches".into(),
            ));
        }
        self.check_writable()?;
        let mut buf = BytesMut::from(&records[..]);

        let mut inner = self.inner.lock();
        // Under the log lock: a replica that stopped leading takes no more producer batches.
        self.check_leader(-1)?;
        for h in headers.iter().filter(|h| h.has_producer_id()) {
            let last_seq = h.base_sequence.wrapping_add(h.last_offset_delta);
            match inner
                .producers
                .check(h.producer_id, h.producer_epoch, h.base_sequence, last_seq)
            {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(meta) if headers.len() == 1 => {
                    return Ok(Appended {
                        base_offset: meta.first_offset,
                        end_offset: meta.last_offset + 1,
                        log_append_time: -1,
                        log_start_offset: inner.log.log_start_offset(),
                    });
                }
                SequenceCheck::Duplicate(_) | SequenceCheck::OutOfOrder => {
                    return Err(PartitionError::OutOfOrderSequence)
                }
                SequenceCheck::Fenced => return Err(PartitionError::InvalidProducerEpoch),
            }
        }
        let segment_before = inner.log.active_segment_base();
        let info = inner.log.append(&mut buf, self.leader_epoch(), now_ms)?;
        if inner.log.active_segment_base() != segment_before {
            // Rolled: snapshot the producer table as of the new segment's base, before this
            // append's batches, so a restart scans only the segments after it.
            self.snapshot_producers(&inner.producers, info.first_offset);
        }
        let mut offset = info.first_offset;
        for h in &headers {
            let first_offset = offset;
            offset += h.last_offset_delta as i64 + 1;
            if h.has_producer_id() {
                inner.producers.record(
                    h.producer_id,
                    h.producer_epoch,
                    BatchMeta {
                        first_seq: h.base_sequence,
                        last_seq: h.base_sequence.wrapping_add(h.last_offset_delta),
                        first_offset,
                        last_offset: offset - 1,
                    },
                );
            }
        }
        let log_start_offset = inner.log.log_start_offset();
        let end_offset = info.last_offset + 1;
        self.make_durable(inner, end_offset, &buf, &info.sync, true);
        Ok(Appended {
            base_offset: info.first_offset,
            end_offset,
            log_append_time: info.log_append_time,
            log_start_offset,
        })
    }

    /// After an append to the log (under its lock, handed in): the log end moves (waking
    /// replica fetches), then the bytes go to the journal, whose round completion moves the
    /// durable end, or under the `os` policy count as durable at once.
    fn make_durable(
        self: &Arc<Self>,
        inner: parking_lot::MutexGuard<'_, PartitionLog>,
        end_offset: i64,
        bytes: &[u8],
        sync: &chronik_storage::SyncHandle,
        fsync: bool,
    ) {
        // Before the journal sees the append, so its completion is never capped below it.
        self.log_end.send_replace(end_offset);
        match &self.storage.durability {
            Durability::Journal(journal) => {
                let listener: Arc<dyn DurableListener> = self.clone();
                journal.append(self.log_id, end_offset, bytes, sync, &listener, fsync);
                drop(inner);
            }
            Durability::PageCache => {
                drop(inner);
                self.mark_durable(end_offset);
            }
        }
    }

    /// A follower's append of batches fetched from the leader: verbatim, at the leader's
    /// offsets and epochs; the producer table and epoch cache learn them as the leader's did,
    /// so this replica answers a retried batch with its original offsets if it leads later.
    pub fn append_replicated(self: &Arc<Self>, records: &Bytes) -> Result<i64, PartitionError> {
        self.check_writable()?;
        let mut inner = self.inner.lock();
        if matches!(self.replication.lock().role, Role::Leader(_)) {
            return Err(PartitionError::NotLeaderOrFollower);
        }
        let segment_before = inner.log.active_segment_base();
        let info = inner.log.append_replicated(records)?;
        if inner.log.active_segment_base() != segment_before {
            self.snapshot_producers(&inner.producers, info.first_offset);
        }
        for item in batches(records) {
            let (header, _) = item.map_err(|e| PartitionError::CorruptMessage(e.to_string()))?;
            record_batch(&mut inner.producers, &header);
        }
        let end_offset = info.last_offset + 1;
        // Journaled (so recovery and checkpoints treat it like any append) but not fsynced
        // on its own: as in Kafka, acks=all rests on the leader's fsync and the ISR's copies.
        self.make_durable(inner, end_offset, records, &info.sync, false);
        Ok(end_offset)
    }

    /// Where a follower's next fetch starts, under one lock: its log end, the latest leader
    /// epoch in its log (-1: none) and its log start.
    pub fn fetch_position(&self) -> (i64, i32, i64) {
        let inner = self.inner.lock();
        let log = &inner.log;
        (
            log.log_end_offset(),
            log.latest_epoch().unwrap_or(-1),
            log.log_start_offset(),
        )
    }

    /// Whether every append so far was reported durable (a cut must not race the journal's
    /// completion of batches it removes).
    pub fn all_durable(&self) -> bool {
        *self.durable_end.borrow() >= *self.log_end.borrow() || self.storage_failed()
    }

    /// A follower cuts its log to `offset` (a tail the leader does not have). The journal's
    /// recovery point comes down first; producer state is rebuilt from what is left. Call
    /// only once `all_durable()`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), PartitionError> {
        let mut inner = self.inner.lock();
        if offset >= inner.log.log_end_offset() {
            return Ok(());
        }
        if let Durability::Journal(journal) = &self.storage.durability {
            journal
                .lower_recovery_point(self.log_id, offset)
                .map_err(|e| PartitionError::Storage(e.into()))?;
        }
        inner.log.truncate_to(offset)?;
        inner.producers = rebuild_producer_state(&self.storage.fs, &self.dir, &inner.log)?;
        let end = inner.log.log_end_offset();
        self.log_end.send_replace(end);
        for mark in [&self.durable_end, &self.high_watermark] {
            mark.send_if_modified(|m| {
                let cut = *m > end;
                *m = (*m).min(end);
                cut
            });
        }
        self.storage.stats.record_truncation();
        warn!(topic = %self.topic, partition = self.index, offset = end, "truncated the log to the leader's");
        Ok(())
    }

    /// A follower too far behind (the leader no longer has its log end): starts its log
    /// afresh at the leader's log start.
    pub fn restart_at(&self, offset: i64) -> Result<(), PartitionError> {
        let mut inner = self.inner.lock();
        if let Durability::Journal(journal) = &self.storage.durability {
            journal
                .lower_recovery_point(self.log_id, 0)
                .map_err(|e| PartitionError::Storage(e.into()))?;
        }
        inner.log.restart_at(offset)?;
        inner.producers = ProducerStateTable::default();
        let end = inner.log.log_end_offset();
        self.log_end.send_replace(end);
        self.durable_end.send_replace(end);
        self.storage.stats.record_log_restart();
        Ok(())
    }

    fn snapshot_producers(&self, producers: &ProducerStateTable, offset: i64) {
        if let Err(e) = producer_snapshot::write(&self.storage.fs, &self.dir, offset, producers) {
            // Only the next start's speed depends on it.
            warn!(topic = %self.topic, partition = self.index, error = %e, "writing a producer snapshot failed");
        }
    }

    /// Reads whole batches from `offset`, never beyond the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, PartitionError> {
        self.read_below(self.high_watermark(), offset, max_bytes, min_one_batch)
    }

    /// Whole batches from `offset` up to the log end, not just the high watermark: for a
    /// follower's fetch (its fetches are what move the watermark), and for a new group
    /// coordinator loading its log (as leader, its log is the partition's).
    pub fn read_to_log_end(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, PartitionError> {
        self.read_below(i64::MAX, offset, max_bytes, true)
    }

    /// Reads below `limit`. An offset past the log end is out of range; one between the
    /// limit and the log end reads nothing (a new leader's high watermark may still be
    /// catching up with offsets consumers already had).
    fn read_below(
        &self,
        limit: i64,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, PartitionError> {
        self.check_readable()?;
        let inner = self.inner.lock();
        let end = inner.log.log_end_offset();
        if offset > end || offset < inner.log.log_start_offset() {
            return Err(PartitionError::OffsetOutOfRange);
        }
        if offset >= limit {
            return Ok(ReadResult {
                bytes: Bytes::new(),
                first_batch_offset: None,
            });
        }
        Ok(inner
            .log
            .read(offset, max_bytes, limit.min(end), min_one_batch)?)
    }

    /// ListOffsets by timestamp: the first record with timestamp >= `timestamp`, below the HW.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        let high_watermark = self.high_watermark();
        // The batch is read under the lock; its records are searched (maybe inflated) after.
        let lookup = self.inner.lock().log.find_timestamp(timestamp)?;
        Ok(lookup
            .map(|l| l.resolve())
            .filter(|(offset, _)| *offset < high_watermark))
    }

    /// ListOffsets MAX_TIMESTAMP: the record with the largest timestamp.
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let lookup = self.inner.lock().log.find_max_timestamp();
        lookup.map(|l| l.resolve())
    }

    /// OffsetForLeaderEpoch: (epoch, end offset) as Kafka defines it.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.inner.lock().log.end_offset_for_epoch(epoch)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1 means the high watermark).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, PartitionError> {
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        let mut inner = self.inner.lock();
        if target > high_watermark || target < 0 {
            return Err(PartitionError::OffsetOutOfRange);
        }
        Ok(inner.log.delete_records_before(target)?)
    }

    /// Retention and compaction; called by the background log cleaner. Compaction holds the
    /// lock only to plan and to swap the cleaned segments in (`chronik_storage::cleaner`): its
    /// reading, decompressing, writing and fsyncing run without it, so produce, fetch and
    /// offset commits go on meanwhile.
    pub fn clean(&self, now_ms: i64) -> Result<(), PartitionError> {
        let plan = {
            let mut inner = self.inner.lock();
            inner.log.enforce_retention(now_ms)?;
            inner.log.plan_compaction(now_ms)
        };
        let Some(plan) = plan else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let mut cleaned = plan.build()?;
        let installing = std::time::Instant::now();
        let stats = self.inner.lock().log.install_compaction(&mut cleaned)?;
        let locked = installing.elapsed();
        cleaned.finish()?;
        if stats.segments_cleaned > 0 {
            info!(topic = %self.topic, partition = self.index, segments = stats.segments_cleaned,
                removed = stats.records_removed, pass_ms = started.elapsed().as_millis() as u64,
                locked_ms = locked.as_millis() as u64, "compaction pass");
        }
        Ok(())
    }

    fn check_readable(&self) -> Result<(), PartitionError> {
        if self.storage_failed() {
            return Err(PartitionError::Storage(StorageError::Io(
                std::io::Error::other("an fsync failed: the partition is offline until restart"),
            )));
        }
        Ok(())
    }

    /// Snapshots producer state at the log end, flushes and marks the log cleanly closed;
    /// returns the log end. Refused after a failed fsync, so the next start recovers.
    pub fn close(self) -> Result<i64, StorageError> {
        if self.storage_failed() {
            return Err(StorageError::Io(std::io::Error::other(
                "not closed cleanly: an fsync failed",
            )));
        }
        let inner = self.inner.into_inner();
        let end = inner.log.log_end_offset();
        if let Err(e) = producer_snapshot::write(&self.storage.fs, &self.dir, end, &inner.producers)
        {
            warn!(topic = %self.topic, partition = self.index, error = %e, "writing a producer snapshot failed");
        }
        inner.log.close()?;
        Ok(end)
    }
}

/// An ISR the leader proposes to the controller (Kafka's AlterPartition).
#[derive(Clone, Debug)]
pub struct IsrProposal {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// The journal's word on this partition's appends.
impl DurableListener for Partition {
    fn durable(&self, end_offset: i64) {
        self.mark_durable(end_offset);
    }

    fn failed(&self, _: &std::io::Error) {
        // Offline for good: waiters wake and answer KAFKA_STORAGE_ERROR. Otherwise the
        // journal is closing: waiters time out, nothing is acknowledged.
        if self.storage_failed() {
            self.mark_storage_failed();
        }
    }
}

/// The producer table as of the log end: the latest snapshot at or below it, plus the batch
/// headers after it.
fn rebuild_producer_state(
    fs: &FsRef,
    dir: &Path,
    log: &Log,
) -> Result<ProducerStateTable, StorageError> {
    let (from, mut producers) = producer_snapshot::load_latest(fs, dir, log.log_end_offset())
        .unwrap_or_else(|| (log.log_start_offset(), ProducerStateTable::default()));
    log.scan_batch_headers(from.max(log.log_start_offset()), |h| {
        record_batch(&mut producers, h)
    })?;
    Ok(producers)
}

fn record_batch(producers: &mut ProducerStateTable, h: &BatchHeader) {
    if h.has_producer_id() {
        producers.record(
            h.producer_id,
            h.producer_epoch,
            BatchMeta {
                first_seq: h.base_sequence,
                last_seq: h.base_sequence.wrapping_add(h.last_offset_delta),
                first_offset: h.base_offset,
                last_offset: h.last_offset(),
            },
        );
    }
}

/// Moves a watermark forward (never backward), waking its watchers only when it moved.
fn advance(watermark: &watch::Sender<i64>, candidate: i64) {
    watermark.send_if_modified(|current| {
        if candidate > *current {
            *current = candidate;
            true
        } else {
            false
        }
    });
}

/// Kafka's record checks on a producer's batch (`records::check_client_batch`: count, lengths,
/// offset deltas; compressed batches inflated at most `max.message.bytes` × 64). A compacted
/// topic keeps the latest record per key, so a record without a key could never be cleaned:
/// Kafka refuses it (INVALID_RECORD, with the offending records named per KIP-467).
fn check_records(
    batch: &[u8],
    header: &BatchHeader,
    max_message_bytes: i32,
    compacted: bool,
) -> Result<(), PartitionError> {
    let mut keyless = Vec::new();
    let mut index = 0;
    check_client_batch(batch, header, decompression_limit(max_message_bytes), |r| {
        if compacted && r.key.is_none() {
            keyless.push((
                index,
                "compacted topic cannot accept a record without a key".to_string(),
            ));
        }
        index += 1;
    })
    .map_err(|e| match e {
        RecordError::Decompress(DecompressError::Corrupt(_) | DecompressError::UnknownCodec(_)) => {
            PartitionError::CorruptMessage(e.to_string())
        }
        other => PartitionError::InvalidRecord {
            message: other.to_string(),
            record_errors: Vec::new(),
        },
    })?;
    if keyless.is_empty() {
        return Ok(());
    }
    Err(PartitionError::InvalidRecord {
        message: format!(
            "{} record(s) without a key in a batch for a compacted topic",
            keyless.len()
        ),
        record_errors: keyless,
    })
}
