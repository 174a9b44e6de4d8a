//! The sparse offset index of one segment: relative offset → byte position.
//!
//! On-disk format (`<base>.index`): a flat array of 8-byte entries, each
//! `relative_offset: u32 BE, position: u32 BE`, where `relative_offset` is the base
//! offset of a batch minus the segment's base offset and `position` is where that batch
//! starts in the `.log` file. One entry is written for the first batch after every
//! `index_interval_bytes` of data, so the index is sparse. Entries strictly increase in
//! both fields.
//!
//! The index is an in-memory `Vec` (used for lookups) mirrored by an append-only file.
//! The file is not checksummed and not fsynced on append: after an unclean shutdown it is
//! not trusted but rebuilt from the log data (see `Segment::recover`). A file whose
//! length is not a multiple of 8 or whose entries are out of order or point past the
//! end of the log is treated as inconsistent and rebuilt as well.
//!
//! Not thread-safe; owned by its `Segment`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const ENTRY_SIZE: usize = 8;

/// One index entry: relative offset and file position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Sparse offset index of one segment.
pub struct OffsetIndex {
    path: PathBuf,
    file: File,
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    /// Opens (or creates) the index file and loads its entries without checking them.
    pub fn open(path: &Path) -> io::Result<OffsetIndex> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let entries = raw
            .chunks_exact(ENTRY_SIZE)
            .map(|c| OffsetEntry {
                relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect::<Vec<_>>();
        let index = OffsetIndex {
            path: path.to_path_buf(),
            file,
            entries,
        };
        if raw.len() % ENTRY_SIZE != 0 {
            // A torn trailing entry: drop it from the file too.
            index
                .file
                .set_len((index.entries.len() * ENTRY_SIZE) as u64)?;
        }
        Ok(index)
    }

    /// True when entries strictly increase and all positions are below `log_size`.
    pub fn is_consistent(&self, log_size: u64) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
            && self
                .entries
                .last()
                .is_none_or(|e| (e.position as u64) < log_size)
    }

    /// Appends an entry; must be greater than the last one in both fields.
    pub fn append(&mut self, relative_offset: u32, position: u32) -> io::Result<()> {
        let mut raw = [0u8; ENTRY_SIZE];
        raw[..4].copy_from_slice(&relative_offset.to_be_bytes());
        raw[4..].copy_from_slice(&position.to_be_bytes());
        self.file.write_all(&raw)?;
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
        Ok(())
    }

    /// Greatest entry whose relative offset is <= `relative_offset`, or `None`
    /// (meaning: start at position 0).
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// Last entry, if any.
    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops entries whose position is >= `position` (the log is being truncated there).
    pub fn truncate_to_position(&mut self, position: u64) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| (e.position as u64) < position);
        self.entries.truncate(keep);
        self.file.set_len((keep * ENTRY_SIZE) as u64)
    }

    /// Removes all entries.
    pub fn clear(&mut self) -> io::Result<()> {
        self.truncate_to_position(0)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_greatest_entry_at_or_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path).unwrap();
        assert_eq!(idx.lookup(5), None);
        idx.append(10, 100).unwrap();
        idx.append(20, 200).unwrap();
        idx.append(30, 300).unwrap();
        assert_eq!(idx.lookup(9), None);
        assert_eq!(idx.lookup(10).unwrap().position, 100);
        assert_eq!(idx.lookup(25).unwrap().position, 200);
        assert_eq!(idx.lookup(1000).unwrap().position, 300);
        assert!(idx.is_consistent(301));
        assert!(!idx.is_consistent(300));
        drop(idx);

        let mut idx = OffsetIndex::open(&path).unwrap();
        assert_eq!(idx.len(), 3);
        idx.truncate_to_position(200).unwrap();
        assert_eq!(idx.last().unwrap().relative_offset, 10);
        drop(idx);
        assert_eq!(OffsetIndex::open(&path).unwrap().len(), 1);
    }

    #[test]
    fn torn_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path).unwrap();
        idx.append(1, 10).unwrap();
        drop(idx);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let idx = OffsetIndex::open(&path).unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
    }
}
