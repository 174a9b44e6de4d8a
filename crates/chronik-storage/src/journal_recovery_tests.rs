//! The journal and the logs together, on the fault-injecting file system: appends are
//! acknowledged by the journal's completion (as the broker does), segments are never
//! fsynced on the append path, and after a power loss the logs are reopened from their
//! recovery points and the journal replayed. Every acknowledged batch must be back, byte
//! for byte, at its offset; a failed fsync takes the journal offline and nothing after it
//! is acknowledged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;

use crate::config::LogConfig;
use crate::faulty_fs::{Fault, FaultyFs, Op};
use crate::fs::FsRef;
use crate::journal::{Journal, JournalOptions, LogId};
use crate::log::Log;
use crate::test_util::batch;

const LOGS: i32 = 3;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn options() -> JournalOptions {
    JournalOptions { rotate_bytes: 900 }
}

fn log_dir(index: i32) -> PathBuf {
    PathBuf::from(format!("/data/t-{index}"))
}

fn id(index: i32) -> LogId {
    LogId { id: 7, index }
}

/// A broker's storage after a start: the journal and one log per partition.
struct Node {
    journal: Journal,
    logs: Vec<Log>,
}

/// What a start does: read the journal, open each log from its recovery point, replay,
/// flush, let the journal go.
fn start(fs: &FsRef) -> Node {
    let (journal, replay) =
        Journal::open(fs.clone(), Path::new("/data/journal"), options()).expect("journal opens");
    let mut logs = Vec::new();
    for index in 0..LOGS {
        let point = replay.recovery_points.get(&id(index)).copied().unwrap_or(0);
        let mut log =
            Log::open_with_recovery_point(fs, &log_dir(index), config(), point).expect("log opens");
        for batches in replay.records.get(&id(index)).into_iter().flatten() {
            log.replay(batches).expect("replay");
        }
        log.flush().expect("flush");
        logs.push(log);
    }
    let ends: Vec<_> = logs
        .iter()
        .enumerate()
        .map(|(i, log)| (id(i as i32), log.log_end_offset()))
        .collect();
    journal.finish_replay(ends, false).expect("journal starts");
    Node { journal, logs }
}

#[derive(Clone, Debug)]
enum Step {
    Append {
        log: i32,
        records: usize,
    },
    /// Wait for every outstanding acknowledgement.
    Settle,
    SyncFault {
        nth: u64,
    },
    PowerLoss,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..LOGS, 1usize..4).prop_map(|(log, records)| Step::Append { log, records }),
        2 => Just(Step::Settle),
        1 => (1u64..6).prop_map(|nth| Step::SyncFault { nth }),
        1 => Just(Step::PowerLoss),
    ]
}

type Ack = (i32, i64, Vec<u8>, std::io::Result<()>);

/// Acknowledged batches per log: base offset → bytes.
#[derive(Default)]
struct Acked(BTreeMap<(i32, i64), Vec<u8>>);

impl Acked {
    fn take(&mut self, ack: Ack) {
        let (log, base, bytes, result) = ack;
        if result.is_ok() {
            self.0.insert((log, base), bytes);
        }
    }

    fn check(&self, node: &Node) -> Result<(), TestCaseError> {
        for (&(log, base), bytes) in &self.0 {
            let log_ref = &node.logs[log as usize];
            let read = log_ref
                .read(base, 1, i64::MAX, true)
                .map_err(|e| TestCaseError::fail(format!("log {log} read {base}: {e}")))?;
            prop_assert_eq!(
                read.first_batch_offset,
                Some(base),
                "log {} batch {}",
                log,
                base
            );
            prop_assert_eq!(&read.bytes[..], &bytes[..], "log {} batch {}", log, base);
        }
        Ok(())
    }
}

fn run(steps: Vec<Step>, seed: u64) -> Result<(), TestCaseError> {
    let faulty = FaultyFs::new(seed);
    let fs = faulty.shared();
    let mut node = start(&fs);
    let mut acked = Acked::default();
    let (tx, rx) = mpsc::channel::<Ack>();
    let mut outstanding = 0usize;
    let mut ts = 0i64;
    // Offsets handed out per log: never again, acknowledged or not, once acknowledged later.
    let mut highest_acked_end = [0i64; LOGS as usize];
    for step in steps {
        match step {
            Step::Append { log, records } => {
                ts += 1;
                let mut bytes = batch(records, ts);
                let target = &mut node.logs[log as usize];
                let Ok(info) = target.append(&mut bytes, 0, ts) else {
                    continue;
                };
                let tx = tx.clone();
                let base = info.first_offset;
                let journaled = bytes.clone();
                node.journal.append(
                    id(log),
                    info.last_offset + 1,
                    &bytes,
                    &info.sync,
                    Box::new(move |r| {
                        let _ = tx.send((log, base, journaled, r));
                    }),
                );
                outstanding += 1;
            }
            Step::Settle => {
                while outstanding > 0 {
                    let ack = rx
                        .recv_timeout(Duration::from_secs(10))
                        .map_err(|_| TestCaseError::fail("an append was never completed"))?;
                    acked.take(ack);
                    outstanding -= 1;
                }
            }
            Step::SyncFault { nth } => faulty.fail_nth(Op::Sync, nth, Fault::Os(5)),
            Step::PowerLoss => {
                faulty.lose_power();
                node.journal.stop();
                while let Ok(ack) = rx.try_recv() {
                    acked.take(ack);
                    outstanding -= 1;
                }
                prop_assert_eq!(outstanding, 0, "stop completes every append");
                faulty.clear_faults();
                drop(node);
                node = start(&fs);
                acked.check(&node)?;
                for (i, log) in node.logs.iter().enumerate() {
                    let end = acked
                        .0
                        .range((i as i32, 0)..(i as i32 + 1, 0))
                        .map(|(_, b)| crate::batch::parse_header(b).unwrap().last_offset() + 1)
                        .max()
                        .unwrap_or(0);
                    highest_acked_end[i] = highest_acked_end[i].max(end);
                    prop_assert!(log.log_end_offset() >= highest_acked_end[i]);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_appends_survive_power_loss_through_the_journal(
        steps in prop::collection::vec(step(), 1..120),
        seed in any::<u64>(),
    ) {
        let mut steps = steps;
        steps.push(Step::PowerLoss);
        run(steps, seed)?;
    }
}

#[test]
fn a_failed_journal_fsync_acknowledges_nothing_after_it() {
    let faulty = FaultyFs::new(1);
    let fs = faulty.shared();
    let mut node = start(&fs);
    let (tx, rx) = mpsc::channel();
    // The first append also records its leader epoch (a file of its own, fsynced).
    let mut first = batch(1, 0);
    let info = node.logs[0].append(&mut first, 0, 0).unwrap();
    let acked = tx.clone();
    node.journal.append(
        id(0),
        info.last_offset + 1,
        &first,
        &info.sync,
        Box::new(move |r| acked.send(r.is_ok()).unwrap()),
    );
    assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    faulty.fail_nth(Op::Sync, 1, Fault::Os(5));
    for i in 1..4 {
        let mut bytes = batch(1, i);
        let info = node.logs[0].append(&mut bytes, 0, i).unwrap();
        let tx = tx.clone();
        node.journal.append(
            id(0),
            info.last_offset + 1,
            &bytes,
            &info.sync,
            Box::new(move |r| tx.send(r.is_ok()).unwrap()),
        );
        // The first round fails; later appends are refused at once.
        assert!(!rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
    assert!(node.journal.is_failed());
    assert!(
        node.journal.close([]).is_err(),
        "no clean close after a failure"
    );
}
