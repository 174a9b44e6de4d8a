//! `LogStore`: the Raft metadata log and vote on disk (openraft's `RaftLogStorage`).
//!
//! Files, all in `data/meta/raft/`:
//! - `log`: entries in index order, each framed as `[len: u32 BE][crc32c: u32 BE][entry JSON]`.
//!   Appends go to the end; truncation and purging rewrite the file (temp file, fsync, rename),
//!   which is fine for a metadata log that is purged after every snapshot.
//! - `purged`: JSON of the last purged log id, written (fsync, rename) before the log is
//!   rewritten without the purged entries.
//! - `vote`: JSON of the last vote, fsynced before `save_vote` returns.
//! - `committed`: JSON of the last committed log id. Not fsynced: it only lets a restarted node
//!   re-apply committed entries before it hears from a leader, and a stale value is harmless.
//!
//! Crash behaviour: a torn frame at the end of `log` (short, or a bad CRC) is cut off on open.
//! An entry is reported flushed (`LogFlushed::log_io_completed`) only after the fsync that
//! covers it, so a vote cast or an entry acknowledged to a leader survives `kill -9`. A write
//! the disk refuses (full, failing) is cut back and retried from memory until it succeeds.
//!
//! Concurrency: entries live in memory too (`Arc<RwLock<BTreeMap>>`, shared with the readers
//! openraft's replication tasks use), so reads never touch the disk. Every write runs on one
//! writer thread, in the order openraft issued it, as openraft requires; `append` returns once
//! the entries are readable in memory and the writer thread completes the callback after its
//! fsync, off the Raft runtime's workers.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use super::{Entry, NodeId, TypeConfig};

type Entries = Arc<RwLock<BTreeMap<u64, Entry>>>;

/// What the writer thread does, in order.
enum WriterOp {
    Append {
        frames: Vec<u8>,
        callback: LogFlushed<TypeConfig>,
    },
    /// Rewrites the log with exactly these entries (after a truncate or purge).
    Rewrite {
        purged: Option<LogId<NodeId>>,
        entries: Vec<Entry>,
        done: oneshot::Sender<std::io::Result<()>>,
    },
    Vote {
        vote: Vote<NodeId>,
        done: oneshot::Sender<std::io::Result<()>>,
    },
    Committed(Option<LogId<NodeId>>),
}

/// The metadata log store. Cloning shares the same files and writer thread.
#[derive(Clone)]
pub struct LogStore {
    entries: Entries,
    state: Arc<RwLock<StoreState>>,
    writer: mpsc::Sender<WriterOp>,
}

