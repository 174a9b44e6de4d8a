//! Tests of `Log`: append/read across rolls, bounds, retention, truncation, recovery.

use std::fs::{self, OpenOptions};
use std::path::Path;

use proptest::prelude::*;

use crate::batch::{self, validate_stored_batch};
use crate::config::{CleanupPolicy, LogConfig, TimestampType};
use crate::error::StorageError;
use crate::fs::RealFs;
use crate::log::Log;
use crate::test_util::{batch, decode_all};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

/// Appends `n` batches of `per` records, timestamps starting at `ts`; returns the
/// base offsets.
fn fill(log: &mut Log, n: usize, per: usize, ts: i64) -> Vec<i64> {
    (0..n)
        .map(|i| {
            let mut b = batch(per, ts + (i * per) as i64);
            log.append(&mut b, 0, ts).unwrap().first_offset
        })
        .collect()
}

fn all_batches(log: &Log) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        if r.bytes.is_empty() {
            break;
        }
        for item in batch::batches(&r.bytes) {
            let (h, range) = item.unwrap();
            out.push((h.base_offset, r.bytes[range].to_vec()));
            offset = h.last_offset() + 1;
        }
    }
    out
}

#[test]
fn append_assigns_offsets_and_reads_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    let bases = fill(&mut log, 60, 3, 1000);
    assert_eq!(bases, (0..60).map(|i| i * 3).collect::<Vec<i64>>());
    assert_eq!(log.log_end_offset(), 180);
    assert!(log.segment_count() > 3, "segments: {}", log.segment_count());
    assert!(log.segments.iter().any(|s| s.index_entries() > 0));
    for offset in 0..180 {
        let r = log.read(offset, 1, i64::MAX, true).unwrap();
        let first = batch::validate_batch(&r.bytes).unwrap();
        assert_eq!(first.base_offset, offset / 3 * 3);
        assert_eq!(r.first_batch_offset, Some(first.base_offset));
        assert_eq!(first.total_size(), r.bytes.len());
    }
    let batches = all_batches(&log);
    assert_eq!(batches.len(), 60);
    let records = batches
        .iter()
        .flat_map(|(_, b)| decode_all(b))
        .collect::<Vec<_>>();
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..180).collect::<Vec<_>>()
    );
    assert_eq!(
        log.size_bytes(),
        batches.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
}

