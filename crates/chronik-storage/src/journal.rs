//! The write-ahead journal of one data directory: the group commit of every partition.
//!
//! Why: fsyncing each partition's segment file costs one fsync per dirty file per round, so
//! the cost of a round grew with the number of partitions written to (100 partitions: 12×
//! slower than no fsync). Every append is instead copied into one journal, and a round costs
//! one write and one `fdatasync` of one file whatever the partition count. Segment files are
//! written (page cache) but not fsynced on the append path; they are fsynced in the
//! background by the checkpointer, after which the journal files they cover are deleted.
//!
//! # Files (`<data dir>/journal/`)
//! - `<start position, 20 digits>.wal`: records back to back. A record is
//!   `len: u32 BE` (bytes after this field) · `crc: u32 BE` (CRC-32C of the rest) ·
//!   `kind: u8` (1 = batches appended) · `log: u128 BE + i32 BE` ([`LogId`]) · the record
//!   batches exactly as written to the log (offsets assigned). Positions count bytes over all
//!   journal files, so a file's name says where it starts.
//! - `recovery-points`: text, `<log id hex> <partition> <offset>` per line: below `offset`,
//!   the log's segments (data and indexes) were fsynced by a checkpoint. Replaced atomically.
//!
//! # Rounds and checkpoints
//! [`Journal::append`] (called under the partition's lock, after the segment write, so each
//! log's records are in the journal in log order) copies the record into the pending buffer.
//! The flusher thread takes everything pending, writes it with one positional write, fsyncs,
//! and runs the completions (which move the partitions' durable ends). Appends that arrive
//! meanwhile form the next round. When the current file passes `rotate_bytes`, a new file is
//! started and the checkpointer thread fsyncs every segment file written since the previous
//! checkpoint, raises the recovery points to the log ends of that moment, and deletes the
//! journal files before the new one. Checkpoints never delay a round.
//!
//! # Failures
//! - A write that fails (e.g. ENOSPC) is retried (every 100 ms) with the same bytes at the
//!   same position; its completions wait, and [`Journal::is_stalled`] lets callers refuse new
//!   appends meanwhile. Nothing is acknowledged that was not written.
//! - A failed fsync (of the journal or, at a checkpoint, of a segment) takes the journal
//!   offline for good: every waiting and later append completes with an error, no recovery
//!   point moves and no journal file is deleted, so the next start replays everything.
//!
//! # Recovery
//! [`Journal::open`] reads every journal file, stops at the first torn or corrupt record of a
//! file, and returns the records per log ([`Replay`]); the caller opens each log, re-appends
//! what is missing (`Log::replay`), flushes the logs and calls [`Journal::finish_replay`],
//! which moves the recovery points and deletes the replayed files — unless a log that
//! still exists could not take its records (an offline partition): then the replayed files
//! are kept, and replayed again at the next start.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tracing::{debug, error, info, trace, warn};

use crate::fs::{FileRef, FsRef, OpenMode};
use crate::log::SyncHandle;

const RECOVERY_POINTS_FILE: &str = "recovery-points";
const KIND_APPEND: u8 = 1;
/// `len` + `crc` + `kind` + log id.
const RECORD_HEADER: usize = 4 + 4 + 1 + 16 + 4;
/// Larger records are taken for corruption when reading (a record holds one produce's
/// batches for one partition, bounded far below this by the request size limit).
const MAX_RECORD: usize = 1 << 30;
const STALL_RETRY: Duration = Duration::from_millis(100);

/// Which log a journal record belongs to. The broker uses the topic id and partition index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogId {
    pub id: u128,
    pub index: i32,
}

/// Journal settings.
#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// Start a new journal file (and a checkpoint) once the current one is this large.
    pub rotate_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            rotate_bytes: 64 << 20,
        }
    }
}

/// What [`Journal::open`] found: per log, its journaled batches in order, and its recovery
/// point.
#[derive(Debug, Default)]
pub struct Replay {
    pub records: HashMap<LogId, Vec<Bytes>>,
    pub recovery_points: HashMap<LogId, i64>,
}

