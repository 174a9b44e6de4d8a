//! Tests of `Log` on the fault-injecting file system (`faulty_fs`): failed appends, rolls
//! and reads during recovery, and a property test mixing appends, group-commit syncs,
//! injected faults, rolls, truncations and power losses.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kafka_protocol::records::Compression;
use proptest::prelude::*;

use crate::batch::{self, validate_stored_batch};
use crate::config::{CleanupPolicy, LogConfig};
use crate::faulty_fs::{Fault, FaultyFs, Op};
use crate::fs::FsRef;
use crate::log::Log;
use crate::log::SyncHandle;
use crate::test_util::{batch, kv_batch, Kv};

const DIR: &str = "/data/topic-0";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 150,
        ..LogConfig::default()
    }
}

fn new_log(seed: u64, config: LogConfig) -> (FaultyFs, FsRef, Log) {
    let faulty = FaultyFs::new(seed);
    let fs = faulty.shared();
    let log = Log::open(&fs, Path::new(DIR), config).unwrap();
    (faulty, fs, log)
}

/// Every batch from the log start on, as (base offset, bytes); an error if a read fails.
fn read_all(log: &Log) -> crate::Result<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20, i64::MAX, true)?;
        if r.bytes.is_empty() {
            break;
        }
        for item in batch::batches(&r.bytes) {
            let (h, range) = item?;
            out.push((h.base_offset, r.bytes[range].to_vec()));
            offset = h.last_offset() + 1;
        }
    }
    Ok(out)
}

fn segment_files(fs: &FsRef) -> Vec<String> {
    let mut names: Vec<String> = fs
        .list_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log") || n.ends_with("index"))
        .collect();
    names.sort();
    names
}

/// Fails the `nth` next `op` during one append and checks that the append left nothing:
/// same end, same files, and a retry gets the offsets the failed append would have got.
fn check_failed_append_leaves_nothing(op: Op, nth: u64, epoch: i32) {
    let (faulty, fs, mut log) = new_log(
        1,
        LogConfig {
            index_interval_bytes: 1,
            ..config()
        },
    );
    for ts in 0..3 {
        log.append(&mut batch(2, ts), 0, 0).unwrap();
    }
    let before = read_all(&log).unwrap();
    let (end, size) = (log.log_end_offset(), log.size_bytes());
    let files: Vec<(String, Vec<u8>)> = segment_files(&fs)
        .into_iter()
        .map(|n| (n.clone(), fs.read(&Path::new(DIR).join(&n)).unwrap()))
        .collect();

    faulty.fail_nth(op, nth, Fault::ENOSPC);
    let mut failed = batch(3, 100);
    let err = log.append(&mut failed, epoch, 0).unwrap_err();
    assert!(err.to_string().contains("No space"), "{op:?}: {err}");
    assert_eq!(faulty.faults_injected(), 1);
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    assert_eq!(log.latest_epoch(), Some(0));
    assert_eq!(read_all(&log).unwrap(), before);
    for (name, content) in &files {
        assert_eq!(
            &fs.read(&Path::new(DIR).join(name)).unwrap(),
            content,
            "{op:?} {name}"
        );
    }

    let mut retry = batch(3, 100);
    let info = log.append(&mut retry, epoch, 0).unwrap();
    assert_eq!(info.first_offset, end);
    assert_eq!(log.latest_epoch(), Some(epoch));
    drop(log);
    let log = Log::open(&fs, Path::new(DIR), config()).unwrap();
    let after = read_all(&log).unwrap();
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after.last().unwrap(), &(end, retry));
}

#[test]
fn failed_data_index_or_epoch_write_is_undone() {
    // Writes of one append: data, offset index entry, time index entry.
    for nth in 1..=3 {
        check_failed_append_leaves_nothing(Op::Write, nth, 0);
    }
    // A new epoch is persisted after the data: fail each step of that.
    for op in [Op::Open, Op::Write, Op::Sync, Op::Rename] {
        let nth = if op == Op::Write { 4 } else { 1 };
        check_failed_append_leaves_nothing(op, nth, 3);
    }
}

#[test]
fn failed_undo_refuses_appends_until_recovered() {
    for seed in 0..8 {
        let (faulty, fs, mut log) = new_log(seed, config());
        log.append(&mut batch(2, 0), 0, 0).unwrap();
        let before = read_all(&log).unwrap();
        let end = log.log_end_offset();
        faulty.fail_nth(Op::Write, 1, Fault::EIO);
        faulty.fail_nth(Op::SetLen, 1, Fault::EIO);
        assert!(log.append(&mut batch(3, 10), 0, 0).is_err());
        assert_eq!(log.log_end_offset(), end);
        assert!(log.append(&mut batch(1, 20), 0, 0).is_err());
        assert!(log.close().is_err());
        let mut log = Log::open(&fs, Path::new(DIR), config()).unwrap();
        // Recovery keeps the failed batch only if the short write was in fact whole.
        let after = read_all(&log).unwrap();
        assert_eq!(after[..before.len()], before[..]);
        assert!(after.len() <= before.len() + 1);
        for (_, bytes) in &after {
            validate_stored_batch(bytes).unwrap();
        }
        let next = log.log_end_offset();
        assert_eq!(
            log.append(&mut batch(1, 30), 0, 0).unwrap().first_offset,
            next
        );
    }
}

