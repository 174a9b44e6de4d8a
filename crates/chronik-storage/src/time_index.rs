//! The sparse time index of one segment: largest timestamp so far → offset holding it.
//!
//! On-disk format (`<base>.timeindex`): a flat array of 12-byte entries, each
//! `timestamp: i64 BE, relative_offset: u32 BE`. An entry `(T, O)` says: the largest
//! batch max-timestamp in the segment up to this point is `T`, first reached by the
//! batch whose base offset is `base + O`. Entries are added at the same sparse points as
//! offset index entries, and only when `T` grew, so both fields strictly increase.
//!
//! Like the offset index it is an in-memory `Vec` mirrored by an append-only file, not
//! checksummed, not fsynced on append, and rebuilt from the log after an unclean
//! shutdown. Not thread-safe; owned by its `Segment`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

const ENTRY_SIZE: usize = 12;

/// One time index entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Sparse time index of one segment.
pub struct TimeIndex {
    file: File,
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Opens (or creates) the index file and loads its entries without checking them.
    pub fn open(path: &Path) -> io::Result<TimeIndex> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let entries = raw
            .chunks_exact(ENTRY_SIZE)
            .map(|c| TimeEntry {
                timestamp: i64::from_be_bytes(c[..8].try_into().expect("8 bytes")),
                relative_offset: u32::from_be_bytes(c[8..].try_into().expect("4 bytes")),
            })
            .collect::<Vec<_>>();
        if raw.len() % ENTRY_SIZE != 0 {
            file.set_len((entries.len() * ENTRY_SIZE) as u64)?;
        }
        Ok(TimeIndex { file, entries })
    }

    /// True when both fields strictly increase and offsets are below `next_relative`.
    pub fn is_consistent(&self, next_relative: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].timestamp < w[1].timestamp && w[0].relative_offset < w[1].relative_offset)
            && self
                .entries
                .last()
                .is_none_or(|e| (e.relative_offset as u64) < next_relative)
    }

    /// Appends `(timestamp, relative_offset)` if `timestamp` is larger than the last
    /// entry's (otherwise the entry would add nothing).
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) -> io::Result<()> {
        if let Some(last) = self.entries.last() {
            if timestamp <= last.timestamp || relative_offset <= last.relative_offset {
                return Ok(());
            }
        }
        let mut raw = [0u8; ENTRY_SIZE];
        raw[..8].copy_from_slice(&timestamp.to_be_bytes());
        raw[8..].copy_from_slice(&relative_offset.to_be_bytes());
        self.file.write_all(&raw)?;
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
        Ok(())
    }

    /// Greatest entry whose timestamp is < `timestamp`: every batch up to that entry's
    /// offset has a max timestamp below `timestamp`, so a search may start there.
    pub fn lookup_below(&self, timestamp: i64) -> Option<TimeEntry> {
        let idx = self.entries.partition_point(|e| e.timestamp < timestamp);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops entries whose relative offset is >= `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u64) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| (e.relative_offset as u64) < relative_offset);
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY_SIZE) as u64)
    }

    pub fn clear(&mut self) -> io::Result<()> {
        self.truncate_to_offset(0)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::open(&path).unwrap();
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
        let mut idx = TimeIndex::open(&path).unwrap();
        assert_eq!(idx.len(), 3);
        idx.truncate_to_offset(10).unwrap();
        assert_eq!(idx.last().unwrap().timestamp, 100);
    }
}
