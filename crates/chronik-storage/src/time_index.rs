//! The sparse time index of one segment: largest timestamp so far → offset holding it.
//!
//! On-disk format (`<base>.timeindex`): a flat array of 12-byte entries, each
//! `timestamp: i64 BE, relative_offset: u32 BE`. An entry `(T, O)` says: the largest
//! batch max-timestamp in the segment up to this point is `T`, first reached by the
//! batch whose base offset is `base + O`. Entries are added at the same sparse points as
//! offset index entries, and only when `T` grew, so both fields strictly increase.
//!
//! Like the offset index it is an in-memory `Vec` mirrored by an append-only file (the
//! same file handling: `index_file`), not checksummed, not fsynced on append, and
//! rebuilt from the log after an unclean shutdown. Not thread-safe; owned by its
//! `Segment`.

use std::io;
use std::path::Path;

use crate::fs::{FileRef, FsRef};
use crate::index_file::{IndexEntry, IndexFile};

const ENTRY_SIZE: usize = 12;

/// One time index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry<ENTRY_SIZE> for TimeEntry {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut raw = [0u8; ENTRY_SIZE];
        raw[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        raw[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        raw
    }

    fn decode(c: [u8; ENTRY_SIZE]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(c[..8].try_into().expect("8 bytes")),
            relative_offset: u32::from_be_bytes(c[8..].try_into().expect("4 bytes")),
        }
    }
}

/// Sparse time index of one segment.
pub struct TimeIndex {
    file: IndexFile<TimeEntry, ENTRY_SIZE>,
}

impl TimeIndex {
    /// Opens (or creates) the index file and loads its entries without checking them.
    pub fn open(fs: &FsRef, path: &Path) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            file: IndexFile::open(fs, path)?,
        })
    }

    pub fn file(&self) -> &FileRef {
        self.file.file()
    }

    /// True when both fields strictly increase and offsets are below `next_relative`.
    pub fn is_consistent(&self, next_relative: u64) -> bool {
        self.file.is_consistent(
            |a, b| a.timestamp < b.timestamp && a.relative_offset < b.relative_offset,
            |last| (last.relative_offset as u64) < next_relative,
        )
    }

    /// Appends `(timestamp, relative_offset)` if `timestamp` is larger than the last
    /// entry's (otherwise the entry would add nothing).
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) -> io::Result<()> {
        if let Some(last) = self.file.last() {
            if timestamp <= last.timestamp || relative_offset <= last.relative_offset {
                return Ok(());
            }
        }
        self.file.append(TimeEntry {
            timestamp,
            relative_offset,
        })
    }

    /// Greatest entry whose timestamp is < `timestamp`: every batch up to that entry's
    /// offset has a max timestamp below `timestamp`, so a search may start there.
    pub fn lookup_below(&self, timestamp: i64) -> Option<TimeEntry> {
        self.file.last_while(|e| e.timestamp < timestamp)
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.file.last()
    }

    pub fn len(&self) -> usize {
        self.file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_empty()
    }

    /// Drops entries whose relative offset is >= `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u64) -> io::Result<()> {
        self.file
            .truncate_while(|e| (e.relative_offset as u64) < relative_offset)
    }

    /// Keeps the first `len` entries (undoes the appends of a failed segment append).
    pub fn truncate_to_len(&mut self, len: usize) -> io::Result<()> {
        self.file.truncate_to_len(len)
    }

    pub fn clear(&mut self) -> io::Result<()> {
        self.file.clear()
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn lookup_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::open(&RealFs::shared(), &path).unwrap();
        idx.maybe_append(100, 0).unwrap();
        idx.maybe_append(90, 5).unwrap(); // not larger: skipped
        idx.maybe_append(200, 10).unwrap();
        idx.maybe_append(300, 20).unwrap();
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.lookup_below(100), None);
        assert_eq!(idx.lookup_below(101).unwrap().relative_offset, 0);
        assert_eq!(idx.lookup_below(250).unwrap().relative_offset, 10);
        assert!(idx.is_consistent(21));
        assert!(!idx.is_consistent(20));
        drop(idx);
        // The on-disk entry: timestamp i64 BE then relative offset u32 BE.
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.len(), 36);
        assert_eq!(raw[12..24], [0, 0, 0, 0, 0, 0, 0, 200, 0, 0, 0, 10]);
        let mut idx = TimeIndex::open(&RealFs::shared(), &path).unwrap();
        assert_eq!(idx.len(), 3);
        idx.truncate_to_offset(10).unwrap();
        assert_eq!(idx.last().unwrap().timestamp, 100);
    }
}