#[test]
fn failed_roll_leaves_no_orphan_files_and_keeps_the_active_segment() {
    let cases = [
        (Op::Open, 1, Fault::EMFILE),
        (Op::Open, 2, Fault::EMFILE),
        (Op::Open, 3, Fault::ENOSPC),
        (Op::SetLen, 1, Fault::ENOSPC),
        (Op::SyncDir, 1, Fault::EIO),
    ];
    for (op, nth, fault) in cases {
        let (faulty, fs, mut log) = new_log(2, config());
        while log.segment_count() == 1 {
            log.append(&mut batch(3, 0), 0, 0).unwrap();
        }
        // Fill the new active segment up to just before the next roll.
        let base = log.active_segment_base();
        while log.active_segment_base() == base {
            let files = segment_files(&fs);
            let end = log.log_end_offset();
            let mut b = batch(3, 0);
            let len = b.len() as u64;
            if log.segments.last().unwrap().size() + len > log.config().segment_bytes {
                faulty.fail_nth(op, nth, fault);
                assert!(log.append(&mut b, 0, 0).is_err(), "{op:?} #{nth}");
                assert_eq!(faulty.faults_injected(), 1);
                assert_eq!(segment_files(&fs), files, "{op:?} #{nth}");
                assert_eq!(log.active_segment_base(), base);
                assert_eq!(log.log_end_offset(), end);
            }
            log.append(&mut b, 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 3);
        faulty.lose_power();
        drop(log);
        let log = Log::open(&fs, Path::new(DIR), config()).unwrap();
        assert_eq!(log.segment_count(), 3, "{op:?} #{nth}");
    }
}

#[test]
fn read_error_during_recovery_is_returned_and_cuts_nothing() {
    let (faulty, fs, mut log) = new_log(3, config());
    let mut handles = Vec::new();
    for ts in 0..30 {
        handles.push(log.append(&mut batch(2, ts), 0, 0).unwrap().sync);
    }
    for h in &handles {
        h.sync_now().unwrap();
    }
    let before = read_all(&log).unwrap();
    drop(log); // unclean: the last segment is scanned at open
    for nth in 1..=40 {
        faulty.fail_nth(Op::Read, nth, Fault::EIO);
        let opened = Log::open(&fs, Path::new(DIR), config());
        faulty.clear_faults();
        match opened {
            Err(e) => assert!(e.to_string().contains("Input/output"), "#{nth}: {e}"),
            // The fault hit no read of the recovery (or none at all).
            Ok(log) => assert_eq!(read_all(&log).unwrap(), before, "#{nth}"),
        }
        let log = Log::open(&fs, Path::new(DIR), config()).unwrap();
        assert_eq!(read_all(&log).unwrap(), before, "#{nth}");
    }
}

#[test]
fn compaction_survives_power_loss() {
    let config = LogConfig {
        segment_bytes: 400,
        cleanup_policy: CleanupPolicy::Compact,
        ..config()
    };
    let (faulty, fs, mut log) = new_log(4, config.clone());
    for round in 0..10i64 {
        let values: Vec<String> = (0..3).map(|k| format!("v{round}-{k}")).collect();
        let records: Vec<Kv<'_>> = ["a", "b", "c"]
            .iter()
            .zip(&values)
            .map(|(k, v)| (Some(*k), Some(v.as_str()), round))
            .collect();
        log.append(&mut kv_batch(&records, Compression::None), 0, round)
            .unwrap();
    }
    log.flush().unwrap();
    let stats = log.compact(100).unwrap();
    assert!(stats.records_removed > 0);
    let compacted = read_all(&log).unwrap();
    faulty.lose_power();
    drop(log);
    let log = Log::open(&fs, Path::new(DIR), config).unwrap();
    let reopened = read_all(&log).unwrap();
    assert_eq!(reopened, compacted);
    for (_, bytes) in &reopened {
        validate_stored_batch(bytes).unwrap();
    }
}

#[test]
fn truncation_below_the_log_start_is_durable() {
    let (faulty, fs, mut log) = new_log(5, config());
    let mut handles = Vec::new();
    while log.segment_count() < 3 {
        handles.push(log.append(&mut batch(3, 0), 0, 0).unwrap().sync);
    }
    for h in &handles {
        h.sync_now().unwrap();
    }
    let second = log.segments[1].base_offset();
    log.delete_records_before(second + 1).unwrap();
    // Nothing survives; the new first segment starts at the log start, inside the old one.
    log.truncate_to(second + 1).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.active_segment_base(), second + 1);
    faulty.lose_power();
    drop(log);
    let mut log = Log::open(&fs, Path::new(DIR), config()).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (second + 1, second + 1)
    );
    assert_eq!(
        log.append(&mut batch(1, 0), 0, 0).unwrap().first_offset,
        second + 1
    );
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Step {
    /// Appends `batches` batches of `records` records, under a new leader epoch if `bump`.
    Append {
        batches: usize,
        records: usize,
        bump: bool,
    },
    /// One group-commit round over every append not synced yet; on a failure the
    /// partition goes offline: the log is reopened, after a power loss if `crash`.
    Sync { crash: bool },
    /// The `nth` next operation of `op` fails.
    Fault { op: Op, nth: u64, fault: Fault },
    /// Every operation of `op` fails with probability 0.3, until the next reopen.
    FaultRandomly { op: Op, fault: Fault },
    /// Truncates to an offset between the log start and end.
    Truncate(prop::sample::Index),
    /// Power loss, then reopen.
    PowerLoss,
    /// Clean close (if it succeeds), then reopen.
    Close,
}