#[test]
fn read_bounds_and_min_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
    fill(&mut log, 10, 4, 0);
    let one = log.read(0, 1, i64::MAX, true).unwrap();
    let size = one.bytes.len();
    assert_eq!(batch::batches(&one.bytes).count(), 1);
    assert!(log.read(0, 1, i64::MAX, false).unwrap().bytes.is_empty());
    // max_bytes exactly two batches, starting mid-batch.
    let two = log.read(6, 2 * size, i64::MAX, false).unwrap();
    assert_eq!(two.first_batch_offset, Some(4));
    assert_eq!(batch::batches(&two.bytes).count(), 2);
    // High watermark stops before batches at or beyond it.
    let hw = log.read(0, 1 << 20, 9, true).unwrap();
    assert_eq!(batch::batches(&hw.bytes).count(), 3); // bases 0, 4, 8
    assert!(log.read(8, 1 << 20, 8, true).unwrap().bytes.is_empty());
    // At the log end: empty; beyond or below: out of range.
    let end = log.read(40, 100, i64::MAX, true).unwrap();
    assert!(end.bytes.is_empty() && end.first_batch_offset.is_none());
    assert!(matches!(
        log.read(41, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    log.delete_records_before(5).unwrap();
    assert!(matches!(
        log.read(4, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.read(5, 1, i64::MAX, true).unwrap().first_batch_offset,
        Some(4)
    );
}

#[test]
fn log_append_time_and_leader_epoch_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = Log::open(&RealFs::shared(), dir.path(), config).unwrap();
    let mut b = batch(3, 5);
    let info = log.append(&mut b, 4, 777).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 2));
    assert_eq!(info.log_append_time, 777);
    assert_eq!(info.max_timestamp, 777);
    assert_eq!(info.sync.files().len(), 3, "data and index files");
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let h = batch::validate_batch(&r.bytes).unwrap();
    assert!(h.timestamp_type_is_log_append());
    assert_eq!((h.max_timestamp, h.partition_leader_epoch), (777, 4));
    assert_eq!(log.latest_epoch(), Some(4));
}

#[test]
fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config();
    config.retention_ms = 1000;
    let mut log = Log::open(&RealFs::shared(), dir.path(), config.clone()).unwrap();
    fill(&mut log, 60, 3, 0); // timestamps 0..180
    let segments = log.segment_count();
    assert!(segments > 2);
    // Nothing old enough yet.
    assert_eq!(log.enforce_retention(500).unwrap(), 0);
    // Everything is past retention: sealed segments go, the active one is rolled and goes.
    let deleted = log.enforce_retention(10_000).unwrap();
    assert_eq!(deleted, segments);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 180);
    assert_eq!(log.log_end_offset(), 180);
    assert!(log.read(180, 100, i64::MAX, true).unwrap().bytes.is_empty());

    // Size retention keeps the newest segments under the limit.
    config.retention_ms = -1;
    config.retention_bytes = 3000;
    log.set_config(config.clone());
    fill(&mut log, 60, 3, 20_000);
    log.enforce_retention(20_000).unwrap();
    assert!(log.size_bytes() <= 3000 + config.segment_bytes);
    let sealed: u64 = log.size_bytes() - log.segments.last().unwrap().size();
    assert!(log.size_bytes() - log.segments[0].size() < 3000 || sealed == 0);
    assert_eq!(log.log_start_offset(), log.segments[0].base_offset());

    // Compact-only logs are never subject to retention.
    config.cleanup_policy = CleanupPolicy::Compact;
    config.retention_bytes = 0;
    log.set_config(config);
    assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 0);

    // Log start offset survives a reopen.
    let start = log.log_start_offset();
    log.close().unwrap();
    let log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn delete_records_moves_start_and_drops_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    fill(&mut log, 40, 3, 0);
    let before = log.segment_count();
    let second_base = log.segments[1].base_offset();
    assert_eq!(
        log.delete_records_before(second_base + 1).unwrap(),
        second_base + 1
    );
    assert_eq!(log.segment_count(), before - 1);
    assert_eq!(log.delete_records_before(2).unwrap(), second_base + 1); // never backwards
    assert!(log.delete_records_before(1000).is_err());
    assert_eq!(log.delete_records_before(120).unwrap(), 120);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 120);
    drop(log); // unclean
    let log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 120);
    assert_eq!(log.log_end_offset(), 120);
}

#[test]
fn truncate_to_drops_tail_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    for i in 0..40i64 {
        let mut b = batch(3, i);
        log.append(&mut b, (i / 10) as i32, 0).unwrap();
    }
    assert_eq!(log.end_offset_for_epoch(1), (1, 60));
    assert_eq!(log.end_offset_for_epoch(3), (3, 120));
    log.truncate_to(61).unwrap(); // straddling batch 60..62 goes whole
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.latest_epoch(), Some(1));
    assert_eq!(log.end_offset_for_epoch(3), (1, 60));
    assert_eq!(all_batches(&log).len(), 20);
    let mut b = batch(2, 0);
    assert_eq!(log.append(&mut b, 5, 0).unwrap().first_offset, 60);
    assert_eq!(log.end_offset_for_epoch(1), (1, 60));
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
    log.close().unwrap();
    let log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn reopen_after_clean_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    fill(&mut log, 50, 3, 100);
    let before = all_batches(&log);
    let (segments, end, max_ts) = (
        log.segment_count(),
        log.log_end_offset(),
        log.max_timestamp_offset(),
    );
    log.close().unwrap();
    assert!(dir.path().join(".clean_shutdown").exists());
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    assert!(!dir.path().join(".clean_shutdown").exists());
    assert_eq!((log.segment_count(), log.log_end_offset()), (segments, end));
    assert_eq!(log.max_timestamp_offset(), max_ts);
    assert_eq!(all_batches(&log), before);
    let mut b = batch(1, 0);
    assert_eq!(log.append(&mut b, 0, 100).unwrap().first_offset, end);
}

fn log_file(dir: &Path, base: i64) -> std::path::PathBuf {
    dir.join(crate::segment::log_file_name(base))
}

#[test]
fn unclean_reopen_truncates_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
    fill(&mut log, 10, 5, 0);
    let batches = all_batches(&log);
    drop(log); // no clean-shutdown marker
    let path = log_file(dir.path(), 0);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 45);
    assert_eq!(all_batches(&log), batches[..9].to_vec());
    drop(log);

    // Flip a byte inside the 5th batch: it and everything after it go.
    let start_of_5th: usize = batches[..4].iter().map(|(_, b)| b.len()).sum();
    let mut data = fs::read(&path).unwrap();
    data[start_of_5th + 70] ^= 0x01;
    fs::write(&path, &data).unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 20);
    assert_eq!(all_batches(&log), batches[..4].to_vec());
    let mut b = batch(2, 0);
    assert_eq!(log.append(&mut b, 0, 0).unwrap().first_offset, 20);
}

