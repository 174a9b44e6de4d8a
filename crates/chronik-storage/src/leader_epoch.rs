//! The leader epoch cache of one log: which leader epoch started at which offset.
//!
//! On-disk format (`leader-epoch-checkpoint`): text, one `epoch start_offset` pair per
//! line, in increasing order of both. Every change rewrites the whole file via a
//! temporary file (`leader-epoch-checkpoint.tmp`), fsync and rename, so a crash leaves
//! either the old or the new content. After recovery the log drops entries that start
//! beyond its end offset.
//!
//! Every change is persisted before it is applied in memory, so a failed write leaves the
//! cache as it was.
//!
//! Not thread-safe; owned by its `Log`.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::fs::FsRef;

pub(crate) const FILE_NAME: &str = "leader-epoch-checkpoint";

/// `(epoch, start_offset)` entries, both strictly increasing.
pub struct LeaderEpochCache {
    fs: FsRef,
    path: PathBuf,
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir` (empty when absent).
    pub fn load(fs: &FsRef, dir: &Path) -> Result<LeaderEpochCache> {
        let path = dir.join(FILE_NAME);
        let mut entries = Vec::new();
        match fs.read(&path) {
            Ok(raw) => {
                let text = String::from_utf8_lossy(&raw);
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let mut parts = line.split_whitespace();
                    let parsed = (|| {
                        let epoch = parts.next()?.parse::<i32>().ok()?;
                        let offset = parts.next()?.parse::<i64>().ok()?;
                        Some((epoch, offset))
                    })();
                    let entry = parsed.ok_or_else(|| {
                        StorageError::Corrupt(format!("bad line {line:?} in {}", path.display()))
                    })?;
                    entries.push(entry);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(LeaderEpochCache {
            fs: fs.clone(),
            path,
            entries,
        })
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<()> {
        if epoch < 0 || self.latest_epoch().is_some_and(|e| epoch <= e) {
            return Ok(());
        }
        // An older epoch that would start at or after this one is meaningless.
        let mut entries = self.entries.clone();
        entries.retain(|&(_, o)| o < start_offset);
        entries.push((epoch, start_offset));
        self.replace(entries)
    }

    /// Drops entries whose start offset is >= `end_offset` (after a truncation).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<()> {
        let keep = self.entries.partition_point(|&(_, o)| o < end_offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.replace(self.entries[..keep].to_vec())
    }

    /// Drops epochs that end at or before `start_offset` and moves the start of the
    /// earliest remaining one up to it (after log start moved forward).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<()> {
        let keep_from = self
            .entries
            .partition_point(|&(_, o)| o <= start_offset)
            .saturating_sub(1);
        if keep_from == 0 && self.entries.first().is_none_or(|&(_, o)| o >= start_offset) {
            return Ok(());
        }
        let mut entries = self.entries[keep_from..].to_vec();
        if let Some(first) = entries.first_mut() {
            first.1 = first.1.max(start_offset);
        }
        self.replace(entries)
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Kafka's OffsetForLeaderEpoch: the largest known epoch <= `epoch` and the start
    /// offset of the epoch after it (or `log_end_offset` if it is the latest);
    /// `(-1, -1)` when `epoch` is older than every known epoch or nothing is known.
    pub fn end_offset_for_epoch(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        let idx = self.entries.partition_point(|&(e, _)| e <= epoch);
        if idx == 0 {
            return (-1, -1);
        }
        let found = self.entries[idx - 1].0;
        match self.entries.get(idx) {
            Some(&(_, next_start)) => (found, next_start),
            None => (found, log_end_offset),
        }
    }

    /// Persists `entries`, then makes them the cache's.
    fn replace(&mut self, entries: Vec<(i32, i64)>) -> Result<()> {
        let mut text = String::new();
        for (epoch, offset) in &entries {
            text.push_str(&format!("{epoch} {offset}\n"));
        }
        self.fs.write_atomic(&self.path, text.as_bytes())?;
        self.entries = entries;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn kafka_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(&RealFs::shared(), dir.path()).unwrap();
        assert_eq!(cache.end_offset_for_epoch(0, 10), (-1, -1));
        cache.assign(1, 0).unwrap();
        cache.assign(1, 5).unwrap(); // same epoch: ignored
        cache.assign(3, 10).unwrap();
        cache.assign(5, 20).unwrap();
        assert_eq!(cache.end_offset_for_epoch(0, 30), (-1, -1));
        assert_eq!(cache.end_offset_for_epoch(1, 30), (1, 10));
        assert_eq!(cache.end_offset_for_epoch(2, 30), (1, 10));
        assert_eq!(cache.end_offset_for_epoch(3, 30), (3, 20));
        assert_eq!(cache.end_offset_for_epoch(5, 30), (5, 30));
        assert_eq!(cache.end_offset_for_epoch(9, 30), (5, 30));
        let reloaded = LeaderEpochCache::load(&RealFs::shared(), dir.path()).unwrap();
        assert_eq!(reloaded.entries(), &[(1, 0), (3, 10), (5, 20)]);

        cache.truncate_from_end(15).unwrap();
        assert_eq!(cache.latest_epoch(), Some(3));
        cache.truncate_from_start(12).unwrap();
        assert_eq!(cache.entries(), &[(3, 12)]);
        assert_eq!(
            LeaderEpochCache::load(&RealFs::shared(), dir.path())
                .unwrap()
                .entries(),
            &[(3, 12)]
        );
    }
}