/// Run once an append's round is durable (or failed). Runs on the flusher thread: keep it short.
pub type Completion = Box<dyn FnOnce(io::Result<()>) + Send>;

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    completions: Vec<Completion>,
    files: Vec<FileRef>,
    ends: HashMap<LogId, i64>,
    closing: bool,
}

struct Shared {
    fs: FsRef,
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// An fsync failed: offline until restart. Set with `pending` locked.
    failed: AtomicBool,
    /// The last journal write failed; it is being retried.
    stalled: AtomicBool,
    /// Journal files that start below this are kept for a later replay.
    deletable_from: AtomicU64,
    recovery_points: Mutex<HashMap<LogId, i64>>,
}

/// A checkpoint job: fsync `files`, raise recovery points to `ends`, delete journal files
/// that start before `before`.
struct Checkpoint {
    before: u64,
    files: Vec<FileRef>,
    ends: HashMap<LogId, i64>,
}

/// The journal of one data directory. Share it as `Arc<Journal>`.
pub struct Journal {
    shared: Arc<Shared>,
    options: JournalOptions,
    /// Where the next journal file starts (the end of what was read at open).
    start_position: u64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn wal_name(position: u64) -> String {
    format!("{position:020}.wal")
}

fn parse_wal_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

fn offline() -> io::Error {
    io::Error::other("an earlier fsync failed: the log directory is offline until restart")
}

fn stopped() -> io::Error {
    io::Error::other("the journal is closed")
}

impl Journal {
    /// Opens the journal in `dir` (created if missing) and reads what it holds. No append is
    /// accepted before [`Journal::finish_replay`].
    pub fn open(fs: FsRef, dir: &Path, options: JournalOptions) -> io::Result<(Journal, Replay)> {
        fs.create_dir_all(dir)?;
        let recovery_points = read_recovery_points(&fs, &dir.join(RECOVERY_POINTS_FILE))?;
        let mut files: Vec<u64> = Vec::new();
        for name in fs.list_dir(dir)? {
            if let Some(start) = parse_wal_name(&name) {
                files.push(start);
            } else if name.ends_with(".tmp") {
                fs.remove_file_if_exists(&dir.join(name))?;
            }
        }
        files.sort_unstable();
        let mut records: HashMap<LogId, Vec<Bytes>> = HashMap::new();
        let mut end = 0u64;
        let mut count = 0usize;
        for &start in &files {
            let path = dir.join(wal_name(start));
            let data = fs.read(&path)?;
            let valid = parse_records(&data, |log, batches| {
                records.entry(log).or_default().push(batches);
                count += 1;
            });
            if valid < data.len() {
                warn!(file = %path.display(), valid_bytes = valid, dropped_bytes = data.len() - valid,
                    "journal: torn or corrupt tail ignored");
            }
            end = end.max(start + valid as u64);
        }
        if !files.is_empty() {
            info!(
                files = files.len(),
                records = count,
                logs = records.len(),
                "journal read for replay"
            );
        }
        let shared = Arc::new(Shared {
            fs,
            dir: dir.to_path_buf(),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            deletable_from: AtomicU64::new(0),
            recovery_points: Mutex::new(recovery_points.clone()),
        });
        let journal = Journal {
            shared,
            options,
            start_position: end,
            threads: Mutex::new(Vec::new()),
        };
        Ok((
            journal,
            Replay {
                records,
                recovery_points,
            },
        ))
    }

    /// After the replayed logs were flushed: raises their recovery points to `ends`, deletes
    /// the journal files that were read (or, with `keep_replayed`, keeps them for the next
    /// start), and starts the flusher and checkpointer threads.
    pub fn finish_replay(
        &self,
        ends: impl IntoIterator<Item = (LogId, i64)>,
        keep_replayed: bool,
    ) -> io::Result<()> {
        let shared = &self.shared;
        raise_recovery_points(shared, ends)?;
        if keep_replayed {
            shared
                .deletable_from
                .store(self.start_position, Ordering::Release);
        } else {
            delete_wal_files_before(shared, u64::MAX)?;
        }
        let file = shared.fs.open(
            &shared.dir.join(wal_name(self.start_position)),
            OpenMode::CreateTruncate,
        )?;
        shared.fs.sync_dir(&shared.dir)?;
        let (checkpoints, jobs) = mpsc::channel();
        let flusher = {
            let shared = shared.clone();
            let rotate = self.options.rotate_bytes;
            let start = self.start_position;
            std::thread::Builder::new()
                .name("chronik-journal".into())
                .spawn(move || Flusher::new(shared, file, start, rotate, checkpoints).run())?
        };
        let checkpointer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("chronik-checkpoint".into())
                .spawn(move || run_checkpoints(&shared, jobs))?
        };
        self.threads.lock().extend([flusher, checkpointer]);
        Ok(())
    }

