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

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use bytes::{Bytes, BytesMut};
use chronik_storage::batch::{batches, validate_batch};
use chronik_storage::fs::FsRef;
use chronik_storage::{Log, ReadResult, StorageError, SyncHandle};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::watch;
use uuid::Uuid;

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
    /// Files to fsync; None for a duplicate that was not written again.
    pub sync: Option<SyncHandle>,
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
}

impl Partition {
    /// Opens (recovering if needed) the log in `dir` and rebuilds producer state from it.
    pub fn open(
        fs: &FsRef,
        dir: &Path,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        leader_epoch: i32,
        settings: PartitionSettings,
    ) -> Result<Partition, StorageError> {
        let log = Log::open(fs, dir, settings.log.clone())?;
        let mut producers = ProducerStateTable::default();
        log.scan_batch_headers(log.log_start_offset(), |h| {
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
        })?;
        // What recovery kept is on disk; a single replica is its whole ISR.
        let (durable_end, _) = watch::channel(log.log_end_offset());
        let (high_watermark, _) = watch::channel(log.log_end_offset());
        Ok(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            leader_epoch: AtomicI32::new(leader_epoch),
            inner: Mutex::new(PartitionLog {
                log,
                producers,
                settings,
            }),
            durable_end,
            high_watermark,
            storage_failed: AtomicBool::new(false),
        })
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

    pub fn storage_failed(&self) -> bool {
        self.storage_failed.load(Ordering::Acquire)
    }

    /// Records that everything below `end_offset` is on disk, and advances the high watermark
    /// accordingly (the ISR of a single replica is itself).
    pub fn mark_durable(&self, end_offset: i64) {
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

    /// Validates the producer's batches, assigns offsets and appends them as one write.
    pub fn append(&self, records: &Bytes, now_ms: i64) -> Result<Appended, PartitionError> {
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
        if self.storage_failed() {
            return Err(PartitionError::Storage(StorageError::Corrupt(
                "an earlier fsync failed; partition is offline".into(),
            )));
        }
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
                        sync: None,
                    });
                }
                SequenceCheck::Duplicate(_) | SequenceCheck::OutOfOrder => {
                    return Err(PartitionError::OutOfOrderSequence)
                }
                SequenceCheck::Fenced => return Err(PartitionError::InvalidProducerEpoch),
            }
        }
        let info = inner.log.append(&mut buf, self.leader_epoch(), now_ms)?;
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
        drop(inner);
        Ok(Appended {
            base_offset: info.first_offset,
            end_offset: info.last_offset + 1,
            log_append_time: info.log_append_time,
            log_start_offset,
            sync: Some(info.sync),
        })
    }

    /// Reads whole batches from `offset`, never beyond the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, PartitionError> {
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

    /// Flushes and marks the log cleanly closed.
    pub fn close(self) -> Result<(), StorageError> {
        self.inner.into_inner().log.close()
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
