//! `Log`: the ordered segments of one partition in one directory.
//!
//! Owns offset assignment, segment rolling, reads by offset and by timestamp,
//! retention, truncation, the log start offset and the leader epoch cache. It knows
//! nothing of the network or of Kafka requests, and never fsyncs on the append path:
//! each append returns a [`SyncHandle`] (the files it wrote) for the caller to hand to
//! the journal, whose checkpoints fsync them. [`Log::replay`] re-appends what the
//! journal holds after an unclean shutdown.
//!
//! Files in the directory:
//! - `<base>.log` / `.index` / `.timeindex`: segments (format in `segment.rs`).
//! - `log-start-offset`: text, one decimal offset; rewritten via `.tmp` + fsync +
//!   rename + directory fsync whenever the log start offset moves past the first
//!   segment's base.
//! - `leader-epoch-checkpoint`: see `leader_epoch.rs`.
//! - `.clean_shutdown`: written by [`Log::close`] after everything is fsynced, deleted
//!   by [`Log::open`] before the directory fsync it starts with. When it is missing at
//!   open, what lies at or past the *recovery point* (below it, a checkpoint fsynced
//!   everything, indexes included; unknown: every segment) is recovered: every batch from
//!   the last index entry at or below the point on is CRC-checked, a torn tail truncated,
//!   indexes rebuilt (segments wholly past the point from their start). Segments below it must follow
//!   each other without a gap (else the open fails), segments after a recovered one that
//!   lost its tail are dropped (the journal replays what was acknowledged), indexes are
//!   rebuilt rather than trusted if missing or inconsistent, and every segment's data is
//!   fsynced before the log is used. An I/O error while recovering fails the open. Without
//!   a journal ([`Log::open`]) every segment is recovered and kept.
//! - `*.cleaned`: compaction output of older versions; deleted at open.
//! - `compaction-staging/`: segments compaction builds aside (`cleaner`); removed at open.
//!
//! Every file operation goes through the [`FsRef`] given to [`Log::open`].
//!
//! Failure behaviour: an append that fails (data or index write, leader-epoch persist)
//! is undone, files and memory, back to the previous log end, so a retry neither
//! duplicates the batch nor reuses an offset. If even the undo fails, the log refuses
//! further appends and [`Log::close`] leaves no clean-shutdown marker, so the next open
//! recovers the segment. A failed roll leaves the previous active segment and no new
//! files (should even their removal fail, the next open removes the empty segment that
//! starts inside the previous one). Removed segments and created ones are made durable
//! with a directory fsync, and so is whatever `open` finds in the directory.
//!
//! Thread-safety: `Log` is not thread-safe by itself. The broker wraps each one in a
//! mutex; the only thing used outside that lock is the [`FileRef`] inside a
//! `SyncHandle`, which is safe to fsync concurrently with appends.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::batch::{self, BatchHeader};
use crate::config::{LogConfig, TimestampType};
use crate::error::{Result, StorageError};
use crate::fs::{FileRef, FsRef, OpenMode};
use crate::leader_epoch::LeaderEpochCache;
use crate::records::{decompression_limit, walk_records, OffsetDeltas};
use crate::segment::{Recover, Segment};

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

/// The files that hold unsynced bytes of one append (data and index files of the
/// segments it wrote to): what a checkpoint must fsync before it can rely on them. Cheap
/// to clone.
#[derive(Clone, Debug, Default)]
pub struct SyncHandle {
    files: Arc<[FileRef]>,
}

impl SyncHandle {
    pub fn new(files: Vec<FileRef>) -> SyncHandle {
        SyncHandle {
            files: files.into(),
        }
    }

    pub fn files(&self) -> &[FileRef] {
        &self.files
    }