    /// Journals batches just written to `log` (ending before `end_offset`), whose segment
    /// files are `files`; `done` runs once they are durable or failed. Call it under the
    /// log's lock, after the log write, so that the journal keeps each log's order.
    pub fn append(
        &self,
        log: LogId,
        end_offset: i64,
        batches: &[u8],
        files: &SyncHandle,
        done: Completion,
    ) {
        let mut pending = self.shared.pending.lock();
        if self.shared.failed.load(Ordering::Acquire) {
            drop(pending);
            return done(Err(offline()));
        }
        if pending.closing {
            drop(pending);
            return done(Err(stopped()));
        }
        let was_empty = pending.completions.is_empty();
        encode_record(&mut pending.buf, log, batches);
        pending.completions.push(done);
        pending.files.extend(files.files().iter().cloned());
        let end = pending.ends.entry(log).or_insert(end_offset);
        *end = (*end).max(end_offset);
        drop(pending);
        if was_empty {
            self.shared.wake.notify_one();
        }
    }

    /// An fsync failed: the directory is offline until restart.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// The last journal write failed (e.g. the disk is full) and is being retried.
    pub fn is_stalled(&self) -> bool {
        self.shared.stalled.load(Ordering::Acquire)
    }

    /// A log was truncated below its recovery point (its truncation is already durable):
    /// lower the point so that the next unclean start checks what follows.
    pub fn lower_recovery_point(&self, log: LogId, offset: i64) -> io::Result<()> {
        let mut points = self.shared.recovery_points.lock();
        match points.get(&log) {
            Some(&point) if point > offset => {
                points.insert(log, offset);
                write_recovery_points(&self.shared, &points)
            }
            _ => Ok(()),
        }
    }

    /// Stops the threads once everything pending is written (or failed). Idempotent.
    pub fn stop(&self) {
        self.shared.pending.lock().closing = true;
        self.shared.wake.notify_all();
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }

