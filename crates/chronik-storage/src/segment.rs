//! One segment of a log: a `.log` data file plus its sparse `.index` and `.timeindex`.
//!
//! On-disk format: `<base>.log` (base = 20-digit zero-padded base offset) holds record
//! batches back to back, verbatim as produced except for the patched `baseOffset` /
//! `partitionLeaderEpoch` (and LogAppendTime). There is no extra framing: the batch
//! header's own length and CRC-32C are the framing and checksum. Data is written with
//! positional writes at the end of the file and is not fsynced here: callers fsync the
//! shared [`FileRef`] (group commit) outside the log lock. Every file operation goes
//! through the log's [`FsRef`].
//!
//! Invariant: batches in a segment are contiguous — the first starts at the segment's
//! base offset and each next one at the previous one's last offset + 1 (compaction keeps
//! emptied batches to preserve this). Recovery relies on it to catch corruption of
//! `baseOffset`, which the CRC does not cover.
//!
//! Crash behaviour: a crash can leave a torn or corrupt tail (a partial batch, or bytes
//! that never reached the disk). [`Segment::recover`] scans every batch from the start,
//! validates its CRC, truncates the file at the first bad one and rebuilds both indexes
//! from what survives. Indexes are never trusted after an unclean shutdown. An I/O
//! error while scanning is returned, never taken for the end of the data.
//!
//! Failure behaviour: creating a segment removes whatever it created if any step fails
//! (a stray `.log` would be taken for a segment at open) and fsyncs the directory once
//! all files exist. An append that fails part-way is undone by the caller with
//! [`Segment::roll_back`] to the [`Segment::end`] taken before it.
//!
//! Not thread-safe: owned by its `Log`, which the broker serialises.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tracing::{debug, warn};

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::error::{Result, StorageError};
use crate::fs::{FileRef, FsRef, OpenMode};
use crate::offset_index::OffsetIndex;
use crate::time_index::TimeIndex;

/// Largest read done up front when looking for the first batch of a fetch.
const MAX_READ_WINDOW: usize = 1 << 20;

/// File name of a segment's data file, e.g. `00000000000000000000.log`.
pub fn log_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

fn index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}

fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// The three files of a segment: data, offset index, time index.
fn segment_paths(dir: &Path, base_offset: i64) -> [PathBuf; 3] {
    [
        dir.join(log_file_name(base_offset)),
        index_path(dir, base_offset),
        time_index_path(dir, base_offset),
    ]
}

/// Where a segment ends: everything [`Segment::roll_back`] needs to undo later appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentEnd {
    size: u64,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_last_index: u64,
    created_ms: i64,
    index_entries: usize,
    time_index_entries: usize,
}

/// How [`Segment::open`] treats the segment after an unclean shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recover {
    /// Trust it (below the recovery point, or a clean shutdown).
    No,
    /// Validate what follows this offset (the recovery point falls inside the segment).
    From(i64),
    /// Validate all of it.
    All,
}

/// One segment: data file, indexes and the summary state derived from them.
pub struct Segment {
    fs: FsRef,
    base_offset: i64,
    dir: PathBuf,
    file: FileRef,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    index_interval: u64,
    bytes_since_last_index: u64,
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    created_ms: i64,
}

impl Segment {
    /// Creates a new, empty segment (replacing any files of the same base offset) and
    /// fsyncs the directory. On failure, removes the files it created.
    pub fn create(
        fs: &FsRef,
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        now_ms: i64,
    ) -> Result<Segment> {
        let (file, offset_index, time_index) = match Self::create_files(fs, dir, base_offset) {
            Ok(created) => created,
            Err(e) => {
                for path in segment_paths(dir, base_offset) {
                    if let Err(undo) = fs.remove_file_if_exists(&path) {
                        warn!(path = %path.display(), error = %undo, "cannot remove file of a failed segment creation");
                    }
                }
                if let Err(undo) = fs.sync_dir(dir) {
                    warn!(dir = %dir.display(), error = %undo, "cannot fsync directory after a failed segment creation");
                }
                return Err(e.into());
            }
        };
        Ok(Segment {
            fs: fs.clone(),
            base_offset,
            dir: dir.to_path_buf(),
            file,
            size: 0,
            offset_index,
            time_index,
            index_interval: index_interval as u64,
            bytes_since_last_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            created_ms: now_ms,
        })
    }