#[test]
fn missing_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    fill(&mut log, 40, 3, 0);
    let before = all_batches(&log);
    log.close().unwrap();
    fs::remove_file(dir.path().join("00000000000000000000.index")).unwrap();
    let log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    assert!(log.segments[0].index_entries() > 0);
    assert_eq!(all_batches(&log), before);
}

#[test]
fn offset_for_timestamp_finds_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    fill(&mut log, 40, 5, 1000); // record i has timestamp 1000 + i
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1000).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(1077).unwrap(), Some((77, 1077)));
    assert_eq!(log.offset_for_timestamp(1199).unwrap(), Some((199, 1199)));
    assert_eq!(log.offset_for_timestamp(1200).unwrap(), None);
    assert_eq!(log.max_timestamp_offset(), Some((199, 1199)));
    log.delete_records_before(50).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().0, 50);
}

#[test]
fn scan_batch_headers_walks_from_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    fill(&mut log, 30, 2, 0);
    let mut seen = Vec::new();
    log.scan_batch_headers(11, |h| seen.push(h.base_offset))
        .unwrap();
    assert_eq!(seen, (5..30).map(|i| i * 2).collect::<Vec<i64>>());
}

#[test]
fn append_rolls_on_segment_ms_and_hands_out_rolled_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(&RealFs::shared(), dir.path(), config).unwrap();
    let mut b = batch(1, 0);
    log.append(&mut b, 0, 1_000).unwrap();
    let mut b = batch(1, 0);
    log.append(&mut b, 0, 1_050).unwrap();
    assert_eq!(log.segment_count(), 1);
    let mut b = batch(1, 0);
    let info = log.append(&mut b, 0, 1_200).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.active_segment_base(), 2);
    assert_eq!(
        info.sync.files().len(),
        6,
        "data and indexes of both segments"
    );
    info.sync.sync_now().unwrap();
}

#[test]
fn delete_removes_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = Log::open(&RealFs::shared(), &path, small_config()).unwrap();
    fill(&mut log, 5, 2, 0);
    log.delete().unwrap();
    assert!(!path.exists());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn recovery_yields_a_valid_prefix(
        sizes in proptest::collection::vec(1usize..6, 1..25),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        corrupt in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { index_interval_bytes: 128, ..LogConfig::default() };
        let mut log = Log::open(&RealFs::shared(), dir.path(), config.clone()).unwrap();
        let mut written = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let mut b = batch(*n, i as i64);
            log.append(&mut b, 0, 0).unwrap();
            written.push(b);
        }
        drop(log);
        let path = log_file(dir.path(), 0);
        let mut data = fs::read(&path).unwrap();
        if corrupt {
            let at = flip.index(data.len());
            data[at] ^= 0x5a;
        } else {
            data.truncate(cut.index(data.len() + 1));
        }
        fs::write(&path, &data).unwrap();

        let log = Log::open(&RealFs::shared(), dir.path(), config).unwrap();
        let recovered = all_batches(&log);
        prop_assert!(recovered.len() <= written.len());
        for (i, (_, bytes)) in recovered.iter().enumerate() {
            prop_assert!(validate_stored_batch(bytes).is_ok());
            // partitionLeaderEpoch (bytes 12..16) is not covered by the CRC, as in
            // Kafka: a flip there is undetectable, so compare everything else.
            prop_assert_eq!(&bytes[..12], &written[i][..12]);
            prop_assert_eq!(&bytes[16..], &written[i][16..]);
        }
        let expected_leo = recovered
            .last()
            .map_or(0, |(_, b)| batch::parse_header(b).unwrap().last_offset() + 1);
        prop_assert_eq!(log.log_end_offset(), expected_leo);
        let on_disk: u64 = recovered.iter().map(|(_, b)| b.len() as u64).sum();
        prop_assert_eq!(log.size_bytes(), on_disk);
    }
}

#[test]
fn corrupt_base_offset_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
    let mut a = batch(1, 0);
    let first_len = a.len();
    log.append(&mut a, 0, 0).unwrap();
    let mut b = batch(3, 0);
    log.append(&mut b, 0, 0).unwrap();
    drop(log);
    let path = log_file(dir.path(), 0);
    let mut data = fs::read(&path).unwrap();
    data[first_len + 4] ^= 0x5a;
    fs::write(&path, &data).unwrap();
    let log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(all_batches(&log).len(), 1);
}

