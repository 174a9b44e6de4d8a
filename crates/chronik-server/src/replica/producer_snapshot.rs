//! Snapshots of a partition's idempotent-producer table, so a start does not read every batch
//! header of every log (one read per batch) to rebuild it.
//!
//! Files: `<offset, 20 digits>.snapshot` in the partition directory, JSON of the
//! [`ProducerStateTable`] as it was with the log ending at `offset` (a batch boundary: the
//! base of a new segment at a roll, or the log end at a clean close). Written atomically
//! (temporary file, fsync, rename, directory fsync); a snapshot that cannot be read is
//! ignored, which costs only a longer scan. Snapshots above the log end (a truncated or
//! un-recovered tail) are deleted at open; only the newest [`KEEP`] are kept.

use std::path::Path;

use chronik_storage::fs::FsRef;
use tracing::warn;

use super::producer_state::ProducerStateTable;

/// Snapshots kept per partition.
const KEEP: usize = 2;

fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

fn parse_snapshot_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".snapshot")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Offsets of the snapshots in `dir`, ascending.
fn list(fs: &FsRef, dir: &Path) -> Vec<i64> {
    let mut offsets: Vec<i64> = fs
        .list_dir(dir)
        .map(|names| {
            names
                .iter()
                .filter_map(|n| parse_snapshot_name(n))
                .collect()
        })
        .unwrap_or_default();
    offsets.sort_unstable();
    offsets
}

/// Writes the table as of `offset` and prunes older snapshots.
pub fn write(
    fs: &FsRef,
    dir: &Path,
    offset: i64,
    table: &ProducerStateTable,
) -> std::io::Result<()> {
    let json = serde_json::to_vec(table).map_err(std::io::Error::other)?;
    fs.write_atomic(&dir.join(snapshot_name(offset)), &json)?;
    let offsets = list(fs, dir);
    for old in &offsets[..offsets.len().saturating_sub(KEEP)] {
        fs.remove_file_if_exists(&dir.join(snapshot_name(*old)))?;
    }
    Ok(())
}

/// The newest readable snapshot at or below `log_end`, as `(offset, table)`; deletes the
/// ones above it.
pub fn load_latest(fs: &FsRef, dir: &Path, log_end: i64) -> Option<(i64, ProducerStateTable)> {
    let offsets = list(fs, dir);
    for &offset in offsets.iter().filter(|&&o| o > log_end) {
        if let Err(e) = fs.remove_file_if_exists(&dir.join(snapshot_name(offset))) {
            warn!(dir = %dir.display(), offset, error = %e, "removing a producer snapshot past the log end");
        }
    }
    offsets.iter().rev().filter(|&&o| o <= log_end).find_map(|&offset| {
        let path = dir.join(snapshot_name(offset));
        match fs.read(&path).map(|raw| serde_json::from_slice(&raw)) {
            Ok(Ok(table)) => Some((offset, table)),
            Ok(Err(e)) => {
                warn!(path = %path.display(), error = %e, "ignoring an unreadable producer snapshot");
                None
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "ignoring an unreadable producer snapshot");
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::producer_state::{BatchMeta, SequenceCheck};
    use chronik_storage::fs::RealFs;

    fn table_with(producer_id: i64, last_offset: i64) -> ProducerStateTable {
        let mut table = ProducerStateTable::default();
        table.record(
            producer_id,
            0,
            BatchMeta {
                first_seq: 0,
                last_seq: 0,
                first_offset: last_offset,
                last_offset,
            },
        );
        table
    }

    #[test]
    fn latest_snapshot_at_or_below_the_log_end_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        write(&fs, dir.path(), 10, &table_with(1, 9)).unwrap();
        write(&fs, dir.path(), 20, &table_with(2, 19)).unwrap();
        let (offset, table) = load_latest(&fs, dir.path(), 25).unwrap();
        assert_eq!(offset, 20);
        assert_eq!(table, table_with(2, 19));
        assert!(matches!(
            table.check(2, 0, 0, 0),
            SequenceCheck::Duplicate(_)
        ));

        // A log that ends before the newest snapshot drops it.
        let (offset, _) = load_latest(&fs, dir.path(), 15).unwrap();
        assert_eq!(offset, 10);
        assert_eq!(list(&fs, dir.path()), vec![10]);
    }

    #[test]
    fn only_the_newest_are_kept_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        for offset in [1, 2, 3, 4] {
            write(&fs, dir.path(), offset, &table_with(offset, offset - 1)).unwrap();
        }
        assert_eq!(list(&fs, dir.path()), vec![3, 4]);
        std::fs::write(dir.path().join(snapshot_name(4)), b"{not json").unwrap();
        let (offset, table) = load_latest(&fs, dir.path(), 100).unwrap();
        assert_eq!((offset, table), (3, table_with(3, 2)));
    }
}
