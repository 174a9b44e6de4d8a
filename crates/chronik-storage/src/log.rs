//! `Log`: the ordered segments of one partition in one directory.
//!
//! Owns offset assignment, segment rolling, reads by offset and by timestamp,
//! retention, truncation, the log start offset and the leader epoch cache. It knows
//! nothing of the network or of Kafka requests, and never fsyncs on the append path:
//! each append returns a [`SyncHandle`] for the caller to hand to `GroupCommit`.
//!
//! Files in the directory:
//! - `<base>.log` / `.index` / `.timeindex`: segments (format in `segment.rs`).
//! - `log-start-offset`: text, one decimal offset; rewritten via `.tmp` + fsync +
//!   rename whenever the log start offset moves past the first segment's base.
//! - `leader-epoch-checkpoint`: see `leader_epoch.rs`.
//! - `.clean_shutdown`: written by [`Log::close`] after everything is fsynced, deleted
//!   by [`Log::open`]. When it is missing at open, the last segment is recovered (every
//!   batch CRC-checked, torn tail truncated) and all indexes are rebuilt rather than
//!   trusted if missing or inconsistent.
//! - `*.cleaned`: compaction output not yet renamed into place; deleted at open.
//!
//! Thread-safety: `Log` is not thread-safe by itself. The broker wraps each one in a
//! mutex; the only thing used outside that lock is the `Arc<File>` inside a
//! `SyncHandle`, which is safe to fsync concurrently with appends.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use tracing::{debug, info};

use crate::batch::{self, BatchHeader};
use crate::config::{LogConfig, TimestampType};
use crate::error::{Result, StorageError};
use crate::group_commit::SyncHandle;
use crate::leader_epoch::LeaderEpochCache;
use crate::segment::Segment;

const CLEAN_SHUTDOWN_FILE: &str = ".clean_shutdown";
const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// Outcome of one [`Log::append`].
#[derive(Clone, Debug)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// The broker time stamped on the batches, or -1 unless LogAppendTime.
    pub log_append_time: i64,
    pub max_timestamp: i64,
    /// Files holding this append's unsynced bytes.
    pub sync: SyncHandle,
}

/// Outcome of one [`Log::read`].
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    /// Whole batches; empty when nothing qualifies.
    pub bytes: Bytes,
    /// Base offset of the first batch in `bytes`.
    pub first_batch_offset: Option<i64>,
}

/// The ordered segments of one partition.
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Sorted by base offset; never empty; the last is the active segment.
    pub(crate) segments: Vec<Segment>,
    log_start_offset: i64,
    epochs: LeaderEpochCache,
    /// Files of segments rolled since the last append, not yet handed out for sync.
    rolled_unsynced: Vec<Arc<std::fs::File>>,
}

