//! The file half shared by a segment's sparse indexes ([`crate::offset_index`],
//! [`crate::time_index`]): an append-only file of fixed-width entries mirrored by an
//! in-memory `Vec`.
//!
//! On-disk format: a flat array of `WIDTH`-byte entries with no header, framing or
//! checksum; each index defines its entry encoding ([`IndexEntry`]) and documents it in
//! its own module. Appends are not fsynced (only [`IndexFile::sync`] does that), so after
//! an unclean shutdown the file is not trusted but rebuilt from the log data (see
//! `Segment::recover`): cleared, then appended to again. At open, a torn trailing entry
//! (a file length that is not a multiple of `WIDTH`) is dropped from the file; whether
//! the remaining entries make sense is for the index to judge ([`IndexFile::is_consistent`]).
//!
//! Lookups and what an entry means stay with each index. Not thread-safe; owned by its
//! index.

use std::io;
use std::path::Path;

use crate::fs::{FileRef, FsRef, OpenMode};

/// An index entry with a fixed-width big-endian encoding of `WIDTH` bytes.
pub trait IndexEntry<const WIDTH: usize>: Copy {
    fn encode(&self) -> [u8; WIDTH];
    fn decode(raw: [u8; WIDTH]) -> Self;
}

/// An index file of `E` entries, `WIDTH` bytes each, and its entries in memory.
pub struct IndexFile<E, const WIDTH: usize> {
    file: FileRef,
    entries: Vec<E>,
}

impl<E: IndexEntry<WIDTH>, const WIDTH: usize> IndexFile<E, WIDTH> {
    /// Opens (or creates) the file and loads its entries without checking them, dropping
    /// a torn trailing entry from the file.
    pub fn open(fs: &FsRef, path: &Path) -> io::Result<Self> {
        let file = fs.open(path, OpenMode::CreateOrKeep)?;
        let mut raw = vec![0u8; file.len()? as usize];
        file.read_exact_at(&mut raw, 0)?;
        let entries = raw
            .chunks_exact(WIDTH)
            .map(|c| E::decode(c.try_into().expect("chunks_exact yields WIDTH bytes")))
            .collect::<Vec<_>>();
        if !raw.len().is_multiple_of(WIDTH) {
            file.set_len((entries.len() * WIDTH) as u64)?;
        }
        Ok(IndexFile { file, entries })
    }

    /// The file, shared so a checkpoint can fsync it outside the log lock.
    pub fn file(&self) -> &FileRef {
        &self.file
    }

    /// Last entry, if any.
    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last of the leading entries for which `pred` holds (entries are sorted, so
    /// `pred` holds up to some entry and fails from there), or `None` when it fails for
    /// the first one.
    pub fn last_while(&self, pred: impl Fn(&E) -> bool) -> Option<E> {
        let len = self.entries.partition_point(pred);
        len.checked_sub(1).map(|i| self.entries[i])
    }

    /// True when every entry is `in_order` with the next one and the last one (if any)
    /// is `in_bounds`.
    pub fn is_consistent(
        &self,
        in_order: impl Fn(&E, &E) -> bool,
        in_bounds: impl FnOnce(&E) -> bool,
    ) -> bool {
        self.entries.windows(2).all(|w| in_order(&w[0], &w[1]))
            && self.entries.last().is_none_or(in_bounds)
    }

    /// Writes `entry` at the end of the file (not fsynced) and of the entries. The write
    /// is positional, so bytes left past the entries by a failed truncation are overwritten.
    pub fn append(&mut self, entry: E) -> io::Result<()> {
        let at = (self.entries.len() * WIDTH) as u64;
        self.file.write_all_at(&entry.encode(), at)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Keeps the leading entries for which `keep` holds (as in [`IndexFile::last_while`])
    /// and drops the rest, from the file too.
    pub fn truncate_while(&mut self, keep: impl Fn(&E) -> bool) -> io::Result<()> {
        let len = self.entries.partition_point(keep);
        self.truncate_to_len(len)
    }

    /// Keeps the first `len` entries (undoes appends after a failed one). The entries in
    /// memory are cut even if the file is not, since appends overwrite what lies beyond.
    pub fn truncate_to_len(&mut self, len: usize) -> io::Result<()> {
        self.entries.truncate(len);
        self.file.set_len((self.entries.len() * WIDTH) as u64)
    }

    /// Removes all entries (before a rebuild).
    pub fn clear(&mut self) -> io::Result<()> {
        self.truncate_while(|_| false)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}
