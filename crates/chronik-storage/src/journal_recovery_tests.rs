//! The journal and the logs together, on the fault-injecting file system: appends are
//! acknowledged by the journal's completion (as the broker does), segments are never
//! fsynced on the append path, and after a power loss the logs are reopened from their
//! recovery points and the journal replayed. Every acknowledged batch must be back, byte
//! for byte, at its offset; a failed fsync takes the journal offline and nothing after it
//! is acknowledged. Some appends ask for no fsync (a follower's): they promise nothing by
//! themselves, but whatever survives must still open without a gap.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use parking_lot::Mutex;
use proptest::prelude::*;

use crate::config::LogConfig;
use crate::faulty_fs::{Fault, FaultyFs, Op};
use crate::fs::FsRef;
use crate::journal::{DurableListener, Journal, JournalOptions, LogId};
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
        fsync: bool,
    },
    /// Wait until every append was answered (durable or failed).
    Settle,
    SyncFault {
        nth: u64,
    },
    PowerLoss,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..LOGS, 1usize..4, prop::bool::weighted(0.75))
            .prop_map(|(log, records, fsync)| Step::Append { log, records, fsync }),
        2 => Just(Step::Settle),
        1 => (1u64..6).prop_map(|nth| Step::SyncFault { nth }),
        1 => Just(Step::PowerLoss),
    ]
}

/// What the journal told one log's listener: `Ok(durable end)` or a failure.
type Heard = (i32, Result<i64, ()>);

/// A partition's side: forwards what it hears, tagged with its log.
struct Listener {
    log: i32,
    tx: Mutex<mpsc::Sender<Heard>>,
}

impl DurableListener for Listener {
    fn durable(&self, end_offset: i64) {
        let _ = self.tx.lock().send((self.log, Ok(end_offset)));
    }
    fn failed(&self, _: &std::io::Error) {
        let _ = self.tx.lock().send((self.log, Err(())));
    }
}

/// One appended batch: base, end, bytes, and whether its append asked for an fsync.
type Appended = (i64, i64, Vec<u8>, bool);

/// Per log: its appended batches, how far the journal said
/// it is durable for an append that asked for an fsync, and whether the last append was
/// answered.
#[derive(Default)]
struct Model {
    appended: Vec<Vec<Appended>>,
    durable: Vec<i64>,
    answered: Vec<i64>,
}

impl Model {
    fn new() -> Model {
        let n = LOGS as usize;
        Model {
            appended: vec![Vec::new(); n],
            durable: vec![0; n],
            answered: vec![0; n],
        }
    }

    fn hear(&mut self, (log, heard): Heard) {
        let i = log as usize;
        let last_end = self.appended[i].last().map_or(0, |b| b.1);
        match heard {
            Ok(end) => {
                // Promised: up to the last fsynced append the completion covers.
                let promised = self.appended[i]
                    .iter()
                    .filter(|b| b.3 && b.1 <= end)
                    .map(|b| b.1)
                    .max()
                    .unwrap_or(0);
                self.durable[i] = self.durable[i].max(promised);
                self.answered[i] = self.answered[i].max(end);
            }
            // Every append so far is answered: none of the waiting ones becomes durable.
            Err(()) => self.answered[i] = last_end,
        }
    }

    fn all_answered(&self) -> bool {
        (0..LOGS as usize).all(|i| self.answered[i] >= self.appended[i].last().map_or(0, |b| b.1))
    }

    /// Every batch the journal said was durable is back, byte for byte.
    fn check(&self, node: &Node) -> Result<(), TestCaseError> {
        for (i, log) in node.logs.iter().enumerate() {
            prop_assert!(
                log.log_end_offset() >= self.durable[i],
                "log {} lost its end",
                i
            );
            for (base, end, bytes, _) in &self.appended[i] {
                if *end > self.durable[i] {
                    continue;
                }
                let read = log
                    .read(*base, 1, i64::MAX, true)
                    .map_err(|e| TestCaseError::fail(format!("log {i} read {base}: {e}")))?;
                prop_assert_eq!(
                    read.first_batch_offset,
                    Some(*base),
                    "log {} batch {}",
                    i,
                    base
                );
                prop_assert_eq!(&read.bytes[..], &bytes[..], "log {} batch {}", i, base);
            }
        }
        Ok(())
    }

    /// After a restart only what survived counts; offsets past it are handed out again.
    fn restarted(&mut self, node: &Node) {
        for (i, log) in node.logs.iter().enumerate() {
            let end = log.log_end_offset();
            self.appended[i].retain(|b| b.1 <= end);
            self.durable[i] = end;
            self.answered[i] = end;
        }
    }
}

fn run(steps: Vec<Step>, seed: u64) -> Result<(), TestCaseError> {
    let faulty = FaultyFs::new(seed);
    let fs = faulty.shared();
    let mut node = start(&fs);
    let mut model = Model::new();
    let (tx, rx) = mpsc::channel::<Heard>();
    let listeners: Vec<Arc<dyn DurableListener>> = (0..LOGS)
        .map(|log| {
            Arc::new(Listener {
                log,
                tx: Mutex::new(tx.clone()),
            }) as Arc<dyn DurableListener>
        })
        .collect();
    let mut ts = 0i64;
    for step in steps {
        match step {
            Step::Append {
                log,
                records,
                fsync,
            } => {
                ts += 1;
                let mut bytes = batch(records, ts);
                let Ok(info) = node.logs[log as usize].append(&mut bytes, 0, ts) else {
                    continue;
                };
                let end = info.last_offset + 1;
                model.appended[log as usize].push((info.first_offset, end, bytes.clone(), fsync));
                node.journal.append(
                    id(log),
                    end,
                    &bytes,
                    &info.sync,
                    &listeners[log as usize],
                    fsync,
                );
            }
            Step::Settle => {
                while !model.all_answered() {
                    let heard = rx
                        .recv_timeout(Duration::from_secs(10))
                        .map_err(|_| TestCaseError::fail("an append was never answered"))?;
                    model.hear(heard);
                }
            }
            Step::SyncFault { nth } => faulty.fail_nth(Op::Sync, nth, Fault::Os(5)),
            Step::PowerLoss => {
                faulty.lose_power();
                node.journal.stop();
                while let Ok(heard) = rx.try_recv() {
                    model.hear(heard);
                }
                prop_assert!(model.all_answered(), "stop answers every append");
                faulty.clear_faults();
                drop(node);
                node = start(&fs);
                model.check(&node)?;
                model.restarted(&node);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

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
    let listener: Arc<dyn DurableListener> = Arc::new(Listener {
        log: 0,
        tx: Mutex::new(tx),
    });
    let append = |node: &mut Node, ts: i64| {
        let mut bytes = batch(1, ts);
        let info = node.logs[0].append(&mut bytes, 0, ts).unwrap();
        node.journal.append(
            id(0),
            info.last_offset + 1,
            &bytes,
            &info.sync,
            &listener,
            true,
        );
    };
    // The first append also records its leader epoch (a file of its own, fsynced).
    append(&mut node, 0);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        (0, Ok(1))
    );
    faulty.fail_nth(Op::Sync, 1, Fault::Os(5));
    for ts in 1..4 {
        append(&mut node, ts);
        // The first round fails; later appends are refused at once.
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            (0, Err(()))
        );
    }
    assert!(node.journal.is_failed());
    assert!(
        node.journal.close([]).is_err(),
        "no clean close after a failure"
    );
}