/// Writes 12 rounds of 5 keyed records (k1 deleted in round 8) with `compression`,
/// compacts, and checks that only the latest record per key survives in sealed
/// segments with its original offset, then that tombstones go after the retention.
fn check_compaction(compression: kafka_protocol::records::Compression) {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 700,
        index_interval_bytes: 100,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(&RealFs::shared(), dir.path(), config.clone()).unwrap();
    let mut all = Vec::new(); // (offset, key, value)
    for round in 0..12i64 {
        let keys: Vec<String> = (0..5).map(|k| format!("k{k}")).collect();
        let values: Vec<String> = (0..5).map(|k| format!("v{round}-{k}")).collect();
        let records: Vec<crate::test_util::Kv<'_>> = (0..5)
            .map(|k| {
                let value = (round != 8 || k != 1).then_some(values[k].as_str());
                (Some(keys[k].as_str()), value, round * 10)
            })
            .collect();
        let mut b = crate::test_util::kv_batch(&records, compression);
        let first = log.append(&mut b, 0, round * 10).unwrap().first_offset;
        for (k, (key, value, _)) in records.iter().enumerate() {
            all.push((
                first + k as i64,
                key.unwrap().to_string(),
                value.map(str::to_string),
            ));
        }
    }
    assert!(
        log.segment_count() >= 3,
        "segments: {}",
        log.segment_count()
    );
    let end = log.log_end_offset();
    let active_base = log.active_segment_base();
    let latest: HashMap<&str, i64> = all.iter().map(|(o, k, _)| (k.as_str(), *o)).collect();
    let read_records = |log: &Log| -> Vec<(i64, String, Option<String>)> {
        all_batches(log)
            .iter()
            .flat_map(|(_, b)| {
                batch::validate_stored_batch(b).unwrap();
                decode_all(b)
            })
            .map(|(o, k, v, _)| {
                let s = |b: bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
                (o, s(k.unwrap()), v.map(s))
            })
            .collect()
    };

    let stats = log.compact(100).unwrap();
    assert!(
        stats.segments_cleaned > 0 && stats.records_removed > 0,
        "{stats:?}"
    );
    assert!(stats.bytes_after < stats.bytes_before);
    let expected: Vec<_> = all
        .iter()
        .filter(|(o, k, _)| *o >= active_base || latest[k.as_str()] == *o)
        .cloned()
        .collect();
    assert_eq!(read_records(&log), expected);
    assert_eq!(log.log_end_offset(), end);
    // Reading at a compacted-away offset returns the next surviving batch.
    assert!(log
        .read(1, 1 << 20, i64::MAX, true)
        .unwrap()
        .first_batch_offset
        .is_some());

    // Long after delete.retention.ms the tombstone of k1 (round 8) goes too if sealed.
    let tombstone_offset = 8 * 5 + 1;
    log.compact(1_000_000).unwrap();
    let after = read_records(&log);
    let expected: Vec<_> = expected
        .into_iter()
        .filter(|(o, _, v)| !(v.is_none() && *o < active_base))
        .collect();
    assert_eq!(after, expected);
    if tombstone_offset < active_base {
        assert!(after.iter().all(|(o, _, _)| *o != tombstone_offset));
    }

    // The compacted log survives an unclean reopen unchanged.
    drop(log);
    let log = Log::open(&RealFs::shared(), dir.path(), config).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_records(&log), after);
}

#[test]
fn compaction_keeps_latest_per_key_uncompressed() {
    check_compaction(kafka_protocol::records::Compression::None);
}

#[test]
fn compaction_handles_compressed_batches() {
    use kafka_protocol::records::Compression;
    for c in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        check_compaction(c);
    }
}

#[test]
fn compaction_only_with_compact_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    fill(&mut log, 40, 3, 0);
    assert_eq!(log.compact(1000).unwrap(), Default::default());
}

#[test]
fn one_append_of_several_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), LogConfig::default()).unwrap();
    let mut buf = batch(2, 0);
    buf.extend_from_slice(&batch(3, 0));
    buf.extend_from_slice(&batch(1, 0));
    let info = log.append(&mut buf, 2, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 5));
    let bases: Vec<i64> = all_batches(&log).iter().map(|(b, _)| *b).collect();
    assert_eq!(bases, vec![0, 2, 5]);
    let mut big = batch(1, 0);
    big.resize(2_000_000, 0);
    big[8..12].copy_from_slice(&(2_000_000i32 - 12).to_be_bytes());
    assert!(matches!(
        log.append(&mut big, 2, 0),
        Err(StorageError::MessageTooLarge { .. })
    ));
}

