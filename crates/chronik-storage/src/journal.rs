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
//! - `<start position, 20 digits>.wal`: one frame per round, back to back. A frame is
//!   `position: u64 BE` (where the frame starts, counted in bytes over all journal files,
//!   so a file's name says where it starts) · `len: u32 BE` (bytes after the header) ·
//!   `crc: u32 BE` (CRC-32C of position, len and the records) · records. A record is
//!   `len: u32 BE` (bytes after this field) · `kind: u8` (1 = batches appended) ·
//!   `log: u128 BE + i32 BE` ([`LogId`]) · the record batches exactly as written to the log
//!   (offsets assigned). The first frame whose position, length or CRC does not hold ends
//!   the file: a torn tail, or what an earlier use of a recycled file left.
//! - `recovery-points`: text, `<log id hex> <partition> <offset>` per line: below `offset`,
//!   the log's segments (data and indexes) were fsynced by a checkpoint. Replaced atomically.
//! - `next.spare`: the next journal file, written to `rotate_bytes` ahead of time by the
//!   checkpointer (a file a checkpoint retired, topped up with zeros, or zeros), renamed
//!   into place at the next rotation. Why: an `fdatasync` that must persist a grown file
//!   size is a file-system journal commit, which on ext4 (data=ordered) also writes out
//!   every other file's newly allocated data — every partition's segment tail — so a round
//!   over a growing file costs more the more partitions are written (0.55–1.2 ms at 100
//!   partitions against 0.15–0.25 ms over written blocks, measured here). A growing file is
//!   used only until a spare is ready (asked for once it passes 1 MiB, so idle brokers never
//!   write one). Old frames in a recycled file carry positions that never match again.
//!   Deleted at open and at a clean close.
//!
//! # Rounds and checkpoints
//! [`Journal::append`] (called under the partition's lock, after the segment write, so each
//! log's records are in the journal in log order) copies the record into the pending buffer.
//! The flusher thread takes everything pending, writes it with one positional write, fsyncs,
//! and tells each log's [`DurableListener`] once how far it is durable (which moves the
//! partition's durable end). An append may ask for no fsync (a follower's copy of its
//! leader's batches: as in Kafka, the leader's fsync and the ISR make the promise): a round
//! of only such appends is written but not fsynced, and the next fsync of the file (a later
//! round's, or the one before the file is left) covers it, so what survives a crash is still
//! a prefix of the journal. Appends that arrive
//! meanwhile form the next round. When the current file passes `rotate_bytes`, a new file is
//! started and the checkpointer thread fsyncs every segment file written since the previous
//! checkpoint, raises the recovery points to the log ends of that moment, and deletes the
//! journal files before the new one. Checkpoints never delay a round. Between checkpoints,
//! every `WRITEBACK_EVERY` journal bytes the checkpointer starts the kernel writing out the
//! segment files of the logs that gained `WRITEBACK_LOG_MIN` bytes since their last writeback
//! (`sync_file_range`), so a checkpoint's fsync finds little left to write.
//!
//! # Failures
//! - A write that fails (e.g. ENOSPC) is retried (every 100 ms) with the same bytes at the
//!   same position; its appends wait, and [`Journal::is_stalled`] lets callers refuse new
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
use crate::histogram::{self, Histogram};
use crate::log::SyncHandle;