    fn create_files(
        fs: &FsRef,
        dir: &Path,
        base_offset: i64,
    ) -> io::Result<(FileRef, OffsetIndex, TimeIndex)> {
        let [log_path, idx_path, tidx_path] = segment_paths(dir, base_offset);
        let file = fs.open(&log_path, OpenMode::CreateTruncate)?;
        let mut offset_index = OffsetIndex::open(fs, &idx_path)?;
        offset_index.clear()?;
        let mut time_index = TimeIndex::open(fs, &tidx_path)?;
        time_index.clear()?;
        // Recovery finds segments by listing the directory: appends into a segment whose
        // entry could vanish in a crash would be lost with it.
        fs.sync_dir(dir)?;
        Ok((file, offset_index, time_index))
    }

    /// Opens an existing segment, recovering it as `recover` says. When an index file is
    /// missing or inconsistent the whole segment is scanned and validated (see
    /// [`Self::recover`]); a trusted one has only the tail after its last index entry read.
    pub fn open(
        fs: &FsRef,
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        recover: Recover,
    ) -> Result<Segment> {
        let [log_path, idx_path, tidx_path] = segment_paths(dir, base_offset);
        let file = fs.open(&log_path, OpenMode::Existing)?;
        let size = file.len()?;
        let created_ms = fs.modified_ms(&log_path).unwrap_or(0);
        let indexes_present = fs.exists(&idx_path) && fs.exists(&tidx_path);
        let mut segment = Segment {
            fs: fs.clone(),
            base_offset,
            dir: dir.to_path_buf(),
            file,
            size,
            offset_index: OffsetIndex::open(fs, &idx_path)?,
            time_index: TimeIndex::open(fs, &tidx_path)?,
            index_interval: index_interval as u64,
            bytes_since_last_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            created_ms,
        };
        let indexes_usable = indexes_present && segment.offset_index.is_consistent(segment.size);
        if let (Recover::From(offset), true) = (recover, indexes_usable) {
            segment.recover_from(offset)?;
            return segment.with_created_ms();
        }
        let trusted = recover == Recover::No
            && indexes_usable
            && match segment.load_tail_state() {
                Ok(()) => segment
                    .time_index
                    .is_consistent((segment.next_offset - base_offset) as u64),
                Err(StorageError::Io(e)) => return Err(e.into()),
                Err(_) => false,
            };
        if !trusted {
            segment.recover()?;
        }
        segment.with_created_ms()
    }

    /// `segment.ms` counts from the first batch's timestamp after a reopen.
    fn with_created_ms(mut self) -> Result<Segment> {
        if let Some(first) = self.header_at(0)? {
            if first.max_timestamp >= 0 {
                self.created_ms = first.max_timestamp;
            }
        }
        Ok(self)
    }

    /// Scans every batch from the start, validating its CRC-32C; truncates the file at
    /// the first torn or corrupt batch and rebuilds both indexes (fsynced). Returns the
    /// number of bytes cut off.
    pub fn recover(&mut self) -> Result<u64> {
        self.offset_index.clear()?;
        self.time_index.clear()?;
        self.reset_state();
        self.validate_from(0)
    }

    /// Like [`Self::recover`], but trusts what lies below `offset` (a checkpoint fsynced
    /// it, indexes included): index entries past it are dropped, and validation starts at
    /// the last offset-index entry at or below it, so a large segment is not rescanned
    /// from its start after every crash.
    pub fn recover_from(&mut self, offset: i64) -> Result<u64> {
        let relative = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u64;
        self.offset_index.truncate_to_relative(relative)?;
        self.time_index.truncate_to_offset(relative + 1)?;
        self.reset_state();
        if let Some(t) = self.time_index.last() {
            self.max_timestamp = t.timestamp;
            self.offset_of_max_timestamp = self.base_offset + t.relative_offset as i64;
        }
        let start = match self.offset_index.last() {
            Some(entry) => {
                self.next_offset = self.base_offset + entry.relative_offset as i64;
                entry.position as u64
            }
            None => 0,
        };
        self.validate_from(start)
    }