    /// Fsyncs the files on the calling thread.
    pub fn sync_now(&self) -> io::Result<()> {
        self.files.iter().try_for_each(|f| f.sync_data())
    }
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
    pub(crate) fs: FsRef,
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Sorted by base offset; never empty; the last is the active segment.
    pub(crate) segments: Vec<Segment>,
    log_start_offset: i64,
    epochs: LeaderEpochCache,
    /// Files of segments rolled since the last append, not yet handed out for sync.
    rolled_unsynced: Vec<FileRef>,
    /// Set when a failed append could not be undone: the active segment's files may hold
    /// bytes the log does not account for.
    needs_recovery: bool,
    /// Bumped by whatever removes or rewrites data (truncation, retention, compaction), so a
    /// compaction planned before it is not installed after it.
    pub(crate) generation: u64,
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
    /// Opens (or creates) the log in `dir` without a journal: after an unclean shutdown
    /// every segment is recovered and kept, even after a gap.
    pub fn open(fs: &FsRef, dir: &Path, config: LogConfig) -> Result<Log> {
        Self::open_inner(fs, dir, config, None)
    }

    /// Opens (or creates) the log in `dir`, whose appends since `recovery_point` (0: none
    /// checkpointed yet) the journal holds. After an unclean shutdown, the segments at or
    /// past the recovery point are recovered; see the module docs.
    pub fn open_with_recovery_point(
        fs: &FsRef,
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
    ) -> Result<Log> {
        Self::open_inner(fs, dir, config, Some(recovery_point))
    }

