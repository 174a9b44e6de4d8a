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
//! At open, the log is recovered from its recovery point, the journal's batches for it are
//! replayed, and the producer table is loaded from the latest snapshot (`producer_snapshot`)
//! plus the batch headers after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chronik_storage::batch::{batches, validate_batch, BatchHeader};
use chronik_storage::fs::FsRef;
use chronik_storage::journal::{DurableListener, Journal, LogId};
use chronik_storage::{Log, ReadResult, StorageError};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::warn;
use uuid::Uuid;

use super::producer_snapshot;
use super::producer_state::{BatchMeta, ProducerStateTable, SequenceCheck};
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
}

/// What a crash left for a partition: the recovery point of the last checkpoint and the
/// batches the journal holds for it (replayed at open).
#[derive(Debug, Default)]
pub struct Recovery {
    pub point: Option<i64>,
    pub journaled: Vec<Bytes>,
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

pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    leader_epoch: AtomicI32,
    inner: Mutex<PartitionLog>,
    durable_end: watch::Sender<i64>,
    high_watermark: watch::Sender<i64>,
    /// Set when an fsync failed: what follows the durable end may be lost, so appends stop.
    storage_failed: AtomicBool,
    storage: PartitionStorage,
    dir: PathBuf,
    log_id: LogId,
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
        // What recovery kept is on disk; a single replica is its whole ISR.
        let (durable_end, _) = watch::channel(log.log_end_offset());
        let (high_watermark, _) = watch::channel(log.log_end_offset());
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
            durable_end,
            high_watermark,
            storage_failed: AtomicBool::new(false),
            storage: storage.clone(),
            dir: dir.to_path_buf(),
            log_id: log_id(topic_id, index),
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

    /// Records that everything below `end_offset` is on disk, and advances the high watermark
    /// accordingly (the ISR of a single replica is itself). Never after a failed fsync: Linux
    /// reports a lost write once, and a later round's success says nothing about it.
    pub fn mark_durable(&self, end_offset: i64) {
        if self.storage_failed() {
            return;
        }
        advance(&self.durable_end, end_offset);
        advance(&self.high_watermark, end_offset);
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

    pub fn log_end_offset(&self) -> i64 {
        self.inner.lock().log.log_end_offset()
    }

    pub fn min_insync_replicas(&self) -> i32 {
        self.inner.lock().settings.min_insync_replicas
    }

    /// Size of the in-sync replica set. A single node is always its own ISR.
    pub fn isr_size(&self) -> i32 {
        1
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
                return Err(PartitionError::CorruptMessage("empty record batch".into()));
            }
            if compacted {
                check_keys(&records.slice(range.clone()))?;
            }
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
        match &self.storage.durability {
            Durability::Journal(journal) => {
                let listener: Arc<dyn DurableListener> = self.clone();
                journal.append(self.log_id, end_offset, &buf, &info.sync, &listener);
                drop(inner);
            }
            Durability::PageCache => {
                drop(inner);
                self.mark_durable(end_offset);
            }
        }
        Ok(Appended {
            base_offset: info.first_offset,
            end_offset,
            log_append_time: info.log_append_time,
            log_start_offset,
        })
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
        self.check_readable()?;
        let high_watermark = self.high_watermark();
        let inner = self.inner.lock();
        if offset > high_watermark || offset < inner.log.log_start_offset() {
            return Err(PartitionError::OffsetOutOfRange);
        }
        Ok(inner
            .log
            .read(offset, max_bytes, high_watermark, min_one_batch)?)
    }

    /// ListOffsets by timestamp: the first record with timestamp >= `timestamp`, below the HW.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        let high_watermark = self.high_watermark();
        let found = self.inner.lock().log.offset_for_timestamp(timestamp)?;
        Ok(found.filter(|(offset, _)| *offset < high_watermark))
    }

    /// ListOffsets MAX_TIMESTAMP: the record with the largest timestamp.
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        self.inner.lock().log.max_timestamp_offset()
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

    /// Retention and compaction; called by the background log cleaner.
    pub fn clean(&self, now_ms: i64) -> Result<(), PartitionError> {
        let mut inner = self.inner.lock();
        inner.log.enforce_retention(now_ms)?;
        inner.log.compact(now_ms)?;
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

/// A compacted topic keeps the latest record per key, so a record without a key could never be
/// cleaned: Kafka refuses it (INVALID_RECORD, with the offending records named per KIP-467).
/// Only compacted topics pay for decoding the records here.
fn check_keys(batch: &Bytes) -> Result<(), PartitionError> {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| PartitionError::CorruptMessage(e.to_string()))?;
    let record_errors: Vec<(i32, String)> = set
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| {
            (
                i as i32,
                "compacted topic cannot accept a record without a key".into(),
            )
        })
        .collect();
    if record_errors.is_empty() {
        return Ok(());
    }
    Err(PartitionError::InvalidRecord {
        message: format!(
            "{} record(s) without a key in a batch for a compacted topic",
            record_errors.len()
        ),
        record_errors,
    })
}
