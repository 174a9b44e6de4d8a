//! The sparse offset index of one segment: relative offset → byte position.
//!
//! On-disk format (`<base>.index`): a flat array of 8-byte entries, each
//! `relative_offset: u32 BE, position: u32 BE`, where `relative_offset` is the base
//! offset of a batch minus the segment's base offset and `position` is where that batch
//! starts in the `.log` file. One entry is written for the first batch after every
//! `index_interval_bytes` of data, so the index is sparse. Entries strictly increase in
//! both fields.
//!
//! The index is an in-memory `Vec` (used for lookups) mirrored by an append-only file
//! (the file handling is shared with the time index: `index_file`). The file is not
//! checksummed and not fsynced on append: after an unclean shutdown it is not trusted but
//! rebuilt from the log data (see `Segment::recover`). A file whose length is not a
//! multiple of 8 loses its torn trailing entry at open; one whose entries are out of
//! order or point past the end of the log is treated as inconsistent and rebuilt.
//!
//! Not thread-safe; owned by its `Segment`.

use std::io;
use std::path::{Path, PathBuf};

use crate::fs::{FileRef, FsRef};
use crate::index_file::{IndexEntry, IndexFile};

const ENTRY_SIZE: usize = 8;

/// One index entry: relative offset and file position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry<ENTRY_SIZE> for OffsetEntry {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut raw = [0u8; ENTRY_SIZE];
        raw[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        raw[4..].copy_from_slice(&self.position.to_be_bytes());
        raw
    }

    fn decode(c: [u8; ENTRY_SIZE]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
            position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
        }
    }
}

/// Sparse offset index of one segment.
pub struct OffsetIndex {
    path: PathBuf,
    file: IndexFile<OffsetEntry, ENTRY_SIZE>,
}

impl OffsetIndex {
    /// Opens (or creates) the index file and loads its entries without checking them.
    pub fn open(fs: &FsRef, path: &Path) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
            path: path.to_path_buf(),
            file: IndexFile::open(fs, path)?,
        })
    }

    pub fn file(&self) -> &FileRef {
        self.file.file()
    }

    /// True when entries strictly increase and all positions are below `log_size`.
    pub fn is_consistent(&self, log_size: u64) -> bool {
        self.file.is_consistent(
            |a, b| a.relative_offset < b.relative_offset && a.position < b.position,
            |last| (last.position as u64) < log_size,
        )
    }

    /// Appends an entry; must be greater than the last one in both fields.
    pub fn append(&mut self, relative_offset: u32, position: u32) -> io::Result<()> {
        self.file.append(OffsetEntry {
            relative_offset,
            position,
        })
    }

    /// Greatest entry whose relative offset is <= `relative_offset`, or `None`
    /// (meaning: start at position 0).
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        self.file
            .last_while(|e| e.relative_offset <= relative_offset)
    }

    /// Last entry, if any.
    pub fn last(&self) -> Option<OffsetEntry> {
        self.file.last()
    }

    pub fn len(&self) -> usize {
        self.file.len()
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_empty()
    }

    /// Drops entries whose position is >= `position` (the log is being truncated there).
    pub fn truncate_to_position(&mut self, position: u64) -> io::Result<()> {
        self.file.truncate_while(|e| (e.position as u64) < position)
    }

    /// Keeps the entries of batches starting at or below `relative_offset`.
    pub fn truncate_to_relative(&mut self, relative_offset: u64) -> io::Result<()> {
        self.file
            .truncate_while(|e| (e.relative_offset as u64) <= relative_offset)
    }

    /// Keeps the first `len` entries (undoes the appends of a failed segment append).
    pub fn truncate_to_len(&mut self, len: usize) -> io::Result<()> {
        self.file.truncate_to_len(len)
    }

    /// Removes all entries.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.clear()
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn lookup_finds_greatest_entry_at_or_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&RealFs::shared(), &path).unwrap();
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

        let mut idx = OffsetIndex::open(&RealFs::shared(), &path).unwrap();
        assert_eq!(idx.len(), 3);
        idx.truncate_to_position(200).unwrap();
        assert_eq!(idx.last().unwrap().relative_offset, 10);
        drop(idx);
        assert_eq!(
            OffsetIndex::open(&RealFs::shared(), &path).unwrap().len(),
            1
        );
    }

    #[test]
    fn torn_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&RealFs::shared(), &path).unwrap();
        idx.append(1, 10).unwrap();
        drop(idx);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let idx = OffsetIndex::open(&RealFs::shared(), &path).unwrap();
        assert_eq!(idx.len(), 1);
        // The on-disk entry: relative offset then position, u32 BE each.
        assert_eq!(std::fs::read(&path).unwrap(), [0, 0, 0, 1, 0, 0, 0, 10]);
    }
}