    fn open_inner(
        fs: &FsRef,
        dir: &Path,
        config: LogConfig,
        recovery_point: Option<i64>,
    ) -> Result<Log> {
        fs.create_dir_all(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = fs.exists(&marker);
        if clean {
            // From here on a crash is unclean (a failed open only costs a full recovery).
            fs.remove_file(&marker)?;
        }
        crate::cleaner::remove_staging(fs, dir)?;
        let mut bases = Vec::new();
        for name in fs.list_dir(dir)? {
            if name.ends_with(".cleaned") || name.ends_with(".tmp") {
                fs.remove_file(&dir.join(&name))?;
            } else if let Some(base) = parse_segment_base(&name) {
                bases.push(base);
            }
        }
        // The segments found must be the ones a crash leaves: this also makes durable the
        // creations and removals whose directory fsync failed before (a segment removed
        // by a truncation must not come back once new appends reuse its offsets).
        fs.sync_dir(dir)?;
        bases.sort_unstable();
        let checkpoint = read_log_start_offset(fs, dir)?;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            // Segment i holds offsets from its base to the next base (or its end).
            let next = bases.get(i + 1).copied();
            let recover = match recovery_point {
                _ if clean => Recover::No,
                None => Recover::All,
                Some(point) if next.is_some_and(|next| next <= point) => Recover::No,
                Some(point) if base < point => Recover::From(point),
                Some(_) => Recover::All,
            };
            segments.push(Segment::open(
                fs,
                dir,
                base,
                config.index_interval_bytes,
                recover,
            )?);
        }
        remove_failed_rolls(fs, dir, &mut segments, !clean)?;
        if let (false, Some(point)) = (clean, recovery_point) {
            check_contiguous_below(&segments, point)?;
            if drop_segments_after_gap(dir, &mut segments, point)? {
                fs.sync_dir(dir)?;
            }
        }
        if !clean {
            // What recovery found may not be durable (a process crash keeps unsynced bytes
            // in the page cache, a failed truncation leaves its cut unsynced): make it so
            // before building on it. A failed fsync later would otherwise bring back an
            // older content under segments created since, and the broker takes the log
            // end found here as durable.
            for segment in &segments {
                segment.file().sync_data()?;
            }
        }
        if segments.is_empty() {
            segments.push(Segment::create(
                fs,
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
        let mut epochs = LeaderEpochCache::load(fs, dir)?;
        epochs.truncate_from_end(log_end)?;
        info!(
            dir = %dir.display(),
            clean,
            segments = segments.len(),
            log_start_offset,
            log_end_offset = log_end,
            "opened log"
        );
        Ok(Log {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            epochs,
            rolled_unsynced: Vec::new(),
            needs_recovery: false,
            generation: 0,
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
    /// On error nothing of the batches stays in the log (see the module docs).
    pub fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.check_writable()?;
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
        self.check_writable()?;
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
        self.write_active(batches, leader_epoch, first_offset, now_ms)?;
        debug!(first_offset, last_offset = next - 1, "appended");
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            log_append_time: if log_append { now_ms } else { -1 },
            max_timestamp,
            sync: self.take_sync_handle(),
        })
    }

    fn check_writable(&self) -> Result<()> {
        if self.needs_recovery {
            return Err(StorageError::Io(io::Error::other(
                "log refuses appends after a failed append could not be undone; reopen it",
            )));
        }
        Ok(())
    }

    /// Writes batches whose offsets are assigned to the active segment and records their
    /// leader epoch; on failure nothing of them stays (a retry would duplicate them).
    fn write_active(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        first_offset: i64,
        now_ms: i64,
    ) -> Result<()> {
        let end = self.active().end();
        let written = self
            .active_mut()
            .append(batches, now_ms)
            .and_then(|()| self.epochs.assign(leader_epoch, first_offset));
        if let Err(e) = written {
            if let Err(undo) = self.active_mut().roll_back(end) {
                warn!(dir = %self.dir.display(), error = %undo, "cannot undo a failed append; log needs recovery");
                self.needs_recovery = true;
            }
            return Err(e);
        }
        Ok(())
    }

    /// The files written since the last handle was taken: the active segment's and those
    /// of segments rolled meanwhile.
    fn take_sync_handle(&mut self) -> SyncHandle {
        let mut files = std::mem::take(&mut self.rolled_unsynced);
        files.extend(self.active().files());
        SyncHandle::new(files)
    }

    /// Re-appends batches read back from the journal after an unclean shutdown, verbatim at
    /// their own offsets: a batch the log already holds identically is skipped, a tail that
    /// differs is truncated first. A batch beyond the log end means that data the journal
    /// was to cover is missing, which is refused as corruption. Returns how many batches
    /// were written.
    pub fn replay(&mut self, batches: &[u8]) -> Result<usize> {
        self.check_writable()?;
        let mut written = 0;
        for item in batch::batches(batches) {
            let (header, range) = item?;
            let bytes = &batches[range];
            if header.base_offset < self.log_start_offset {
                continue; // removed by retention or DeleteRecords since
            }
            let end = self.log_end_offset();
            if header.base_offset > end {
                return Err(StorageError::Corrupt(format!(
                    "journal holds a batch at offset {} but the log ends at {end}",
                    header.base_offset
                )));
            }
            if header.base_offset < end {
                if self.holds_batch(&header, bytes)? {
                    continue;
                }
                self.truncate_to(header.base_offset)?;
            }
            let now = now_ms();
            self.maybe_roll(bytes.len() as u64, header.last_offset_delta as i64 + 1, now)?;
            self.write_active(
                bytes,
                header.partition_leader_epoch,
                header.base_offset,
                now,
            )?;
            written += 1;
        }
        Ok(written)
    }

    /// A follower's append: the leader's batches, verbatim at their own offsets and leader
    /// epochs, which must continue this log exactly (the follower fetched from its end).
    pub fn append_replicated(&mut self, batches: &[u8]) -> Result<AppendInfo> {
        self.check_writable()?;
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut max_timestamp = -1i64;
        let mut bytes = 0u64;
        let mut epochs = Vec::new();
        for item in batch::batches(batches) {
            let (header, range) = item?;
            if header.base_offset != next {
                return Err(StorageError::Corrupt(format!(
                    "replicated batch at offset {} does not continue the log at {next}",
                    header.base_offset
                )));
            }
            if epochs
                .last()
                .is_none_or(|&(e, _, _)| e != header.partition_leader_epoch)
            {
                epochs.push((header.partition_leader_epoch, next, range.start));
            }
            next = header.last_offset() + 1;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            bytes = range.end as u64;
        }
        if next == first_offset {
            return Err(batch::BatchError::Truncated {
                needed: batch::HEADER_SIZE,
                available: batches.len(),
            }
            .into());
        }
        let now = now_ms();
        // One write per run of batches of one leader epoch, so the epoch cache learns each
        // epoch's start offset.
        for (i, &(epoch, base, start)) in epochs.iter().enumerate() {
            let end = epochs.get(i + 1).map_or(bytes as usize, |&(_, _, s)| s);
            let chunk = &batches[start..end];
            self.maybe_roll(chunk.len() as u64, next - base, now)?;
            self.write_active(chunk, epoch, base, now)?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
            log_append_time: -1,
            max_timestamp,
            sync: self.take_sync_handle(),
        })
    }

    /// Whether the log holds exactly this batch at its base offset.
    fn holds_batch(&self, header: &BatchHeader, bytes: &[u8]) -> Result<bool> {
        let i = self
            .segments
            .partition_point(|s| s.base_offset() <= header.base_offset)
            .saturating_sub(1);
        Ok(
            match self.segments[i].batch_containing(header.base_offset)? {
                Some((found, data)) => found.base_offset == header.base_offset && data == bytes,
                None => false,
            },
        )
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
        let segment = Segment::create(
            &self.fs,
            &self.dir,
            base,
            self.config.index_interval_bytes,
            now_ms,
        )?;
        let old = self.active().files();
        self.rolled_unsynced.extend(old);
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
        Ok(self.find_timestamp(ts)?.map(TimestampLookup::resolve))
    }

    /// The first half of [`Log::offset_for_timestamp`]: finds and reads the batch, leaving its
    /// records (which may need decompressing) to [`TimestampLookup::resolve`], off any lock.
    pub fn find_timestamp(&self, ts: i64) -> Result<Option<TimestampLookup>> {
        for segment in &self.segments {
            if let Some((header, data)) = segment.find_by_timestamp(ts)? {
                return Ok(Some(TimestampLookup {
                    fallback: (header.base_offset, header.max_timestamp),
                    batch: Some((header, data)),
                    ts,
                    floor: self.log_start_offset,
                    limit: decompression_limit(self.config.max_message_bytes),
                }));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: offset and timestamp of the record with the largest
    /// timestamp (the earliest such record).
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        self.find_max_timestamp().map(TimestampLookup::resolve)
    }

    /// The first half of [`Log::max_timestamp_offset`], as [`Log::find_timestamp`].
    pub fn find_max_timestamp(&self) -> Option<TimestampLookup> {
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
        Some(TimestampLookup {
            fallback: (offset, ts),
            batch: best.batch_containing(offset).ok().flatten(),
            ts,
            floor: i64::MIN,
            limit: decompression_limit(self.config.max_message_bytes),
        })
    }

    /// Removes everything at offsets >= `offset` (whole batches: a batch straddling
    /// `offset` goes too). Used for leader-epoch truncation.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        self.generation += 1;
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        info!(dir = %self.dir.display(), offset, "truncating log");
        if offset <= self.log_start_offset || offset <= self.segments[0].base_offset() {
            return self.restart_at(offset);
        } else {
            let above = self.segments[1..]
                .iter()
                .filter(|s| s.base_offset() >= offset)
                .count();
            self.delete_newest(above)?;
            self.active_mut().truncate_to(offset)?;
        }
        self.rolled_unsynced.clear();
        let end = self.log_end_offset();
        self.epochs.truncate_from_end(end)?;
        Ok(())
    }

    /// Empties the log and starts it afresh at `offset` (any offset: a follower whose leader
    /// no longer has its log end starts again at the leader's log start). The log keeps a
    /// segment at every step, so a failure leaves it usable.
    pub fn restart_at(&mut self, offset: i64) -> Result<()> {
        self.generation += 1;
        info!(dir = %self.dir.display(), offset, "log starts afresh");
        self.delete_newest(self.segments.len() - 1)?;
        if self.segments[0].base_offset() == offset {
            self.segments[0].truncate_to(offset)?;
        } else {
            let fresh = Segment::create(
                &self.fs,
                &self.dir,
                offset,
                self.config.index_interval_bytes,
                now_ms(),
            )?;
            let old = std::mem::replace(&mut self.segments[0], fresh);
            old.delete()?;
            self.fs.sync_dir(&self.dir)?;
        }
        self.log_start_offset = offset;
        write_log_start_offset(&self.fs, &self.dir, offset)?;
        self.rolled_unsynced.clear();
        // Nothing is left that any epoch could describe.
        self.epochs.truncate_from_end(i64::MIN)?;
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
        write_log_start_offset(&self.fs, &self.dir, offset)?;
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
        self.generation += 1;
        let n = n.min(self.segments.len() - 1);
        if n == 0 {
            return Ok(());
        }
        for _ in 0..n {
            debug!(base = self.segments[0].base_offset(), "deleting segment");
            // Gone from the list only once its files are: a failure leaves the log as is.
            self.segments[0].delete()?;
            self.segments.remove(0);
        }
        self.fs.sync_dir(&self.dir)?;
        let first = self.segments[0].base_offset();
        if first > self.log_start_offset {
            self.log_start_offset = first;
            write_log_start_offset(&self.fs, &self.dir, first)?;
            self.epochs.truncate_from_start(first)?;
        }
        Ok(())
    }

    /// Deletes the `n` newest segments (the oldest always stays) and makes that durable:
    /// recovery would otherwise bring back data after a truncation point.
    fn delete_newest(&mut self, n: usize) -> Result<()> {
        self.generation += 1;
        let n = n.min(self.segments.len() - 1);
        if n == 0 {
            return Ok(());
        }
        for _ in 0..n {
            self.active().delete()?;
            self.segments.pop();
        }
        self.fs.sync_dir(&self.dir)?;
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
        self.fs.sync_dir(&self.dir)
    }

    /// Flushes everything and writes the clean-shutdown marker (not after a failed
    /// undo: the next open must recover).
    pub fn close(self) -> Result<()> {
        self.flush()?;
        if self.needs_recovery {
            return Err(StorageError::Io(io::Error::other(
                "log closed without clean-shutdown marker: it needs recovery",
            )));
        }
        self.fs.open(
            &self.dir.join(CLEAN_SHUTDOWN_FILE),
            OpenMode::CreateTruncate,
        )?;
        self.fs.sync_dir(&self.dir)?;
        Ok(())
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let fs = self.fs.clone();
        let dir = self.dir.clone();
        drop(self);
        fs.remove_dir_all(&dir)?;
        Ok(())
    }
}

/// Removes empty segments that start inside the previous one: left by a roll that failed
/// and could not remove its files, after which appends went on in the previous segment.
/// A non-empty one is corruption. When the last segment goes, the new last one is
/// recovered if `recover_last`.
/// Segments wholly below the recovery point were fsynced by a checkpoint, so they must
/// follow each other without a gap; one that does not is refused (the partition goes
/// offline) rather than cut.
fn check_contiguous_below(segments: &[Segment], point: i64) -> Result<()> {
    for pair in segments.windows(2) {
        if pair[1].base_offset() <= point && pair[0].next_offset() != pair[1].base_offset() {
            return Err(StorageError::Corrupt(format!(
                "segment {} ends at {} but the next starts at {}, below the recovery point {point}",
                pair[0].base_offset(),
                pair[0].next_offset(),
                pair[1].base_offset()
            )));
        }
    }
    Ok(())
}

/// Past the recovery point a segment may have lost its unsynced tail in a crash while a
/// later one kept some data. Everything acknowledged since the recovery point is in the
/// journal, in order, so what follows such a gap was never acknowledged, or comes back
/// with the replay: those segments go, as Kafka truncates after the first corrupt batch.
/// Returns whether any went.
fn drop_segments_after_gap(dir: &Path, segments: &mut Vec<Segment>, point: i64) -> Result<bool> {
    let gap = segments.windows(2).position(|pair| {
        pair[0].next_offset() < pair[1].base_offset() && pair[1].base_offset() > point
    });
    let Some(i) = gap else {
        return Ok(false);
    };
    warn!(
        dir = %dir.display(),
        segment = segments[i].base_offset(),
        ends_at = segments[i].next_offset(),
        dropped = segments.len() - i - 1,
        "a segment lost its tail in a crash; dropping the segments after it"
    );
    for segment in segments.drain(i + 1..) {
        segment.delete()?;
    }
    Ok(true)
}

fn remove_failed_rolls(
    fs: &FsRef,
    dir: &Path,
    segments: &mut Vec<Segment>,
    recover_last: bool,
) -> Result<()> {
    let mut removed_last = false;
    let mut i = 1;
    while i < segments.len() {
        let (prev, this) = (&segments[i - 1], &segments[i]);
        if this.base_offset() >= prev.next_offset() {
            i += 1;
            continue;
        }
        if !this.is_empty() {
            return Err(StorageError::Corrupt(format!(
                "segment {} starts inside segment {} (which ends at {})",
                this.base_offset(),
                prev.base_offset(),
                prev.next_offset()
            )));
        }
        warn!(dir = %dir.display(), base = this.base_offset(), "removing segment left by a failed roll");
        removed_last = i + 1 == segments.len();
        segments.remove(i).delete()?;
        fs.sync_dir(dir)?;
    }
    if removed_last && recover_last {
        segments.last_mut().expect("one left").recover()?;
    }
    Ok(())
}

/// A batch found by timestamp whose records are still to be searched: the search may inflate a
/// compressed batch (bounded by `max.message.bytes` × [`crate::records::DECOMPRESSION_RATIO`]),
/// so callers run [`TimestampLookup::resolve`] after releasing the partition's lock.
pub struct TimestampLookup {
    /// The answer when the records cannot be searched.
    fallback: (i64, i64),
    batch: Option<(BatchHeader, Vec<u8>)>,
    ts: i64,
    /// The log start offset: never answer below it.
    floor: i64,
    limit: usize,
}

impl TimestampLookup {
    /// The first record with timestamp >= the one sought, as `(offset, timestamp)`; the batch's
    /// base offset and max timestamp if the batch uses LogAppendTime (every record carries the
    /// batch's) or its records cannot be walked.
    pub fn resolve(self) -> (i64, i64) {
        let (offset, ts) = match &self.batch {
            Some((header, data)) if !header.timestamp_type_is_log_append() => {
                let mut found = None;
                let walked =
                    walk_records(data, header, OffsetDeltas::Increasing, self.limit, |r| {
                        let ts = header.base_timestamp.wrapping_add(r.timestamp_delta);
                        if found.is_none() && ts >= self.ts {
                            found = Some((header.base_offset + r.offset_delta as i64, ts));
                        }
                    });
                walked.ok().and(found).unwrap_or(self.fallback)
            }
            _ => self.fallback,
        };
        (offset.max(self.floor), ts)
    }
}

fn read_log_start_offset(fs: &FsRef, dir: &Path) -> Result<Option<i64>> {
    match fs.read(&dir.join(LOG_START_OFFSET_FILE)) {
        Ok(raw) => {
            let text = String::from_utf8_lossy(&raw);
            text.trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| StorageError::Corrupt(format!("bad log-start-offset {text:?}")))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn write_log_start_offset(fs: &FsRef, dir: &Path, offset: i64) -> io::Result<()> {
    fs.write_atomic(
        &dir.join(LOG_START_OFFSET_FILE),
        format!("{offset}\n").as_bytes(),
    )
}