const RECOVERY_POINTS_FILE: &str = "recovery-points";
const SPARE_FILE: &str = "next.spare";
/// A growing journal file past this asks for a spare.
const SPARE_WANTED_AFTER: u64 = 1 << 20;
const KIND_APPEND: u8 = 1;
/// `position` + `len` + `crc`.
const FRAME_HEADER: usize = 8 + 4 + 4;
/// `len` + `kind` + log id.
const RECORD_HEADER: usize = 4 + 1 + 16 + 4;
/// Larger frames are taken for corruption when reading (a round holds what producers sent
/// during one fsync, far below this).
const MAX_FRAME: usize = 1 << 30;
const STALL_RETRY: Duration = Duration::from_millis(100);
/// Every this many journal bytes, the segment files written since the last checkpoint are
/// given to the kernel to write out. Why: left dirty until the checkpoint, a rotation's worth
/// of segment data (64 MiB per node) goes to the disk in one burst that the journal's next
/// fdatasync queues behind (rounds of 150–200 ms on this machine's disk with three nodes).
const WRITEBACK_EVERY: u64 = 1 << 20;
/// A log's files are written back only once it has appended this much since their last
/// writeback. Why: with many partitions each log gains far less than a page per
/// `WRITEBACK_EVERY`, and writing out every file's partial last page each time wrote each page
/// several times over (at 1,000 partitions the checkpointer took 13% of the broker's CPU,
/// mostly in the kernel's writeback).
const WRITEBACK_LOG_MIN: u64 = 16 << 10;

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

/// Told when a log's journaled appends became durable. Called on the flusher thread, once
/// per log per round (not per append: a partition's waiters wake once per fsync), so keep
/// it short.
pub trait DurableListener: Send + Sync {
    /// Everything of the log below `end_offset` is durable.
    fn durable(&self, end_offset: i64);
    /// The appends waiting will not become durable: the journal failed or is closing.
    fn failed(&self, error: &io::Error);
}

/// A log's appends in a round: who to tell, the end of the last one, their bytes, and the
/// segment files they wrote.
struct Waiter {
    listener: Arc<dyn DurableListener>,
    end_offset: i64,
    appends: usize,
    bytes: u64,
    files: Vec<FileRef>,
}

/// Adds `new` to `files`, each file once (a log writes the same few files until it rolls).
fn add_files<'a>(files: &mut Vec<FileRef>, new: impl IntoIterator<Item = &'a FileRef>) {
    for file in new {
        if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
            files.push(file.clone());
        }
    }
}

/// What a log appended since its files' last writeback.
#[derive(Default)]
struct NotWrittenBack {
    bytes: u64,
    files: Vec<FileRef>,
}

type Waiters = HashMap<LogId, Waiter>;

/// Moves `from` into `into`, keeping each log's highest end.
fn merge_waiters(into: &mut Waiters, from: &mut Waiters) {
    for (log, waiter) in from.drain() {
        match into.get_mut(&log) {
            Some(w) => {
                w.end_offset = w.end_offset.max(waiter.end_offset);
                w.appends += waiter.appends;
                w.bytes += waiter.bytes;
                add_files(&mut w.files, &waiter.files);
            }
            None => {
                into.insert(log, waiter);
            }
        }
    }
}

fn fail_waiters(waiters: Waiters, error: &io::Error) {
    for waiter in waiters.into_values() {
        waiter.listener.failed(error);
    }
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    waiters: Waiters,
    closing: bool,
    /// Some pending append needs the round fsynced.
    fsync: bool,
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
    /// The next journal file (`next.spare`), once ready.
    spare: Mutex<Option<Spare>>,
    rotate_bytes: u64,
    recovery_points: Mutex<HashMap<LogId, i64>>,
    /// Logs truncated since this journal opened, with the offset they were cut to: a
    /// checkpoint may carry an end from before the cut, so their recovery points never rise
    /// above it again until the next start (truncations are rare: a replica changing leader).
    truncated: Mutex<HashMap<LogId, i64>>,
    stats: JournalStats,
}

/// What the flusher measured of its rounds, for the broker's metrics: how many appends each
/// round carried (the group commit's batching) and how long each fsync took. Recorded by the
/// flusher thread alone, read at a scrape.
#[derive(Debug)]
pub struct JournalStats {
    pub round_appends: Histogram,
    pub round_bytes: Histogram,
    pub fsync: Histogram,
}

/// Bounds for round sizes in bytes, 1 KiB .. 64 MiB.
const ROUND_BYTES: &[u64] = &[
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
];