    /// Clean shutdown, after [`Journal::stop`] and after the caller fsynced every log: raise
    /// the recovery points to the logs' ends and delete every journal file. Refused when the
    /// journal failed (the next start must replay it).
    pub fn close(&self, ends: impl IntoIterator<Item = (LogId, i64)>) -> io::Result<()> {
        if self.is_failed() {
            return Err(offline());
        }
        raise_recovery_points(&self.shared, ends)?;
        delete_wal_files_before(&self.shared, u64::MAX)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

fn encode_record(buf: &mut Vec<u8>, log: LogId, batches: &[u8]) {
    let start = buf.len();
    let len = (RECORD_HEADER - 4 + batches.len()) as u32;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&[0; 4]); // crc, patched below
    buf.push(KIND_APPEND);
    buf.extend_from_slice(&log.id.to_be_bytes());
    buf.extend_from_slice(&log.index.to_be_bytes());
    buf.extend_from_slice(batches);
    let crc = crc32c::crc32c(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Calls `f` for each valid record from the start of `data`; returns the length of the valid
/// prefix (the first torn or corrupt record ends it).
fn parse_records(data: &[u8], mut f: impl FnMut(LogId, Bytes)) -> usize {
    let mut pos = 0;
    while data.len() - pos >= RECORD_HEADER {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        if !(RECORD_HEADER - 4..=MAX_RECORD).contains(&len) || pos + 4 + len > data.len() {
            break;
        }
        let body = &data[pos + 8..pos + 4 + len];
        let crc = u32::from_be_bytes(data[pos + 4..pos + 8].try_into().unwrap());
        if crc32c::crc32c(body) != crc || body[0] != KIND_APPEND {
            break;
        }
        let id = u128::from_be_bytes(body[1..17].try_into().unwrap());
        let index = i32::from_be_bytes(body[17..21].try_into().unwrap());
        f(LogId { id, index }, Bytes::copy_from_slice(&body[21..]));
        pos += 4 + len;
    }
    pos
}

/// The flusher thread's state: the current journal file and the round being written.
struct Flusher {
    shared: Arc<Shared>,
    file: FileRef,
    file_start: u64,
    file_len: u64,
    rotate_bytes: u64,
    checkpoints: mpsc::Sender<Checkpoint>,
    round: Vec<u8>,
    round_done: Vec<Completion>,
    /// Segment files written since the last checkpoint, deduplicated by address.
    dirty: HashMap<usize, FileRef>,
    ends: HashMap<LogId, i64>,
}

impl Flusher {
    fn new(
        shared: Arc<Shared>,
        file: FileRef,
        file_start: u64,
        rotate_bytes: u64,
        checkpoints: mpsc::Sender<Checkpoint>,
    ) -> Flusher {
        Flusher {
            shared,
            file,
            file_start,
            file_len: 0,
            rotate_bytes,
            checkpoints,
            round: Vec::new(),
            round_done: Vec::new(),
            dirty: HashMap::new(),
            ends: HashMap::new(),
        }
    }

    fn run(mut self) {
        loop {
            let closing = {
                let mut pending = self.shared.pending.lock();
                while pending.completions.is_empty() && !pending.closing {
                    if self.round_done.is_empty() {
                        self.shared.wake.wait(&mut pending);
                    } else {
                        // A stalled round: retry it after a pause even if nothing new comes.
                        self.shared.wake.wait_for(&mut pending, STALL_RETRY);
                        break;
                    }
                }
                if self.round.is_empty() {
                    std::mem::swap(&mut self.round, &mut pending.buf);
                } else {
                    self.round.append(&mut pending.buf);
                }
                self.round_done.append(&mut pending.completions);
                for file in pending.files.drain(..) {
                    self.dirty
                        .insert(Arc::as_ptr(&file) as *const () as usize, file);
                }
                for (log, end) in pending.ends.drain() {
                    let e = self.ends.entry(log).or_insert(end);
                    *e = (*e).max(end);
                }
                pending.closing
            };
            if !self.round_done.is_empty() && !self.write_round() {
                if closing {
                    // Shutting down with a write that keeps failing: its appends fail.
                    for done in self.round_done.drain(..) {
                        done(Err(stopped()));
                    }
                    return;
                }
                if self.shared.failed.load(Ordering::Acquire) {
                    // Offline (this round's fsync or a checkpoint's failed): the round fails.
                    for done in self.round_done.drain(..) {
                        done(Err(offline()));
                    }
                    return;
                }
                continue;
            }
            if self.file_len >= self.rotate_bytes {
                self.rotate();
            }
            if closing && self.shared.pending.lock().completions.is_empty() {
                return;
            }
        }
    }

    /// Writes and fsyncs the round; completes it. False when it did not become durable.
    fn write_round(&mut self) -> bool {
        if let Err(e) = self.file.write_all_at(&self.round, self.file_len) {
            if !self.shared.stalled.swap(true, Ordering::AcqRel) {
                warn!(error = %e, "journal write failed; retrying, appends refused meanwhile");
            }
            return false;
        }
        if let Err(e) = self.file.sync_data() {
            error!(error = %e, "journal fsync failed: the log directory is offline until restart");
            fail(&self.shared, self.round_done.drain(..).collect());
            return false;
        }
        if self.shared.stalled.swap(false, Ordering::AcqRel) {
            info!("journal writes resumed");
        }
        trace!(
            bytes = self.round.len(),
            appends = self.round_done.len(),
            "journal round"
        );
        self.file_len += self.round.len() as u64;
        self.round.clear();
        for done in self.round_done.drain(..) {
            done(Ok(()));
        }
        true
    }

    /// Starts a new journal file and hands the finished ones to the checkpointer.
    fn rotate(&mut self) {
        let start = self.file_start + self.file_len;
        let opened = self
            .shared
            .fs
            .open(
                &self.shared.dir.join(wal_name(start)),
                OpenMode::CreateTruncate,
            )
            .and_then(|file| self.shared.fs.sync_dir(&self.shared.dir).map(|()| file));
        match opened {
            Ok(file) => {
                debug!(start, "journal rotated");
                self.file = file;
                self.file_start = start;
                self.file_len = 0;
                let job = Checkpoint {
                    before: start,
                    files: self.dirty.drain().map(|(_, f)| f).collect(),
                    ends: std::mem::take(&mut self.ends),
                };
                let _ = self.checkpoints.send(job);
            }
            // Keep writing the current file; the next round tries again.
            Err(e) => warn!(error = %e, "journal rotation failed"),
        }
    }
}

/// Takes the journal offline and fails `round` and everything pending.
fn fail(shared: &Shared, round: Vec<Completion>) {
    let pending = {
        let mut pending = shared.pending.lock();
        shared.failed.store(true, Ordering::Release);
        std::mem::take(&mut pending.completions)
    };
    for done in round.into_iter().chain(pending) {
        done(Err(offline()));
    }
}

fn run_checkpoints(shared: &Shared, jobs: mpsc::Receiver<Checkpoint>) {
    for job in jobs {
        if shared.failed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = job.files.iter().try_for_each(|f| f.sync_data()) {
            error!(error = %e, "segment fsync failed: the log directory is offline until restart");
            fail(shared, Vec::new());
            return;
        }
        let done = raise_recovery_points(shared, job.ends)
            .and_then(|()| delete_wal_files_before(shared, job.before));
        match done {
            Ok(()) => debug!(files = job.files.len(), before = job.before, "checkpoint"),
            // The journal files stay, so nothing is lost; the next checkpoint tries again.
            Err(e) => warn!(error = %e, "checkpoint failed"),
        }
    }
}

fn raise_recovery_points(
    shared: &Shared,
    ends: impl IntoIterator<Item = (LogId, i64)>,
) -> io::Result<()> {
    let mut points = shared.recovery_points.lock();
    let mut changed = false;
    for (log, end) in ends {
        let point = points.entry(log).or_insert(-1);
        if end > *point {
            *point = end;
            changed = true;
        }
    }
    if changed {
        write_recovery_points(shared, &points)?;
    }
    Ok(())
}

fn write_recovery_points(shared: &Shared, points: &HashMap<LogId, i64>) -> io::Result<()> {
    let mut sorted: Vec<_> = points.iter().collect();
    sorted.sort_unstable();
    let text: String = sorted
        .into_iter()
        .map(|(log, offset)| format!("{:032x} {} {offset}\n", log.id, log.index))
        .collect();
    shared
        .fs
        .write_atomic(&shared.dir.join(RECOVERY_POINTS_FILE), text.as_bytes())
}

fn read_recovery_points(fs: &FsRef, path: &Path) -> io::Result<HashMap<LogId, i64>> {
    let text = match fs.read(path) {
        Ok(raw) => String::from_utf8_lossy(&raw).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let parsed = (|| {
                let id = u128::from_str_radix(parts.next()?, 16).ok()?;
                let index = parts.next()?.parse().ok()?;
                let offset = parts.next()?.parse().ok()?;
                Some((LogId { id, index }, offset))
            })();
            parsed.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad line {line:?} in {}", path.display()),
                )
            })
        })
        .collect()
}