    /// Validates every batch from `start` (where a batch at `self.next_offset` begins) to
    /// the end, indexing each; truncates at the first torn or corrupt one.
    fn validate_from(&mut self, start: u64) -> Result<u64> {
        let mut pos = start;
        let mut buf = Vec::new();
        loop {
            let header = match self.header_at(pos) {
                Ok(Some(header)) => header,
                Ok(None) | Err(StorageError::InvalidBatch(_)) => break,
                // Data after an unreadable spot may well be valid: never cut it.
                Err(e) => return Err(e),
            };
            let total = header.total_size() as u64;
            if pos + total > self.size
                || header.base_offset != self.next_offset
                || header.last_offset() - self.base_offset > u32::MAX as i64
            {
                break;
            }
            buf.resize(total as usize, 0);
            self.file.read_exact_at(&mut buf, pos)?;
            if batch::validate_stored_batch(&buf).is_err() {
                break;
            }
            self.index_batch(&header, pos)?;
            pos += total;
        }
        let cut = self.size - pos;
        if cut > 0 {
            warn!(
                segment = self.base_offset,
                valid_bytes = pos,
                cut_bytes = cut,
                "truncating torn or corrupt segment tail"
            );
            self.file.set_len(pos)?;
            self.size = pos;
        }
        // The old entries may be durable: a crash before the rebuilt ones are would bring
        // them back, pointing into whatever data is then written at their positions.
        self.offset_index.sync()?;
        self.time_index.sync()?;
        Ok(cut)
    }

    fn reset_state(&mut self) {
        self.bytes_since_last_index = 0;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
    }

    /// Rebuilds summary state from the indexes plus a scan of the batches after the
    /// last offset index entry. Fails on any malformed header.
    fn load_tail_state(&mut self) -> Result<()> {
        self.reset_state();
        if let Some(t) = self.time_index.last() {
            self.max_timestamp = t.timestamp;
            self.offset_of_max_timestamp = self.base_offset + t.relative_offset as i64;
        }
        let mut pos = self.offset_index.last().map_or(0, |e| e.position as u64);
        while pos < self.size {
            let header = self
                .header_at(pos)?
                .ok_or_else(|| StorageError::Corrupt("torn batch header".into()))?;
            let total = header.total_size() as u64;
            if pos + total > self.size || header.last_offset() < header.base_offset {
                return Err(StorageError::Corrupt("torn batch".into()));
            }
            if self.next_offset != self.base_offset && header.base_offset != self.next_offset {
                return Err(StorageError::Corrupt("non-contiguous batch offsets".into()));
            }
            self.note_batch(&header);
            self.bytes_since_last_index += total;
            pos += total;
        }
        Ok(())
    }