fn step() -> impl Strategy<Value = Step> {
    let op = prop_oneof![
        Just(Op::Write),
        Just(Op::Sync),
        Just(Op::Open),
        Just(Op::SyncDir),
        Just(Op::Rename),
        Just(Op::Remove),
        Just(Op::Read),
    ];
    let fault = prop_oneof![Just(Fault::EIO), Just(Fault::ENOSPC), Just(Fault::EMFILE)];
    prop_oneof![
        8 => (1usize..3, 1usize..4, prop::bool::weighted(0.1))
            .prop_map(|(batches, records, bump)| Step::Append { batches, records, bump }),
        4 => any::<bool>().prop_map(|crash| Step::Sync { crash }),
        3 => (op.clone(), 1u64..4, fault.clone())
            .prop_map(|(op, nth, fault)| Step::Fault { op, nth, fault }),
        1 => (op, fault).prop_map(|(op, fault)| Step::FaultRandomly { op, fault }),
        1 => any::<prop::sample::Index>().prop_map(Step::Truncate),
        1 => Just(Step::PowerLoss),
        1 => Just(Step::Close),
    ]
}

/// What the test knows the log must (or may) hold.
#[derive(Default)]
struct Model {
    /// Batches of successful appends still expected (not truncated): base offset →
    /// (bytes, last offset, acknowledged).
    batches: BTreeMap<i64, (Vec<u8>, i64, bool)>,
    /// Every batch a successful append wrote, by base offset: all a read may return.
    ever: HashMap<i64, Vec<Vec<u8>>>,
    /// Appends not synced yet: their base offsets and files.
    pending: Vec<(Vec<i64>, SyncHandle)>,
    /// Lowest offset the next append may get.
    floor: i64,
    epoch: i32,
    /// Makes every batch's bytes unique, so a failed append's batch is recognisable.
    stamp: i64,
}

impl Model {
    /// After a truncation at `offset`: its batches are no longer expected, and a sync of
    /// their appends acknowledges nothing (later batches may reuse their offsets).
    fn forget_from(&mut self, offset: i64) {
        self.batches.retain(|_, (_, last, _)| *last < offset);
        for (bases, _) in &mut self.pending {
            bases.retain(|base| self.batches.contains_key(base));
        }
    }
}

/// Opens the log, retrying without faults if an injected one made it fail (the broker
/// would keep the partition offline until then).
fn reopen(faulty: &FaultyFs, fs: &FsRef, model: &mut Model) -> Result<Log, TestCaseError> {
    model.pending.clear();
    let log = match Log::open(fs, Path::new(DIR), config()) {
        Ok(log) => log,
        Err(_) => {
            faulty.clear_faults();
            Log::open(fs, Path::new(DIR), config())
                .map_err(|e| TestCaseError::fail(format!("reopen: {e}")))?
        }
    };
    check(faulty, &log, model)?;
    model.floor = log.log_end_offset();
    Ok(log)
}