/// Deletes the journal files that start before `before` (`u64::MAX`: all of them), except
/// those kept for a later replay.
fn delete_wal_files_before(shared: &Shared, before: u64) -> io::Result<()> {
    let from = shared.deletable_from.load(Ordering::Acquire);
    let mut removed = false;
    for name in shared.fs.list_dir(&shared.dir)? {
        if parse_wal_name(&name).is_some_and(|start| (from..before).contains(&start)) {
            shared.fs.remove_file_if_exists(&shared.dir.join(name))?;
            removed = true;
        }
    }
    if removed {
        shared.fs.sync_dir(&shared.dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    fn log(index: i32) -> LogId {
        LogId { id: 0xabc, index }
    }

    fn append_and_wait(journal: &Journal, log: LogId, end: i64, data: &[u8]) -> io::Result<()> {
        let (tx, rx) = mpsc::channel();
        journal.append(
            log,
            end,
            data,
            &SyncHandle::default(),
            Box::new(move |r| tx.send(r).unwrap()),
        );
        rx.recv().unwrap()
    }

    #[test]
    fn appended_records_are_replayed_in_order_per_log() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, replay) =
            Journal::open(RealFs::shared(), dir.path(), JournalOptions::default()).unwrap();
        assert!(replay.records.is_empty());
        journal.finish_replay([], false).unwrap();
        append_and_wait(&journal, log(0), 1, b"a0").unwrap();
        append_and_wait(&journal, log(1), 1, b"b0").unwrap();
        append_and_wait(&journal, log(0), 2, b"a1").unwrap();
        journal.stop();
        drop(journal); // a crash: no close, files stay

        let (journal, replay) =
            Journal::open(RealFs::shared(), dir.path(), JournalOptions::default()).unwrap();
        assert_eq!(
            replay.records[&log(0)],
            vec![Bytes::from("a0"), Bytes::from("a1")]
        );
        assert_eq!(replay.records[&log(1)], vec![Bytes::from("b0")]);
        journal
            .finish_replay([(log(0), 2), (log(1), 1)], false)
            .unwrap();
        append_and_wait(&journal, log(0), 3, b"a2").unwrap();
        journal.stop();
        drop(journal);

        let (_, replay) =
            Journal::open(RealFs::shared(), dir.path(), JournalOptions::default()).unwrap();
        assert_eq!(replay.records[&log(0)], vec![Bytes::from("a2")]);
        assert_eq!(replay.recovery_points[&log(0)], 2);
        assert_eq!(replay.recovery_points[&log(1)], 1);
    }

    #[test]
    fn a_torn_tail_ends_the_replay_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) =
            Journal::open(RealFs::shared(), dir.path(), JournalOptions::default()).unwrap();
        journal.finish_replay([], false).unwrap();
        append_and_wait(&journal, log(0), 1, b"whole").unwrap();
        append_and_wait(&journal, log(0), 2, b"torn").unwrap();
        journal.stop();
        drop(journal);
        let path = dir.path().join(wal_name(0));
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 1).unwrap();
        let (_, replay) =
            Journal::open(RealFs::shared(), dir.path(), JournalOptions::default()).unwrap();
        assert_eq!(replay.records[&log(0)], vec![Bytes::from("whole")]);
    }

    #[test]
    fn rotation_checkpoints_and_deletes_covered_files() {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions { rotate_bytes: 100 };
        let (journal, _) = Journal::open(RealFs::shared(), dir.path(), options.clone()).unwrap();
        journal.finish_replay([], false).unwrap();
        for i in 0..20 {
            append_and_wait(&journal, log(i % 2), i as i64 / 2 + 1, &[7u8; 40]).unwrap();
        }
        // The checkpointer runs behind the flusher: wait for it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let wal_files = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "wal")
                })
                .count()
        };
        while wal_files() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(wal_files(), 1, "checkpoints delete the files they cover");
        journal.stop();
        drop(journal);
        let (journal, replay) = Journal::open(RealFs::shared(), dir.path(), options).unwrap();
        let replayed: usize = replay.records.values().map(Vec::len).sum();
        let checkpointed = replay.recovery_points.get(&log(0)).copied().unwrap_or(0)
            + replay.recovery_points.get(&log(1)).copied().unwrap_or(0);
        assert_eq!(
            checkpointed as usize + replayed,
            20,
            "every append is checkpointed or replayed"
        );
        journal.stop();
        journal.close([(log(0), 10), (log(1), 10)]).unwrap();
        assert_eq!(wal_files(), 0, "a clean close leaves no journal");
    }
}