    /// Updates next offset and max timestamp for a batch now in the segment.
    fn note_batch(&mut self, header: &BatchHeader) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        self.next_offset = header.last_offset() + 1;
    }

    /// Accounts for a batch written at `position`, adding index entries when due.
    fn index_batch(&mut self, header: &BatchHeader, position: u64) -> io::Result<()> {
        self.note_batch(header);
        if self.bytes_since_last_index >= self.index_interval {
            let relative = (header.base_offset - self.base_offset) as u32;
            self.offset_index.append(relative, position as u32)?;
            let max_relative = (self.offset_of_max_timestamp - self.base_offset) as u32;
            self.time_index
                .maybe_append(self.max_timestamp, max_relative)?;
            self.bytes_since_last_index = 0;
        }
        self.bytes_since_last_index += header.total_size() as u64;
        Ok(())
    }

    /// Appends already offset-patched batches with one positional write and indexes them.
    /// `now_ms` becomes the segment's creation time if it is the first append. On error
    /// the segment may hold part of the append: undo it with [`Self::roll_back`].
    pub fn append(&mut self, batches: &[u8], now_ms: i64) -> Result<()> {
        if self.size == 0 {
            self.created_ms = now_ms;
        }
        self.file.write_all_at(batches, self.size)?;
        let start = self.size;
        self.size += batches.len() as u64;
        for item in batch::batches(batches) {
            let (header, range) = item?;
            self.index_batch(&header, start + range.start as u64)?;
        }
        Ok(())
    }

    /// Where the segment ends now, for a later [`Self::roll_back`].
    pub fn end(&self) -> SegmentEnd {
        SegmentEnd {
            size: self.size,
            next_offset: self.next_offset,
            max_timestamp: self.max_timestamp,
            offset_of_max_timestamp: self.offset_of_max_timestamp,
            bytes_since_last_index: self.bytes_since_last_index,
            created_ms: self.created_ms,
            index_entries: self.offset_index.len(),
            time_index_entries: self.time_index.len(),
        }
    }

    /// Undoes every append made after `end` was taken: the in-memory state is restored
    /// at once, then the data and index files are cut back. An error means a file may
    /// still hold bytes past `end` (appends overwrite them, recovery would read them).
    pub fn roll_back(&mut self, end: SegmentEnd) -> io::Result<()> {
        self.size = end.size;
        self.next_offset = end.next_offset;
        self.max_timestamp = end.max_timestamp;
        self.offset_of_max_timestamp = end.offset_of_max_timestamp;
        self.bytes_since_last_index = end.bytes_since_last_index;
        self.created_ms = end.created_ms;
        let data = self.file.set_len(end.size);
        let index = self.offset_index.truncate_to_len(end.index_entries);
        let time_index = self.time_index.truncate_to_len(end.time_index_entries);
        data.and(index).and(time_index)
    }

    /// Reads the batch header at `position`; `None` when fewer than a header's bytes
    /// remain, an error when the header is malformed.
    fn header_at(&self, position: u64) -> Result<Option<BatchHeader>> {
        if position + HEADER_SIZE as u64 > self.size {
            return Ok(None);
        }
        let mut raw = [0u8; HEADER_SIZE];
        self.file.read_exact_at(&mut raw, position)?;
        Ok(Some(batch::parse_header(&raw)?))
    }

    /// Position of the first batch whose last offset is >= `offset`, by index lookup
    /// and a forward walk over headers.
    fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let mut pos = self.index_position(offset);
        while let Some(header) = self.header_at(pos)? {
            if header.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
            pos += header.total_size() as u64;
        }
        Ok(None)
    }

    fn index_position(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        self.offset_index
            .lookup(relative)
            .map_or(0, |e| e.position as u64)
    }

    /// Reads whole batches starting with the one containing `start_offset` (or the first
    /// after it), stopping before a batch whose base offset is >= `max_offset_exclusive`
    /// and after `max_bytes` (or after one batch when `min_one_batch`). Returns the bytes
    /// and the base offset of the first batch, or `None` when nothing qualifies.
    ///
    /// Normally one positional read: a window from the index position that covers the
    /// gap to the wanted batch plus `max_bytes`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset_exclusive: i64,
        min_one_batch: bool,
    ) -> Result<Option<(Bytes, i64)>> {
        if start_offset >= self.next_offset {
            return Ok(None);
        }
        let window_len =
            max_bytes.min(MAX_READ_WINDOW) + self.index_interval as usize + 2 * HEADER_SIZE;
        // Phase 1: find the first batch, reading forward in windows.
        let mut window_pos = self.index_position(start_offset);
        let (window, first_pos, first) = 'find: loop {
            if window_pos >= self.size {
                return Ok(None);
            }
            let len = (self.size - window_pos).min(window_len as u64) as usize;
            let mut window = vec![0u8; len];
            self.file.read_exact_at(&mut window, window_pos)?;
            let mut off = 0usize;
            while off + HEADER_SIZE <= window.len() {
                let header = batch::parse_header(&window[off..])?;
                if header.last_offset() >= start_offset {
                    break 'find (window, window_pos + off as u64, header);
                }
                off += header.total_size();
            }
            if off == 0 {
                return Ok(None); // less than a header left: nothing readable
            }
            window_pos += off as u64;
        };
        if first.base_offset >= max_offset_exclusive {
            return Ok(None);
        }
        // Phase 2: extend over following batches, using the window for their headers.
        let window_end = window_pos + window.len() as u64;
        let mut end = first_pos;
        let mut cur = first_pos;
        while cur < self.size {
            let header = if cur + HEADER_SIZE as u64 <= window_end {
                let at = (cur - window_pos) as usize;
                batch::parse_header(&window[at..])?
            } else {
                match self.header_at(cur)? {
                    Some(h) => h,
                    None => break,
                }
            };
            let batch_end = cur + header.total_size() as u64;
            if header.base_offset >= max_offset_exclusive || batch_end > self.size {
                break;
            }
            if batch_end - first_pos > max_bytes as u64 && !(cur == first_pos && min_one_batch) {
                break;
            }
            end = batch_end;
            cur = batch_end;
        }
        if end == first_pos {
            return Ok(None);
        }
        let bytes = if end <= window_end {
            let a = (first_pos - window_pos) as usize;
            let b = (end - window_pos) as usize;
            Bytes::from(window).slice(a..b)
        } else {
            let mut data = vec![0u8; (end - first_pos) as usize];
            self.file.read_exact_at(&mut data, first_pos)?;
            Bytes::from(data)
        };
        Ok(Some((bytes, first.base_offset)))
    }

    /// First batch whose max timestamp is >= `timestamp`, with its bytes.
    pub fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<(BatchHeader, Vec<u8>)>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start = self
            .time_index
            .lookup_below(timestamp)
            .map_or(self.base_offset, |e| {
                self.base_offset + e.relative_offset as i64
            });
        let mut pos = self.index_position(start);
        while let Some(header) = self.header_at(pos)? {
            if header.max_timestamp >= timestamp {
                return Ok(Some((header, self.read_batch(pos, &header)?)));
            }
            pos += header.total_size() as u64;
        }
        Ok(None)
    }

    /// The batch containing `offset`, with its bytes.
    pub fn batch_containing(&self, offset: i64) -> Result<Option<(BatchHeader, Vec<u8>)>> {
        match self.locate(offset)? {
            Some((pos, header)) => Ok(Some((header, self.read_batch(pos, &header)?))),
            None => Ok(None),
        }
    }

    fn read_batch(&self, pos: u64, header: &BatchHeader) -> Result<Vec<u8>> {
        let mut data = vec![0u8; header.total_size()];
        self.file.read_exact_at(&mut data, pos)?;
        Ok(data)
    }

    /// Calls `f` with every batch header whose last offset is >= `from_offset`, jumping
    /// from header to header by batch length.
    pub fn scan_headers(&self, from_offset: i64, f: &mut dyn FnMut(&BatchHeader)) -> Result<()> {
        let Some((mut pos, _)) = self.locate(from_offset)? else {
            return Ok(());
        };
        while let Some(header) = self.header_at(pos)? {
            f(&header);
            pos += header.total_size() as u64;
        }
        Ok(())
    }

    /// Removes every batch that contains an offset >= `offset` (a batch straddling
    /// `offset` is removed whole). Indexes are truncated to match, and all of it is made
    /// durable: after a crash the removed batches would come back, under offsets that
    /// later appends reuse, and stale index entries could point into the new data.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset >= self.next_offset {
            return Ok(());
        }
        let Some((pos, header)) = self.locate(offset)? else {
            return Ok(());
        };
        debug!(
            segment = self.base_offset,
            offset,
            position = pos,
            "truncating segment"
        );
        self.file.set_len(pos)?;
        self.size = pos;
        self.offset_index.truncate_to_position(pos)?;
        self.time_index
            .truncate_to_offset((header.base_offset - self.base_offset) as u64)?;
        self.load_tail_state()?;
        Ok(self.flush()?)
    }

    /// Writes data and indexes to disk.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Removes the segment's files (the caller fsyncs the directory and drops the
    /// segment).
    pub fn delete(&self) -> io::Result<()> {
        for path in segment_paths(&self.dir, self.base_offset) {
            self.fs.remove_file_if_exists(&path)?;
        }
        Ok(())
    }

    /// Its files were renamed, unchanged, into `dir` (compaction builds segments aside): the
    /// open handles followed them; later removals must find them there.
    pub(crate) fn moved_to(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
    }

    /// Removes the index files (before the data file is replaced by compaction).
    pub(crate) fn remove_index_files(fs: &FsRef, dir: &Path, base_offset: i64) -> io::Result<()> {
        fs.remove_file_if_exists(&index_path(dir, base_offset))?;
        fs.remove_file_if_exists(&time_index_path(dir, base_offset))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    /// Offset after the last batch (the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// Largest batch max-timestamp, -1 when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    /// Base offset of the batch holding [`Self::max_timestamp`], -1 when empty.
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    /// Creation time used for `segment.ms` (the first batch's timestamp after a reopen).
    pub fn created_ms(&self) -> i64 {
        self.created_ms
    }
    /// The data file, shared so it can be fsynced outside the log lock.
    pub fn file(&self) -> &FileRef {
        &self.file
    }
    /// Data file and both index files: what a checkpoint fsyncs.
    pub fn files(&self) -> [FileRef; 3] {
        [
            self.file.clone(),
            self.offset_index.file().clone(),
            self.time_index.file().clone(),
        ]
    }
    pub fn index_entries(&self) -> usize {
        self.offset_index.len()
    }
}