#[derive(Default)]
struct StoreState {
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

/// Reads entries for openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    entries: Entries,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let last_purged: Option<LogId<NodeId>> = read_json(&dir.join("purged"))?.flatten();
        let vote: Option<Vote<NodeId>> = read_json(&dir.join("vote"))?;
        let committed: Option<LogId<NodeId>> = read_json(&dir.join("committed"))?.flatten();
        let log_path = dir.join("log");
        let mut entries = BTreeMap::new();
        if log_path.exists() {
            let mut bytes = Vec::new();
            File::open(&log_path)?.read_to_end(&mut bytes)?;
            let (decoded, valid_len) = decode_frames(&bytes);
            if valid_len < bytes.len() {
                tracing::warn!(
                    path = %log_path.display(),
                    dropped = bytes.len() - valid_len,
                    "cutting a torn tail off the metadata log"
                );
                let file = OpenOptions::new().write(true).open(&log_path)?;
                file.set_len(valid_len as u64)?;
                file.sync_all()?;
            }
            let purged_index = last_purged.as_ref().map(|l| l.index);
            for entry in decoded {
                if Some(entry.log_id.index) > purged_index {
                    entries.insert(entry.log_id.index, entry);
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: dir.to_path_buf(),
            len: file.metadata()?.len(),
            file,
        };
        std::thread::Builder::new()
            .name("metadata-log".into())
            .spawn(move || writer.run(rx))?;
        Ok(LogStore {
            entries: Arc::new(RwLock::new(entries)),
            state: Arc::new(RwLock::new(StoreState {
                last_purged,
                vote,
                committed,
            })),
            writer: tx,
        })
    }

    // openraft's trait methods return this error type; boxing it here would only move the size.
    #[allow(clippy::result_large_err)]
    fn send(&self, write: WriterOp) -> Result<(), StorageError<NodeId>> {
        self.writer
            .send(write)
            .map_err(|_| write_error(ErrorSubject::Store, "metadata log writer stopped"))
    }

    /// Hands a rewrite to the writer thread and waits for it.
    async fn rewrite(&self, purged: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        let entries: Vec<Entry> = self.entries.read().values().cloned().collect();
        let (done, wait) = oneshot::channel();
        self.send(WriterOp::Rewrite {
            purged,
            entries,
            done,
        })?;
        wait.await
            .map_err(|_| write_error(ErrorSubject::Logs, "metadata log writer stopped"))?
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(self
            .entries
            .read()
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        LogReader {
            entries: self.entries.clone(),
        }
        .try_get_log_entries(range)
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id = self.state.read().last_purged;
        let last = self.entries.read().values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            entries: self.entries.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let (done, wait) = oneshot::channel();
        self.send(WriterOp::Vote { vote: *vote, done })?;
        wait.await
            .map_err(|_| write_error(ErrorSubject::Vote, "metadata log writer stopped"))?
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.state.write().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.state.read().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.state.write().committed = committed;
        self.send(WriterOp::Committed(committed))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.state.read().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut frames = Vec::new();
        {
            let mut map = self.entries.write();
            for entry in entries {
                encode_frame(&entry, &mut frames).map_err(|e| StorageIOError::write_logs(&e))?;
                map.insert(entry.get_log_id().index, entry);
            }
        }
        self.send(WriterOp::Append { frames, callback })
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.entries.write().split_off(&log_id.index);
        let purged = self.state.read().last_purged;
        self.rewrite(purged).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        {
            let mut state = self.state.write();
            if state.last_purged.is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            state.last_purged = Some(log_id);
        }
        {
            let mut map = self.entries.write();
            let keep = map.split_off(&(log_id.index + 1));
            *map = keep;
        }
        self.rewrite(Some(log_id)).await
    }
}

/// Owns the files; runs on its own thread.
struct Writer {
    dir: PathBuf,
    file: File,
    /// Length of `log` up to the last durable append.
    len: u64,
}

/// Runs `op` until it succeeds. A write the disk refuses (full, or failing) is retried from
/// memory after a pause instead of reported: openraft treats a storage error as fatal, and a
/// metadata write that waits is a metadata request that times out (it commits, whole, once
/// the disk takes it), while the data path keeps going.
fn until_written(what: &str, mut op: impl FnMut() -> std::io::Result<()>) -> std::io::Result<()> {
    let mut pause = std::time::Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        match op() {
            Ok(()) => return Ok(()),
            Err(e) => {
                if failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, "writing the metadata {what} failed; retrying");
                }
                failures += 1;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<WriterOp>) {
        while let Ok(write) = rx.recv() {
            match write {
                WriterOp::Append { frames, callback } => {
                    let result = until_written("log", || {
                        // Cut what a failed attempt left, then write it all again: after a
                        // failed fsync the page cache cannot be trusted to hold it.
                        self.file.set_len(self.len)?;
                        self.file.write_all(&frames)?;
                        self.file.sync_data()
                    });
                    if result.is_ok() {
                        self.len += frames.len() as u64;
                    }
                    callback.log_io_completed(result);
                }
                WriterOp::Rewrite {
                    purged,
                    entries,
                    done,
                } => {
                    let result = until_written("log", || self.rewrite(purged, &entries));
                    let _ = done.send(result);
                }
                WriterOp::Vote { vote, done } => {
                    let path = self.dir.join("vote");
                    let _ = done.send(until_written("vote", || write_json(&path, &vote, true)));
                }
                WriterOp::Committed(committed) => {
                    if let Err(e) = write_json(&self.dir.join("committed"), &committed, false) {
                        tracing::warn!(error = %e, "saving the committed metadata log id");
                    }
                }
            }
        }
    }

    fn rewrite(&mut self, purged: Option<LogId<NodeId>>, entries: &[Entry]) -> std::io::Result<()> {
        // The purge point first: a crash between the two files leaves entries that open()
        // then drops, never a log whose start is unaccounted for.
        write_json(&self.dir.join("purged"), &purged, true)?;
        let mut frames = Vec::new();
        for entry in entries {
            encode_frame(entry, &mut frames)?;
        }
        let path = self.dir.join("log");
        write_atomically(&path, &frames, true)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.len = frames.len() as u64;
        Ok(())
    }
}

fn encode_frame(entry: &Entry, out: &mut Vec<u8>) -> std::io::Result<()> {
    let json = serde_json::to_vec(entry)?;
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// Decodes whole, intact frames; returns them and the length of the valid prefix.
fn decode_frames(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().unwrap());
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(body) else {
            break;
        };
        entries.push(entry);
        pos += 8 + len;
    }
    (entries, pos)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T, durable: bool) -> std::io::Result<()> {
    write_atomically(path, &serde_json::to_vec(value)?, durable)
}

/// Temp file, (fsync), rename, (fsync of the directory): the old or the new content, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

fn write_error(subject: ErrorSubject<NodeId>, message: &str) -> StorageError<NodeId> {
    StorageError::IO {
        source: StorageIOError::new(
            subject,
            ErrorVerb::Write,
            AnyError::error(message.to_string()),
        ),
    }
}
