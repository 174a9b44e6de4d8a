//! One segment of a log: a `.log` data file plus its sparse `.index` and `.timeindex`.
//!
//! On-disk format: `<base>.log` (base = 20-digit zero-padded base offset) holds record
//! batches back to back, verbatim as produced except for the patched `baseOffset` /
//! `partitionLeaderEpoch` (and LogAppendTime). There is no extra framing: the batch
//! header's own length and CRC-32C are the framing and checksum. Data is written with
//! positional writes at the end of the file and is not fsynced here: callers fsync the
//! shared `Arc<File>` (group commit) outside the log lock.
//!
//! Invariant: batches in a segment are contiguous — the first starts at the segment's
//! base offset and each next one at the previous one's last offset + 1 (compaction keeps
//! emptied batches to preserve this). Recovery relies on it to catch corruption of
//! `baseOffset`, which the CRC does not cover.
//!
//! Crash behaviour: a crash can leave a torn or corrupt tail (a partial batch, or bytes
//! that never reached the disk). [`Segment::recover`] scans every batch from the start,
//! validates its CRC, truncates the file at the first bad one and rebuilds both indexes
//! from what survives. Indexes are never trusted after an unclean shutdown.
//!
//! Not thread-safe: owned by its `Log`, which the broker serialises.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use tracing::{debug, warn};

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::error::{Result, StorageError};
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

/// One segment: data file, indexes and the summary state derived from them.
pub struct Segment {
    base_offset: i64,
    dir: PathBuf,
    file: Arc<File>,
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
    /// Creates a new, empty segment (replacing any files of the same base offset).
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        now_ms: i64,
    ) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(log_file_name(base_offset)))?;
        let mut offset_index = OffsetIndex::open(&index_path(dir, base_offset))?;
        offset_index.clear()?;
        let mut time_index = TimeIndex::open(&time_index_path(dir, base_offset))?;
        time_index.clear()?;
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: Arc::new(file),
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

    /// Opens an existing segment. With `recover`, or when an index file is missing or
    /// inconsistent, the whole segment is scanned and validated (see [`Self::recover`]);
    /// otherwise only the tail after the last index entry is read.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval: u32,
        recover: bool,
    ) -> Result<Segment> {
        let log_path = dir.join(log_file_name(base_offset));
        let file = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let meta = file.metadata()?;
        let created_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let idx_path = index_path(dir, base_offset);
        let tidx_path = time_index_path(dir, base_offset);
        let indexes_present = idx_path.exists() && tidx_path.exists();
        let mut segment = Segment {
            base_offset,
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            size: meta.len(),
            offset_index: OffsetIndex::open(&idx_path)?,
            time_index: TimeIndex::open(&tidx_path)?,
            index_interval: index_interval as u64,
            bytes_since_last_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            created_ms,
        };
        let trusted = !recover
            && indexes_present
            && segment.offset_index.is_consistent(segment.size)
            && segment.load_tail_state().is_ok()
            && segment
                .time_index
                .is_consistent((segment.next_offset - base_offset) as u64);
        if !trusted {
            segment.recover()?;
        }
        if let Some(first) = segment.header_at(0)? {
            if first.max_timestamp >= 0 {
                segment.created_ms = first.max_timestamp;
            }
        }
        Ok(segment)
    }

    /// Scans every batch from the start, validating its CRC-32C; truncates the file at
    /// the first torn or corrupt batch and rebuilds both indexes. Returns the number of
    /// bytes cut off.
    pub fn recover(&mut self) -> Result<u64> {
        self.offset_index.clear()?;
        self.time_index.clear()?;
        self.reset_state();
        let mut pos = 0u64;
        let mut buf = Vec::new();
        while let Some(header) = self.header_at(pos).ok().flatten() {
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
    /// On a failed write the file is cut back to its previous size.
    /// `now_ms` becomes the segment's creation time if it is the first append.
    pub fn append(&mut self, batches: &[u8], now_ms: i64) -> Result<()> {
        if self.size == 0 {
            self.created_ms = now_ms;
        }
        if let Err(e) = self.file.write_all_at(batches, self.size) {
            let _ = self.file.set_len(self.size);
            return Err(e.into());
        }
        let start = self.size;
        self.size += batches.len() as u64;
        for item in batch::batches(batches) {
            let (header, range) = item?;
            self.index_batch(&header, start + range.start as u64)?;
        }
        Ok(())
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
    /// `offset` is removed whole). Indexes are truncated to match.
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
        self.load_tail_state()
    }

    /// Writes data and indexes to disk.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync_data()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Removes the segment's files.
    pub fn delete(self) -> io::Result<()> {
        let base = self.base_offset;
        let dir = self.dir.clone();
        drop(self);
        for path in [
            dir.join(log_file_name(base)),
            index_path(&dir, base),
            time_index_path(&dir, base),
        ] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the index files (before the data file is replaced by compaction).
    pub(crate) fn remove_index_files(dir: &Path, base_offset: i64) -> io::Result<()> {
        for path in [
            index_path(dir, base_offset),
            time_index_path(dir, base_offset),
        ] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
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
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
    pub fn index_entries(&self) -> usize {
        self.offset_index.len()
    }
}