/// Acknowledged batches are all there, byte for byte; every batch read is valid and was
/// written by a successful append. Disarms pending faults first: they are for the log.
fn check(faulty: &FaultyFs, log: &Log, model: &Model) -> Result<(), TestCaseError> {
    faulty.clear_faults();
    let acked_end = model
        .batches
        .values()
        .filter(|(_, _, acked)| *acked)
        .map(|(_, last, _)| last + 1)
        .max()
        .unwrap_or(0);
    prop_assert!(log.log_end_offset() >= acked_end);
    for (&base, (bytes, _, acked)) in &model.batches {
        if *acked {
            let r = log
                .read(base, 1, i64::MAX, true)
                .map_err(|e| TestCaseError::fail(format!("read {base}: {e}")))?;
            prop_assert_eq!(r.first_batch_offset, Some(base));
            prop_assert_eq!(&r.bytes[..], &bytes[..], "acked batch at {}", base);
        }
    }
    let all = read_all(log).map_err(|e| TestCaseError::fail(format!("read all: {e}")))?;
    for (base, bytes) in all {
        prop_assert!(
            validate_stored_batch(&bytes).is_ok(),
            "corrupt batch at {}",
            base
        );
        let known = model.ever.get(&base).is_some_and(|v| v.contains(&bytes));
        prop_assert!(known, "batch at {} was never appended successfully", base);
    }
    Ok(())
}

/// Runs `steps`; see [`Step`] and [`check`] for what is verified.
fn run(seed: u64, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let faulty = FaultyFs::new(seed);
    let fs = faulty.shared();
    let mut model = Model::default();
    let mut log = Log::open(&fs, Path::new(DIR), config()).unwrap();
    for step in steps {
        match step {
            Step::Append {
                batches,
                records,
                bump,
            } => {
                let mut buf = Vec::new();
                for _ in 0..batches {
                    model.stamp += 1;
                    buf.extend_from_slice(&batch(records, model.stamp * 100));
                }
                let epoch = model.epoch + i32::from(bump);
                let end = log.log_end_offset();
                prop_assert!(end >= model.floor, "offset {} handed out again", end);
                match log.append(&mut buf, epoch, 0) {
                    Ok(info) => {
                        prop_assert_eq!(info.first_offset, end);
                        model.epoch = epoch;
                        model.floor = info.last_offset + 1;
                        let mut bases = Vec::new();
                        for item in batch::batches(&buf) {
                            let (h, range) = item.unwrap();
                            let bytes = buf[range].to_vec();
                            model
                                .ever
                                .entry(h.base_offset)
                                .or_default()
                                .push(bytes.clone());
                            model
                                .batches
                                .insert(h.base_offset, (bytes, h.last_offset(), false));
                            bases.push(h.base_offset);
                        }
                        model.pending.push((bases, info.sync));
                    }
                    Err(_) => {
                        prop_assert_eq!(log.log_end_offset(), end);
                        let r = log.read(end, 1 << 20, i64::MAX, true);
                        prop_assert!(r.is_ok_and(|r| r.bytes.is_empty()));
                    }
                }
            }
            Step::Sync { crash } => {
                // Like a group-commit round: each distinct file once, then every request
                // whose files all synced is acknowledged.
                let mut synced: Vec<(*const (), bool)> = Vec::new();
                let mut failed = false;
                for (bases, handle) in std::mem::take(&mut model.pending) {
                    let mut ok = true;
                    for file in handle.files() {
                        let id = std::sync::Arc::as_ptr(file).cast::<()>();
                        let result = match synced.iter().find(|(f, _)| *f == id) {
                            Some(&(_, r)) => r,
                            None => {
                                let r = file.sync_data().is_ok();
                                synced.push((id, r));
                                r
                            }
                        };
                        ok &= result;
                    }
                    failed |= !ok;
                    if ok {
                        for base in bases {
                            if let Some(entry) = model.batches.get_mut(&base) {
                                entry.2 = true;
                            }
                        }
                    }
                }
                if failed {
                    if crash {
                        faulty.lose_power();
                    }
                    drop(log);
                    log = reopen(&faulty, &fs, &mut model)?;
                }
            }
            Step::Fault { op, nth, fault } => faulty.fail_nth(op, nth, fault),
            Step::FaultRandomly { op, fault } => faulty.fail_randomly(op, 0.3, fault),
            Step::Truncate(at) => {
                let start = log.log_start_offset();
                let span = (log.log_end_offset() - start) as usize;
                let offset = start + at.index(span + 1) as i64;
                model.forget_from(offset);
                if log.truncate_to(offset).is_err() {
                    drop(log);
                    log = reopen(&faulty, &fs, &mut model)?;
                } else {
                    prop_assert!(log.log_end_offset() <= offset);
                    model.floor = log.log_end_offset();
                    check(&faulty, &log, &model)?;
                }
            }
            Step::PowerLoss => {
                faulty.lose_power();
                drop(log);
                log = reopen(&faulty, &fs, &mut model)?;
            }
            Step::Close => {
                let _ = log.close();
                log = reopen(&faulty, &fs, &mut model)?;
            }
        }
    }
    faulty.lose_power();
    drop(log);
    reopen(&faulty, &fs, &mut model)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn acknowledged_appends_survive_faults_and_power_loss(
        seed in any::<u64>(),
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        run(seed, steps)?;
    }
}