/// Work for the checkpointer thread.
enum Job {
    /// Fsync `files`, raise recovery points to `ends`, retire journal files that start
    /// before `before` (one of them becomes the spare).
    Checkpoint {
        before: u64,
        files: Vec<FileRef>,
        ends: HashMap<LogId, i64>,
    },
    /// Write a spare of zeros, unless one is ready.
    PrepareSpare,
    /// Start writing these segment files' dirty pages out (`WRITEBACK_EVERY`).
    StartWriteback(Vec<FileRef>),
}

/// A ready spare journal file and how many bytes of it are written.
struct Spare {
    file: FileRef,
    written: u64,
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
            } else if name.ends_with(".tmp") || name == SPARE_FILE {
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
            let valid = parse_frames(&data, start, |log, batches| {
                records.entry(log).or_default().push(batches);
                count += 1;
            });
            // A recycled file holds old frames past its end: not worth a warning.
            debug!(file = %path.display(), valid_bytes = valid, "journal file read");
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
            spare: Mutex::new(None),
            rotate_bytes: options.rotate_bytes,
            recovery_points: Mutex::new(recovery_points.clone()),
            truncated: Mutex::new(HashMap::new()),
            stats: JournalStats {
                round_appends: Histogram::new(histogram::COUNTS),
                round_bytes: Histogram::new(ROUND_BYTES),
                fsync: Histogram::new(histogram::LATENCY_NANOS),
            },
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

    /// Round sizes and fsync latencies so far.
    pub fn stats(&self) -> &JournalStats {
        &self.shared.stats
    }

    /// Journals batches just written to `log` (ending before `end_offset`), whose segment
    /// files are `files`; `listener` hears when they are durable (or will not be): fsynced,
    /// or with `fsync` false only written. Call it under the log's lock, after the log
    /// write, so that the journal keeps each log's order.
    pub fn append(
        &self,
        log: LogId,
        end_offset: i64,
        batches: &[u8],
        files: &SyncHandle,
        listener: &Arc<dyn DurableListener>,
        fsync: bool,
    ) {
        let mut pending = self.shared.pending.lock();
        if self.shared.failed.load(Ordering::Acquire) {
            drop(pending);
            return listener.failed(&offline());
        }
        if pending.closing {
            drop(pending);
            return listener.failed(&stopped());
        }
        let was_empty = pending.waiters.is_empty();
        pending.fsync |= fsync;
        encode_record(&mut pending.buf, log, batches);
        let waiter = pending.waiters.entry(log).or_insert_with(|| Waiter {
            listener: listener.clone(),
            end_offset,
            appends: 0,
            bytes: 0,
            files: Vec::new(),
        });
        waiter.end_offset = waiter.end_offset.max(end_offset);
        waiter.appends += 1;
        waiter.bytes += batches.len() as u64;
        add_files(&mut waiter.files, files.files());
        drop(pending);
        if was_empty {
            self.shared.wake.notify_one();
        }
    }

    /// An fsync failed: the directory is offline until restart.
    /// Before a log is truncated to `offset` (a follower dropping a divergent tail): its
    /// recovery point comes down to `offset` and is persisted, so a crash after the cut never
    /// finds the log ending below a point it was promised, and no later checkpoint raises it
    /// above `offset` while this journal runs.
    pub fn lower_recovery_point(&self, log: LogId, offset: i64) -> io::Result<()> {
        let mut points = self.shared.recovery_points.lock();
        let mut truncated = self.shared.truncated.lock();
        let cut = truncated.entry(log).or_insert(offset);
        *cut = (*cut).min(offset);
        match points.get_mut(&log) {
            Some(point) if *point > offset => {
                *point = offset;
                write_recovery_points(&self.shared, &points)
            }
            _ => Ok(()),
        }
    }

    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// The last journal write failed (e.g. the disk is full) and is being retried.
    pub fn is_stalled(&self) -> bool {
        self.shared.stalled.load(Ordering::Acquire)
    }

    /// Stops the threads once everything pending is written (or failed). Idempotent.
    pub fn stop(&self) {
        self.shared.pending.lock().closing = true;
        self.shared.wake.notify_all();
        let me = std::thread::current().id();
        for thread in self.threads.lock().drain(..) {
            // The last owner may let go on the journal's own thread (a partition whose
            // completion ran there): that thread ends by itself once closing is seen.
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
    }

    /// Clean shutdown, after [`Journal::stop`] and after the caller fsynced every log (and no
    /// journaled batch waits for a log not opened): raise the recovery points to the logs'
    /// ends and delete every journal file. Refused when the
    /// journal failed (the next start must replay it).
    pub fn close(&self, ends: impl IntoIterator<Item = (LogId, i64)>) -> io::Result<()> {
        if self.is_failed() {
            return Err(offline());
        }
        raise_recovery_points(&self.shared, ends)?;
        // Files kept for a later replay are no longer needed either: every log is durable.
        self.shared.deletable_from.store(0, Ordering::Release);
        let mut slot = self.shared.spare.lock();
        slot.take();
        self.shared
            .fs
            .remove_file_if_exists(&self.shared.dir.join(SPARE_FILE))?;
        drop(slot);
        delete_wal_files_before(&self.shared, u64::MAX)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Appends a record to a round's buffer, which starts with room for its frame header.
fn encode_record(buf: &mut Vec<u8>, log: LogId, batches: &[u8]) {
    if buf.is_empty() {
        buf.resize(FRAME_HEADER, 0); // filled in by `seal_frame`
    }
    let len = (RECORD_HEADER - 4 + batches.len()) as u32;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.push(KIND_APPEND);
    buf.extend_from_slice(&log.id.to_be_bytes());
    buf.extend_from_slice(&log.index.to_be_bytes());
    buf.extend_from_slice(batches);
}

/// Fills in the header of a frame that is written at journal `position`: one CRC per round,
/// computed on the flusher thread rather than per append.
fn seal_frame(frame: &mut [u8], position: u64) {
    let len = (frame.len() - FRAME_HEADER) as u32;
    frame[..8].copy_from_slice(&position.to_be_bytes());
    frame[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[..12]), &frame[FRAME_HEADER..]);
    frame[12..16].copy_from_slice(&crc.to_be_bytes());
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Calls `f` for each record of each valid frame of a journal file that starts at journal
/// position `start`; returns the length of the valid prefix.
fn parse_frames(data: &[u8], start: u64, mut f: impl FnMut(LogId, Bytes)) -> usize {
    let mut pos = 0;
    while data.len() - pos >= FRAME_HEADER {
        let header = &data[pos..pos + FRAME_HEADER];
        let position = u64::from_be_bytes(header[..8].try_into().expect("8 bytes"));
        let len = be_u32(&header[8..]) as usize;
        if position != start + pos as u64
            || len > MAX_FRAME
            || len > data.len() - pos - FRAME_HEADER
        {
            break;
        }
        let body = &data[pos + FRAME_HEADER..pos + FRAME_HEADER + len];
        if crc32c::crc32c_append(crc32c::crc32c(&header[..12]), body) != be_u32(&header[12..]) {
            break;
        }
        let Some(records) = parse_records(body) else {
            break; // a sealed frame with malformed records: written by a bug, trust nothing after
        };
        for (log, batches) in records {
            f(log, Bytes::copy_from_slice(batches));
        }
        pos += FRAME_HEADER + len;
    }
    pos
}

/// The records of one frame's body, or None if they do not fill it exactly.
fn parse_records(mut body: &[u8]) -> Option<Vec<(LogId, &[u8])>> {
    let mut records = Vec::new();
    while !body.is_empty() {
        if body.len() < RECORD_HEADER {
            return None;
        }
        let len = be_u32(body) as usize;
        if len < RECORD_HEADER - 4 || len > body.len() - 4 || body[4] != KIND_APPEND {
            return None;
        }
        let id = u128::from_be_bytes(body[5..21].try_into().expect("16 bytes"));
        let index = be_u32(&body[21..]) as i32;
        records.push((LogId { id, index }, &body[RECORD_HEADER..4 + len]));
        body = &body[4 + len..];
    }
    Some(records)
}

/// The flusher thread's state: the current journal file and the round being written.
struct Flusher {
    shared: Arc<Shared>,
    file: FileRef,
    file_start: u64,
    file_len: u64,
    rotate_bytes: u64,
    checkpoints: mpsc::Sender<Job>,
    /// Bytes of the current file that were written before it was taken (a spare's zeros or
    /// old frames): writes within them do not grow the file.
    capacity: u64,
    spare_asked: bool,
    /// The frame being written: a header, then records.
    round: Vec<u8>,
    round_waiters: Waiters,
    /// The round holds an append that needs it fsynced.
    round_fsync: bool,
    /// The current file holds a round written without fsync.
    unsynced: bool,
    /// Segment files written since the last checkpoint, deduplicated by address.
    dirty: HashMap<usize, FileRef>,
    /// Per log, what it wrote since its files' last writeback (or the last checkpoint).
    not_written_back: HashMap<LogId, NotWrittenBack>,
    /// Journal bytes written since segment writeback was last started.
    since_writeback: u64,
    /// Each log's end as of the last durable round (the next checkpoint's recovery points).
    ends: HashMap<LogId, i64>,
}

impl Flusher {
    fn new(
        shared: Arc<Shared>,
        file: FileRef,
        file_start: u64,
        rotate_bytes: u64,
        checkpoints: mpsc::Sender<Job>,
    ) -> Flusher {
        Flusher {
            shared,
            file,
            file_start,
            file_len: 0,
            rotate_bytes,
            checkpoints,
            capacity: 0,
            spare_asked: false,
            round: Vec::new(),
            round_waiters: HashMap::new(),
            round_fsync: false,
            unsynced: false,
            dirty: HashMap::new(),
            not_written_back: HashMap::new(),
            since_writeback: 0,
            ends: HashMap::new(),
        }
    }

    fn run(mut self) {
        loop {
            let closing = {
                let mut pending = self.shared.pending.lock();
                while pending.waiters.is_empty() && !pending.closing {
                    if self.round_waiters.is_empty() {
                        self.shared.wake.wait(&mut pending);
                    } else {
                        // A stalled round: retry it after a pause even if nothing new comes.
                        self.shared.wake.wait_for(&mut pending, STALL_RETRY);
                        break;
                    }
                }
                if self.round.is_empty() {
                    std::mem::swap(&mut self.round, &mut pending.buf);
                } else if !pending.buf.is_empty() {
                    // A stalled round grows: one frame, one header.
                    self.round.extend_from_slice(&pending.buf[FRAME_HEADER..]);
                    pending.buf.clear();
                }
                merge_waiters(&mut self.round_waiters, &mut pending.waiters);
                self.round_fsync |= std::mem::take(&mut pending.fsync);
                pending.closing
            };
            if !self.round_waiters.is_empty() && !self.write_round() {
                let round = std::mem::take(&mut self.round_waiters);
                if closing {
                    // Shutting down with a write that keeps failing: its appends fail.
                    return fail_waiters(round, &stopped());
                }
                if self.shared.failed.load(Ordering::Acquire) {
                    // Offline (this round's fsync or a checkpoint's failed): the round fails.
                    return fail_waiters(round, &offline());
                }
                self.round_waiters = round;
                continue;
            }
            self.maybe_start_writeback();
            self.maybe_rotate();
            if closing && self.shared.pending.lock().waiters.is_empty() {
                return;
            }
        }
    }

    /// Writes and fsyncs the round; completes it. False when it did not become durable.
    fn write_round(&mut self) -> bool {
        let started = std::time::Instant::now();
        seal_frame(&mut self.round, self.file_start + self.file_len);
        if let Err(e) = self.file.write_all_at(&self.round, self.file_len) {
            if !self.shared.stalled.swap(true, Ordering::AcqRel) {
                warn!(error = %e, "journal write failed; retrying, appends refused meanwhile");
            }
            return false;
        }
        if self.round_fsync {
            let fsync_started = std::time::Instant::now();
            let synced = self.file.sync_data();
            self.shared
                .stats
                .fsync
                .record_duration(fsync_started.elapsed());
            if let Err(e) = synced {
                error!(error = %e, "journal fsync failed: the log directory is offline until restart");
                fail(&self.shared, std::mem::take(&mut self.round_waiters));
                return false;
            }
            self.unsynced = false;
        } else {
            self.unsynced = true;
        }
        self.round_fsync = false;
        if self.shared.stalled.swap(false, Ordering::AcqRel) {
            info!("journal writes resumed");
        }
        trace!(
            bytes = self.round.len(),
            logs = self.round_waiters.len(),
            appends = self
                .round_waiters
                .values()
                .map(|w| w.appends)
                .sum::<usize>(),
            micros = started.elapsed().as_micros() as u64,
            "journal round"
        );
        let stats = &self.shared.stats;
        stats.round_bytes.record(self.round.len() as u64);
        stats
            .round_appends
            .record(self.round_waiters.values().map(|w| w.appends as u64).sum());
        self.file_len += self.round.len() as u64;
        self.since_writeback += self.round.len() as u64;
        self.round.clear();
        for (log, waiter) in self.round_waiters.drain() {
            waiter.listener.durable(waiter.end_offset);
            let pending = self.not_written_back.entry(log).or_default();
            pending.bytes += waiter.bytes;
            add_files(&mut pending.files, &waiter.files);
            for file in waiter.files {
                self.dirty
                    .insert(Arc::as_ptr(&file) as *const () as usize, file);
            }
            let end = self.ends.entry(log).or_insert(waiter.end_offset);
            *end = (*end).max(waiter.end_offset);
        }
        true
    }

    fn maybe_start_writeback(&mut self) {
        if self.since_writeback < WRITEBACK_EVERY {
            return;
        }
        self.since_writeback = 0;
        let mut files = Vec::new();
        self.not_written_back.retain(|_, log| {
            let due = log.bytes >= WRITEBACK_LOG_MIN;
            if due {
                files.append(&mut log.files);
            }
            !due
        });
        if !files.is_empty() {
            let _ = self.checkpoints.send(Job::StartWriteback(files));
        }
    }

    /// Rotates when the file is full, or when it grows past what was written ahead and a
    /// spare is ready; asks for a spare when a growing file gets busy.
    fn maybe_rotate(&mut self) {
        let growing = self.file_len > self.capacity;
        let spare_ready = growing && self.shared.spare.lock().is_some();
        if self.file_len >= self.rotate_bytes || spare_ready {
            self.rotate();
        } else if growing && self.file_len >= SPARE_WANTED_AFTER && !self.spare_asked {
            self.spare_asked = true;
            let _ = self.checkpoints.send(Job::PrepareSpare);
        }
    }

    /// Starts a new journal file (the spare, if ready) and hands the finished ones to the
    /// checkpointer.
    fn rotate(&mut self) {
        // A file is left only once all of it is durable: what survives a crash must be a
        // prefix of the journal, and the next file's rounds may be fsynced before this one's.
        if self.unsynced {
            if let Err(e) = self.file.sync_data() {
                error!(error = %e, "journal fsync failed: the log directory is offline until restart");
                fail(&self.shared, HashMap::new());
                return;
            }
            self.unsynced = false;
        }
        let start = self.file_start + self.file_len;
        let (fs, dir) = (&self.shared.fs, &self.shared.dir);
        let path = dir.join(wal_name(start));
        // The slot stays locked until the spare is renamed: a checkpoint that found it empty
        // in between would rename a retired file to the spare's name, and this rename would
        // then give the new journal file's name to that file, not to the one written.
        let mut slot = self.shared.spare.lock();
        let opened = match slot.take() {
            Some(spare) => fs
                .rename(&dir.join(SPARE_FILE), &path)
                .map(|()| (spare.file, spare.written)),
            None => fs.open(&path, OpenMode::CreateTruncate).map(|f| (f, 0)),
        };
        drop(slot);
        let opened = opened.and_then(|opened| fs.sync_dir(dir).map(|()| opened));
        match opened {
            Ok((file, capacity)) => {
                debug!(start, capacity, "journal rotated");
                self.file = file;
                self.file_start = start;
                self.file_len = 0;
                self.capacity = capacity;
                self.spare_asked = false;
                // The checkpoint fsyncs every file written: nothing is left to write back.
                self.not_written_back.clear();
                let job = Job::Checkpoint {
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
fn fail(shared: &Shared, round: Waiters) {
    let pending = {
        let mut pending = shared.pending.lock();
        shared.failed.store(true, Ordering::Release);
        std::mem::take(&mut pending.waiters)
    };
    fail_waiters(round, &offline());
    fail_waiters(pending, &offline());
}

fn run_checkpoints(shared: &Shared, jobs: mpsc::Receiver<Job>) {
    for job in jobs {
        if shared.failed.load(Ordering::Acquire) {
            return;
        }
        let (before, files, ends) = match job {
            Job::PrepareSpare => {
                prepare_spare(shared, None);
                continue;
            }
            Job::StartWriteback(files) => {
                for file in files {
                    // Only a hint: the checkpoint's fsync reports any error that matters.
                    if let Err(e) = file.start_writeback() {
                        debug!(error = %e, "segment writeback not started");
                    }
                }
                continue;
            }
            Job::Checkpoint {
                before,
                files,
                ends,
            } => (before, files, ends),
        };
        if let Err(e) = files.iter().try_for_each(|f| f.sync_data()) {
            error!(error = %e, "segment fsync failed: the log directory is offline until restart");
            fail(shared, HashMap::new());
            return;
        }
        let done = raise_recovery_points(shared, ends)
            .and_then(|()| retire_wal_files_before(shared, before));
        match done {
            Ok(()) => debug!(files = files.len(), before, "checkpoint"),
            // The journal files stay, so nothing is lost; the next checkpoint tries again.
            Err(e) => warn!(error = %e, "checkpoint failed"),
        }
    }
}

/// After a checkpoint: the journal files before `before` are no longer needed. One becomes
/// the spare (unless there is one), the others are deleted.
fn retire_wal_files_before(shared: &Shared, before: u64) -> io::Result<()> {
    let from = shared.deletable_from.load(Ordering::Acquire);
    let (fs, dir) = (&shared.fs, &shared.dir);
    let mut removed = false;
    for name in fs.list_dir(dir)? {
        if !parse_wal_name(&name).is_some_and(|start| (from..before).contains(&start)) {
            continue;
        }
        let path = dir.join(&name);
        if shared.spare.lock().is_none() {
            prepare_spare(shared, Some(&path));
        } else {
            fs.remove_file_if_exists(&path)?;
            removed = true;
        }
    }
    if removed {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

/// Makes `next.spare` from a retired journal file (or, with none, a new one) written with
/// zeros up to `rotate_bytes`, fsynced. On failure (e.g. too little space) it removes what
/// it wrote: rotations then start growing files.
fn prepare_spare(shared: &Shared, retired: Option<&Path>) {
    if shared.spare.lock().is_some() {
        return;
    }
    let (fs, dir) = (&shared.fs, &shared.dir);
    let path = dir.join(SPARE_FILE);
    let prepared = match retired {
        Some(retired) => fs
            .rename(retired, &path)
            .and_then(|()| fs.open(&path, OpenMode::Existing)),
        None => fs.open(&path, OpenMode::CreateTruncate),
    }
    .and_then(|file| {
        let zeros = vec![0u8; 1 << 20];
        let mut at = file.len()?;
        while at < shared.rotate_bytes {
            let n = zeros.len().min((shared.rotate_bytes - at) as usize);
            file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        file.sync_data()?;
        fs.sync_dir(dir)?;
        Ok(Spare { file, written: at })
    });
    match prepared {
        Ok(spare) => *shared.spare.lock() = Some(spare),
        Err(e) => {
            debug!(error = %e, "no spare journal file");
            let _ = fs.remove_file_if_exists(&path);
        }
    }
}

fn raise_recovery_points(
    shared: &Shared,
    ends: impl IntoIterator<Item = (LogId, i64)>,
) -> io::Result<()> {
    let mut points = shared.recovery_points.lock();
    let truncated = shared.truncated.lock();
    let mut changed = false;
    for (log, end) in ends {
        let end = truncated.get(&log).map_or(end, |&cut| end.min(cut));
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

    /// Forwards what it hears to a channel.
    struct Notify(Mutex<mpsc::Sender<io::Result<i64>>>);

    impl DurableListener for Notify {
        fn durable(&self, end_offset: i64) {
            let _ = self.0.lock().send(Ok(end_offset));
        }
        fn failed(&self, error: &io::Error) {
            let _ = self
                .0
                .lock()
                .send(Err(io::Error::new(error.kind(), error.to_string())));
        }
    }

    fn append_and_wait(journal: &Journal, log: LogId, end: i64, data: &[u8]) -> io::Result<()> {
        append_files_and_wait(journal, log, end, data, &SyncHandle::default())
    }

    /// Appends `data`, written to `files`, and waits until the round is durable.
    fn append_files_and_wait(
        journal: &Journal,
        log: LogId,
        end: i64,
        data: &[u8],
        files: &SyncHandle,
    ) -> io::Result<()> {
        let (tx, rx) = mpsc::channel();
        let listener: Arc<dyn DurableListener> = Arc::new(Notify(Mutex::new(tx)));
        journal.append(log, end, data, files, &listener, true);
        assert_eq!(rx.recv().unwrap()?, end);
        Ok(())
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

    /// A segment file stand-in that counts the writebacks started on it.
    #[derive(Debug, Default)]
    struct CountingFile(std::sync::atomic::AtomicUsize);

    impl crate::fs::StorageFile for CountingFile {
        fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            Ok(())
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(0)
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn start_writeback(&self) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn writeback_is_started_only_for_logs_that_wrote_enough_since_their_last() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) =
            Journal::open(RealFs::shared(), dir.path(), JournalOptions::default()).unwrap();
        journal.finish_replay([], false).unwrap();
        let busy = Arc::new(CountingFile::default());
        let quiet = Arc::new(CountingFile::default());
        let busy_files = SyncHandle::new(vec![busy.clone()]);
        let quiet_files = SyncHandle::new(vec![quiet.clone()]);
        let chunk = vec![7u8; 17 << 10];
        // Three times WRITEBACK_EVERY from the busy log (a writeback is due at the first round
        // that reaches it), a few small appends from the quiet one.
        let rounds = 3 * (WRITEBACK_EVERY as usize / chunk.len() + 1);
        for i in 0..rounds {
            let end = i as i64 + 1;
            append_files_and_wait(&journal, log(0), end, &chunk, &busy_files).unwrap();
            if i % 20 == 0 {
                append_files_and_wait(&journal, log(1), end, b"small", &quiet_files).unwrap();
            }
        }
        journal.stop();
        let started = |f: &CountingFile| f.0.load(Ordering::Relaxed);
        assert_eq!(started(&busy), 3, "once per WRITEBACK_EVERY");
        assert_eq!(
            started(&quiet),
            0,
            "below WRITEBACK_LOG_MIN since the start"
        );
    }
}
