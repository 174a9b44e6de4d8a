//! Tests of compaction built aside: appends during a pass are kept, a truncation during one
//! voids it, and a full key map limits the pass to the segments it covers.

use std::collections::HashMap;

use kafka_protocol::records::Compression;

use crate::config::CleanupPolicy;
use crate::fs::RealFs;
use crate::test_util::{decode_all, kv_batch};
use crate::{Log, LogConfig};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    }
}

/// Appends one batch per round of `keys` keyed records (`k0..`), values `r<round>`.
fn fill(log: &mut Log, rounds: std::ops::Range<i64>, keys: usize) {
    for round in rounds {
        let names: Vec<String> = (0..keys).map(|k| format!("k{k}")).collect();
        let value = format!("r{round}");
        let records: Vec<_> = names
            .iter()
            .map(|k| (Some(k.as_str()), Some(value.as_str()), round))
            .collect();
        let mut b = kv_batch(&records, Compression::None);
        log.append(&mut b, 0, round).unwrap();
    }
}

/// Every record as (offset, key, value).
fn records(log: &Log) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20, i64::MAX, true).unwrap();
        if read.bytes.is_empty() {
            break;
        }
        for item in crate::batch::batches(&read.bytes) {
            let (h, _) = item.unwrap();
            offset = h.last_offset() + 1;
        }
        let s = |b: bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
        out.extend(
            decode_all(&read.bytes)
                .into_iter()
                .map(|(o, k, v, _)| (o, s(k.unwrap()), s(v.unwrap()))),
        );
    }
    out
}

#[test]
fn appends_during_a_pass_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), config()).unwrap();
    fill(&mut log, 0..10, 3);
    let plan = log
        .plan_compaction(1_000)
        .expect("sealed segments to clean");
    // Appends (and rolls) while the pass runs without the lock.
    fill(&mut log, 10..16, 3);
    let end = log.log_end_offset();
    let mut cleaned = plan.build().unwrap();
    let stats = log.install_compaction(&mut cleaned).unwrap();
    cleaned.finish().unwrap();
    assert!(stats.records_removed > 0, "{stats:?}");
    assert_eq!(log.log_end_offset(), end);
    let after = records(&log);
    // Everything appended during the pass is there, at its offset.
    let appended: Vec<_> = after.iter().filter(|(o, _, _)| *o >= 30).collect();
    assert_eq!(appended.len(), 18);
    // Each key's latest value is still readable and offsets only grow.
    let latest: HashMap<&str, &str> = after
        .iter()
        .map(|(_, k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(latest.values().all(|v| *v == "r15"));
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(!dir.path().join(super::STAGING_DIR).exists());
}

#[test]
fn a_truncation_during_a_pass_voids_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), config()).unwrap();
    fill(&mut log, 0..10, 3);
    let before = records(&log);
    let plan = log.plan_compaction(1_000).unwrap();
    let mut cleaned = plan.build().unwrap();
    // A follower's cut removes the newest records, which the key map counted as latest.
    log.truncate_to(20).unwrap();
    let stats = log.install_compaction(&mut cleaned).unwrap();
    cleaned.finish().unwrap();
    assert_eq!(stats, Default::default());
    // Nothing compacted: what the cut left (whole batches) is all there.
    let end = log.log_end_offset();
    let kept: Vec<_> = before.into_iter().filter(|(o, _, _)| *o < end).collect();
    assert_eq!(records(&log), kept);
}

#[test]
fn a_full_key_map_cleans_only_what_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(&RealFs::shared(), dir.path(), config()).unwrap();
    // Three keys repeat, then new keys arrive that overflow a map of 4 entries.
    fill(&mut log, 0..6, 3);
    for round in 6..12 {
        let key = format!("new{round}");
        let mut b = kv_batch(&[(Some(&key), Some("x"), round)], Compression::None);
        log.append(&mut b, 0, round).unwrap();
    }
    fill(&mut log, 12..14, 1);
    let segments = log.segment_count();
    let plan = log.plan_compaction(1_000).unwrap().with_key_map_entries(4);
    let mut cleaned = plan.build().unwrap();
    log.install_compaction(&mut cleaned).unwrap();
    cleaned.finish().unwrap();
    let after = records(&log);
    // k0 (overwritten again at rounds 12-13, past the map's reach) keeps its older values;
    // nothing is lost that has no newer record the map saw.
    assert_eq!(log.segment_count(), segments);
    for round in 6..12 {
        assert!(after.iter().any(|(_, k, _)| *k == format!("new{round}")));
    }
    assert!(after.iter().any(|(_, k, v)| k == "k0" && v == "r13"));
    assert!(after.iter().any(|(_, k, v)| k == "k1" && v == "r5"));
}
