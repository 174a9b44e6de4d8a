//! `chronik-server dump-log <partition-dir> [--from-offset N]`: prints one line per stored
//! batch of a partition directory, read-only (no recovery, nothing written), for debugging
//! and for fault tests comparing replicas.
//!
//! Output on stdout, one batch a line, in the format of
//! [`chronik_storage::dump::BatchSummary`]'s `Display` followed by where the batch lies:
//! ```text
//! offset=0..4 epoch=0 crc=0x1234abcd crc_ok=true pid=-1 pepoch=-1 seq=-1 records=5 bytes=120 segment=0 position=0
//! ```
//! `BatchSummary::from_str` parses such a line back. Notes go to stderr, each starting with
//! `# `: the log start offset when the directory has a `log-start-offset` file, a torn tail
//! (where the scan of a segment stopped), a gap or overlap between consecutive batches.
//! A torn tail is not an error: the exit status is non-zero only when the directory or a
//! segment cannot be read.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chronik_storage::dump;

/// Writes the dump of `dir` from `from_offset` on: batch lines to `out`, notes to `notes`.
pub fn run(
    dir: &Path,
    from_offset: i64,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> anyhow::Result<()> {
    if let Ok(text) = std::fs::read_to_string(dir.join("log-start-offset")) {
        writeln!(notes, "# log-start-offset={}", text.trim())?;
    }
    let mut scan = dump::scan_dir(dir, from_offset)
        .with_context(|| format!("listing partition directory {}", dir.display()))?;
    let mut expected_next: Option<i64> = None;
    let mut torn_reported = 0;
    while let Some(item) = scan.next_located() {
        let (location, summary) = item?;
        for tail in &scan.torn_tails()[torn_reported..] {
            writeln!(notes, "# {tail}")?;
        }
        torn_reported = scan.torn_tails().len();
        if let Some(next) = expected_next {
            if summary.base_offset != next {
                writeln!(
                    notes,
                    "# batch at offset {} does not follow the previous one (expected {next})",
                    summary.base_offset
                )?;
            }
        }
        expected_next = Some(summary.last_offset + 1);
        writeln!(
            out,
            "{summary} segment={} position={}",
            location.segment_base, location.position
        )?;
    }
    for tail in &scan.torn_tails()[torn_reported..] {
        writeln!(notes, "# {tail}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use chronik_storage::dump::BatchSummary;
    use chronik_storage::fs::RealFs;
    use chronik_storage::{Log, LogConfig};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// An idempotent-producer batch of `n` records starting at sequence `seq`.
    fn batch(n: i32, producer_id: i64, seq: i32) -> Vec<u8> {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id,
                producer_epoch: 2,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: seq + i,
                timestamp: 1000,
                key: None,
                value: Some(Bytes::from(format!("v{i}"))),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn prints_one_parseable_line_per_batch_and_notes_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
        log.append(&mut batch(5, 42, 0), 3, 1000).unwrap();
        log.append(&mut batch(2, 42, 5), 4, 1000).unwrap();
        log.close().unwrap();
        let segment = dir.path().join(format!("{:020}.log", 0));
        let mut tail = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap();
        tail.write_all(&[0u8; 30]).unwrap();

        let (mut out, mut notes) = (Vec::new(), Vec::new());
        run(dir.path(), 0, &mut out, &mut notes).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with("offset=0..4 epoch=3 crc=0x"), "{out}");
        assert!(
            lines[0].contains(" crc_ok=true pid=42 pepoch=2 seq=0 records=5 bytes="),
            "{out}"
        );
        assert!(lines[0].ends_with(" segment=0 position=0"), "{out}");
        let second: BatchSummary = lines[1].parse().unwrap();
        assert_eq!(
            (
                second.base_offset,
                second.last_offset,
                second.partition_leader_epoch
            ),
            (5, 6, 4)
        );
        assert_eq!(
            (
                second.producer_id,
                second.base_sequence,
                second.records_count
            ),
            (42, 5, 2)
        );
        let notes = String::from_utf8(notes).unwrap();
        assert!(notes.contains("# torn tail in segment 0"), "{notes}");

        let mut out = Vec::new();
        run(dir.path(), 5, &mut out, &mut Vec::new()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }

    #[test]
    fn a_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(run(
            &dir.path().join("nope"),
            0,
            &mut Vec::new(),
            &mut Vec::new()
        )
        .is_err());
    }
}