fn parse_segment_base(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Log {
    /// Opens (or creates) the log in `dir`. See the module docs for what happens after
    /// an unclean shutdown.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log> {
        fs::create_dir_all(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                fs::remove_file(entry.path())?;
            } else if let Some(base) = parse_segment_base(&name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let checkpoint = read_log_start_offset(dir)?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            segments.push(Segment::open(
                dir,
                base,
                config.index_interval_bytes,
                !clean && is_last,
            )?);
        }
        if segments.is_empty() {
            segments.push(Segment::create(
                dir,
                checkpoint.unwrap_or(0),
                config.index_interval_bytes,
                now_ms(),
            )?);
        }
        let first_base = segments[0].base_offset();
        let log_end = segments.last().expect("non-empty").next_offset();
        let log_start_offset = checkpoint
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);
        let mut epochs = LeaderEpochCache::load(dir)?;
        epochs.truncate_from_end(log_end)?;
        if clean {
            fs::remove_file(&marker)?;
        }
        info!(
            dir = %dir.display(),
            clean,
            segments = segments.len(),
            log_start_offset,
            log_end_offset = log_end,
            "opened log"
        );
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            epochs,
            rolled_unsynced: Vec::new(),
        })
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has a segment")
    }

    /// Appends producer batches (back to back in `batches`), assigning offsets by
    /// patching each header in place. Rolls the active segment first when needed.
    pub fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let mut count = 0i64;
        for item in batch::batches(batches) {
            let (header, range) = item?;
            if range.len() > self.config.max_message_bytes.max(0) as usize {
                return Err(StorageError::MessageTooLarge {
                    size: range.len(),
                    max: self.config.max_message_bytes,
                });
            }
            count += header.last_offset_delta as i64 + 1;
        }
        if count == 0 {
            return Err(batch::BatchError::Truncated {
                needed: batch::HEADER_SIZE,
                available: batches.len(),
            }
            .into());
        }
        self.maybe_roll(batches.len() as u64, count, now_ms)?;

        let first_offset = self.log_end_offset();
        let log_append = self.config.timestamp_type == TimestampType::LogAppendTime;
        let mut next = first_offset;
        let mut max_timestamp = -1i64;
        let mut pos = 0;
        while pos < batches.len() {
            let slice = &mut batches[pos..];
            let header = batch::parse_header(slice)?;
            batch::patch_base_offset(slice, next);
            batch::patch_partition_leader_epoch(slice, leader_epoch);
            if log_append {
                batch::set_log_append_time(slice, now_ms);
                max_timestamp = now_ms;
            } else {
                max_timestamp = max_timestamp.max(header.max_timestamp);
            }
            next += header.last_offset_delta as i64 + 1;
            pos += header.total_size();
        }
        self.active_mut().append(batches, now_ms)?;
        self.epochs.assign(leader_epoch, first_offset)?;
        let mut files = std::mem::take(&mut self.rolled_unsynced);
        files.push(self.active().file().clone());
        debug!(first_offset, last_offset = next - 1, "appended");
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            log_append_time: if log_append { now_ms } else { -1 },
            max_timestamp,
            sync: SyncHandle::new(files),
        })
    }

    /// Rolls the active segment if `bytes` more would exceed `segment_bytes`, if it is
    /// older than `segment_ms`, or if `count` more offsets would overflow its u32
    /// relative offsets. An empty active segment is never rolled.
    fn maybe_roll(&mut self, bytes: u64, count: i64, now_ms: i64) -> Result<()> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let max_size = self.config.segment_bytes.min(u32::MAX as u64);
        let too_big = active.size() + bytes > max_size;
        let too_old = now_ms - active.created_ms() >= self.config.segment_ms;
        let offsets_overflow =
            active.next_offset() + count - 1 - active.base_offset() > u32::MAX as i64;
        if too_big || too_old || offsets_overflow {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset.
    pub(crate) fn roll(&mut self, now_ms: i64) -> Result<()> {
        let base = self.log_end_offset();
        debug!(dir = %self.dir.display(), base, "rolling segment");
        let segment = Segment::create(&self.dir, base, self.config.index_interval_bytes, now_ms)?;
        let old = self.active().file().clone();
        self.rolled_unsynced.push(old);
        self.segments.push(segment);
        Ok(())
    }

    /// Reads whole batches starting with the one containing `start_offset`; see
    /// [`Segment::read`] for the bounds. Offsets below the log start or above the log
    /// end are out of range; reading at the log end returns nothing.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult> {
        self.check_range(start_offset)?;
        let first = self
            .segments
            .partition_point(|s| s.base_offset() <= start_offset)
            .saturating_sub(1);
        for segment in &self.segments[first..] {
            if segment.base_offset() >= max_offset_exclusive {
                break;
            }
            if let Some((bytes, base)) =
                segment.read(start_offset, max_bytes, max_offset_exclusive, min_one_batch)?
            {
                return Ok(ReadResult {
                    bytes,
                    first_batch_offset: Some(base),
                });
            }
        }
        Ok(ReadResult::default())
    }

    fn check_range(&self, offset: i64) -> Result<()> {
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        Ok(())
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn active_segment_base(&self) -> i64 {
        self.active().base_offset()
    }

    /// Bytes of all segment data files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// ListOffsets by timestamp: the first record whose timestamp is >= `ts`, as
    /// `(offset, timestamp)`, in the first batch whose max timestamp is >= `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        for segment in &self.segments {
            if let Some((header, data)) = segment.find_by_timestamp(ts)? {
                let found = first_record_at_or_after(&header, data, ts);
                return Ok(Some((found.0.max(self.log_start_offset), found.1)));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: offset and timestamp of the record with the largest
    /// timestamp (the earliest such record).
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let best = self
            .segments
            .iter()
            .filter(|s| s.max_timestamp() >= 0)
            .fold(None::<&Segment>, |best, s| match best {
                Some(b) if b.max_timestamp() >= s.max_timestamp() => Some(b),
                _ => Some(s),
            })?;
        let ts = best.max_timestamp();
        let offset = best.offset_of_max_timestamp();
        match best.batch_containing(offset) {
            Ok(Some((header, data))) => Some(first_record_at_or_after(&header, data, ts)),
            _ => Some((offset, ts)),
        }
    }

    /// Removes everything at offsets >= `offset` (whole batches: a batch straddling
    /// `offset` goes too). Used for leader-epoch truncation.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        info!(dir = %self.dir.display(), offset, "truncating log");
        if offset <= self.log_start_offset || offset <= self.segments[0].base_offset() {
            // Nothing survives: start afresh at `offset`.
            for segment in self.segments.drain(..) {
                segment.delete()?;
            }
            self.segments.push(Segment::create(
                &self.dir,
                offset,
                self.config.index_interval_bytes,
                now_ms(),
            )?);
            self.log_start_offset = offset;
            write_log_start_offset(&self.dir, offset)?;
        } else {
            while self.segments.len() > 1 && self.active().base_offset() >= offset {
                let segment = self.segments.pop().expect("len > 1");
                segment.delete()?;
            }
            self.active_mut().truncate_to(offset)?;
        }
        self.rolled_unsynced.clear();
        let end = self.log_end_offset();
        self.epochs.truncate_from_end(end)?;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (persisted) and deletes
    /// segments entirely below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        if offset > self.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        if offset == self.log_end_offset() && !self.active().is_empty() {
            self.roll(now_ms())?;
        }
        self.log_start_offset = offset;
        write_log_start_offset(&self.dir, offset)?;
        let removable = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.next_offset() <= offset)
            .count();
        self.delete_oldest(removable)?;
        self.epochs.truncate_from_start(offset)?;
        Ok(self.log_start_offset)
    }

    /// Deletes the `n` oldest segments (never the active one) and moves the log start
    /// offset to the new first segment if it was below it.
    pub(crate) fn delete_oldest(&mut self, n: usize) -> Result<()> {
        let n = n.min(self.segments.len() - 1);
        if n == 0 {
            return Ok(());
        }
        for segment in self.segments.drain(..n) {
            debug!(base = segment.base_offset(), "deleting segment");
            segment.delete()?;
        }
        let first = self.segments[0].base_offset();
        if first > self.log_start_offset {
            self.log_start_offset = first;
            write_log_start_offset(&self.dir, first)?;
            self.epochs.truncate_from_start(first)?;
        }
        Ok(())
    }

    /// Time and size retention (only when the cleanup policy includes Delete). An
    /// active segment past retention is rolled first so it can go, Kafka-style.
    /// Returns the number of segments deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        if !self.config.cleanup_policy.includes_delete() {
            return Ok(0);
        }
        let mut deleted = 0;
        if self.config.retention_ms >= 0 {
            let cutoff = now_ms - self.config.retention_ms;
            let active = self.active();
            if !active.is_empty() && active.max_timestamp() < cutoff {
                self.roll(now_ms)?;
            }
            let n = self.segments[..self.segments.len() - 1]
                .iter()
                .take_while(|s| s.max_timestamp() < cutoff)
                .count();
            self.delete_oldest(n)?;
            deleted += n;
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            let mut n = 0;
            for segment in &self.segments[..self.segments.len() - 1] {
                if excess - (segment.size() as i64) < 0 {
                    break;
                }
                excess -= segment.size() as i64;
                n += 1;
            }
            self.delete_oldest(n)?;
            deleted += n;
        }
        if deleted > 0 {
            info!(dir = %self.dir.display(), deleted, "retention deleted segments");
        }
        Ok(deleted)
    }

    /// Walks batch headers from the batch containing `from_offset` to the end, jumping
    /// by length (used to rebuild idempotent-producer state at startup).
    pub fn scan_batch_headers(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<()> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset() <= from_offset)
            .saturating_sub(1);
        for segment in &self.segments[first..] {
            segment.scan_headers(from_offset, &mut f)?;
        }
        Ok(())
    }

    /// OffsetForLeaderEpoch; see `LeaderEpochCache::end_offset_for_epoch`.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs
            .end_offset_for_epoch(epoch, self.log_end_offset())
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// One compaction pass (only when the cleanup policy includes Compact); see
    /// `cleaner.rs`. Offsets of surviving records never change.
    pub fn compact(&mut self, now_ms: i64) -> Result<crate::cleaner::CompactionStats> {
        if !self.config.cleanup_policy.includes_compact() {
            return Ok(Default::default());
        }
        crate::cleaner::compact(self, now_ms)
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fsyncs every segment (data and indexes) and the directory.
    pub fn flush(&self) -> io::Result<()> {
        for segment in &self.segments {
            segment.flush()?;
        }
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Flushes everything and writes the clean-shutdown marker.
    pub fn close(self) -> Result<()> {
        self.flush()?;
        let marker = fs::File::create(self.dir.join(CLEAN_SHUTDOWN_FILE))?;
        marker.sync_all()?;
        fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

/// Decodes `data` (one batch) to find the first record with timestamp >= `ts`; falls
/// back to the batch's base offset and max timestamp if decoding fails or the batch
/// uses LogAppendTime (where every record carries the batch's max timestamp).
fn first_record_at_or_after(header: &BatchHeader, data: Vec<u8>, ts: i64) -> (i64, i64) {
    let fallback = (header.base_offset, header.max_timestamp);
    if header.timestamp_type_is_log_append() {
        return fallback;
    }
    let mut buf = Bytes::from(data);
    match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => set
            .records
            .iter()
            .find(|r| r.timestamp >= ts)
            .map_or(fallback, |r| (r.offset, r.timestamp)),
        Err(_) => fallback,
    }
}

fn read_log_start_offset(dir: &Path) -> Result<Option<i64>> {
    match fs::read_to_string(dir.join(LOG_START_OFFSET_FILE)) {
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| StorageError::Corrupt(format!("bad log-start-offset {text:?}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write_log_start_offset(dir: &Path, offset: i64) -> io::Result<()> {
    let tmp = dir.join(format!("{LOG_START_OFFSET_FILE}.tmp"));
    let mut file = fs::File::create(&tmp)?;
    io::Write::write_all(&mut file, format!("{offset}\n").as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(LOG_START_OFFSET_FILE))
}