/// Batches as the journal holds them: offsets assigned by an append elsewhere.
fn journaled(n: usize, per: usize) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut source = Log::open(&RealFs::shared(), dir.path(), small_config()).unwrap();
    (0..n)
        .map(|i| {
            let mut b = batch(per, i as i64);
            source.append(&mut b, 3, i as i64).unwrap();
            b
        })
        .collect()
}

#[test]
fn replay_skips_what_is_there_and_appends_the_rest_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let batches = journaled(30, 3);
    let mut log =
        Log::open_with_recovery_point(&RealFs::shared(), dir.path(), small_config(), 0).unwrap();
    for b in &batches[..10] {
        assert_eq!(log.replay(b).unwrap(), 1);
    }
    // A second replay of everything writes only what is missing.
    let written: usize = batches.iter().map(|b| log.replay(b).unwrap()).sum();
    assert_eq!(written, 20);
    assert_eq!(log.log_end_offset(), 90);
    assert!(log.segment_count() > 1, "replay rolls like an append");
    for (i, b) in batches.iter().enumerate() {
        let r = log.read(i as i64 * 3, 1, i64::MAX, true).unwrap();
        assert_eq!(&r.bytes[..], &b[..]);
    }
    assert_eq!(
        log.end_offset_for_epoch(3),
        (3, 90),
        "epochs come from the batches"
    );
}

#[test]
fn replay_truncates_a_tail_that_differs_and_refuses_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log =
        Log::open_with_recovery_point(&RealFs::shared(), dir.path(), small_config(), 0).unwrap();
    fill(&mut log, 5, 2, 0); // offsets 0..10, not what the journal holds
    let batches = journaled(8, 2);
    let written: usize = batches.iter().map(|b| log.replay(b).unwrap()).sum();
    assert_eq!(written, 8, "the differing tail is replaced");
    assert_eq!(log.log_end_offset(), 16);
    let r = log.read(4, 1, i64::MAX, true).unwrap();
    assert_eq!(&r.bytes[..], &batches[2][..]);

    let later = journaled(20, 2);
    let err = log.replay(&later[12]).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
    assert_eq!(log.log_end_offset(), 16);
}

#[test]
fn a_gap_below_the_recovery_point_is_refused_and_one_past_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let fs = RealFs::shared();
    let mut log = Log::open(&fs, dir.path(), small_config()).unwrap();
    fill(&mut log, 60, 3, 0);
    let segments = log.segment_count();
    assert!(segments >= 3);
    drop(log); // unclean
               // Cut the first segment's tail, as a crash does to unsynced bytes.
    let first = dir.path().join(format!("{:020}.log", 0));
    let len = fs::metadata(&first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let err = Log::open_with_recovery_point(&fs, dir.path(), small_config(), 170)
        .err()
        .expect("a gap below the recovery point");
    assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
    let log = Log::open_with_recovery_point(&fs, dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.segment_count(), 1, "what followed the gap went");
    assert!(log.log_end_offset() < 90);
}

#[test]
fn recovery_starts_at_the_recovery_point_inside_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = RealFs::shared();
    let config = LogConfig {
        index_interval_bytes: 300,
        ..LogConfig::default()
    };
    let mut log = Log::open(&fs, dir.path(), config.clone()).unwrap();
    fill(&mut log, 40, 2, 1_000);
    let max_ts = log.max_timestamp_offset();
    log.flush().unwrap();
    drop(log); // unclean
    let path = dir.path().join(format!("{:020}.log", 0));
    let len = fs::metadata(&path).unwrap().len();
    // Corrupt one byte in the last batch: past the recovery point, so it is found and cut.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xff], len - 3).unwrap();
    let log = Log::open_with_recovery_point(&fs, dir.path(), config, 60).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 78, "the corrupt last batch is cut");
    for offset in (0..78).step_by(2) {
        let r = log.read(offset, 1, i64::MAX, true).unwrap();
        assert_eq!(r.first_batch_offset, Some(offset));
        validate_stored_batch(&r.bytes).unwrap();
    }
    assert!(max_ts.is_some_and(|(_, ts)| log.max_timestamp_offset().unwrap().1 <= ts));
}
