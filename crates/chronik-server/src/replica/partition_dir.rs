//! Partition directories on disk and which topic incarnation owns each, as Kafka does it.
//!
//! Layout: `<data>/<topic>-<partition>/` holds the partition's log and `partition.metadata`:
//! ```text
//! version: 0
//! topic_id: <topic uuid>
//! ```
//! written crash-safely (data directory fsynced too) before the log is first opened, so every
//! directory names the topic incarnation it belongs to. A directory left by another incarnation
//! (a deleted topic of the same name whose removal did not finish) is never reopened: it is moved
//! aside and the partition starts empty.
//!
//! Deleting renames `<topic>-<partition>` to `<topic>-<partition>.<topic id, simple>-delete` (one
//! rename, parent fsynced: from then on the name is free) and queues the directory on
//! `DirRemover`, a background thread that removes it and retries until it can. Directories still
//! named `*-delete` at startup are queued again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use tracing::{debug, info, warn};
use uuid::Uuid;

use chronik_storage::fs::{Fs, RealFs};

const METADATA_FILE: &str = "partition.metadata";
const DELETE_SUFFIX: &str = "-delete";
/// How long a failed removal waits before the next attempt.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// The topic id recorded in `dir`, None when the directory or its file does not exist.
fn recorded_topic_id(dir: &Path) -> io::Result<Option<Uuid>> {
    let path = dir.join(METADATA_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
        .map(Some)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no valid topic_id in {text:?}", path.display()),
            )
        })
}

/// Makes `dir` the directory of topic `topic_id`'s partition before its log is opened: a
/// directory of another incarnation is moved aside (returned, for removal) and the directory is
/// created if missing; its `partition.metadata` then names `topic_id`. A directory without the
/// file (written before the file existed) is adopted.
pub fn claim(dir: &Path, topic_id: Uuid) -> io::Result<Option<PathBuf>> {
    let moved = match recorded_topic_id(dir)? {
        Some(id) if id == topic_id => return Ok(None),
        Some(older) => {
            warn!(dir = %dir.display(), %older, current = %topic_id,
                "partition directory belongs to an earlier topic of this name; moving it aside");
            Some(move_aside(dir, older)?)
        }
        None => None,
    };
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        sync_parent(dir)?;
    }
    let contents = format!("version: 0\ntopic_id: {}\n", topic_id.hyphenated());
    RealFs.write_atomic(&dir.join(METADATA_FILE), contents.as_bytes())?;
    Ok(moved)
}

/// Moves topic `topic_id`'s partition directory aside for deletion, returning its new path.
/// Leaves alone a directory that is missing or that a newer incarnation already claimed.
pub fn release(dir: &Path, topic_id: Uuid) -> io::Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    match recorded_topic_id(dir) {
        Ok(Some(id)) if id != topic_id => Ok(None),
        // Ours, adopted from before `partition.metadata`, or unreadable: the topic is going.
        _ => move_aside(dir, topic_id).map(Some),
    }
}

/// Renames `dir` to `<name>.<topic id>-delete` and makes the rename durable.
fn move_aside(dir: &Path, topic_id: Uuid) -> io::Result<PathBuf> {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}{DELETE_SUFFIX}", topic_id.simple()));
    let target = dir.with_file_name(name);
    // A leftover of the same incarnation from an earlier attempt is garbage too (the remover
    // may be deleting it right now).
    match fs::remove_dir_all(&target) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::rename(dir, &target)?;
    sync_parent(dir)?;
    Ok(target)
}

/// Directories under `data_dir` moved aside for deletion and not removed yet.
pub fn leftovers(data_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(DELETE_SUFFIX)
            && entry.file_type()?.is_dir()
        {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Removes directories in the background, retrying each until it is gone. Whatever is still
/// queued when the remover is dropped stays `*-delete` on disk and is queued again at startup.
pub struct DirRemover {
    queue: Sender<PathBuf>,
}

impl DirRemover {
    pub fn start() -> DirRemover {
        let (queue, pending) = mpsc::channel();
        std::thread::Builder::new()
            .name("chronik-dir-remover".into())
            .spawn(move || remove_loop(pending))
            .expect("spawning the directory remover thread");
        DirRemover { queue }
    }

    pub fn remove(&self, dir: PathBuf) {
        // The thread only ends once every sender is gone, so this cannot fail.
        let _ = self.queue.send(dir);
    }
}

fn remove_loop(queue: Receiver<PathBuf>) {
    // (directory, failed attempts so far)
    let mut pending: Vec<(PathBuf, u32)> = Vec::new();
    loop {
        let next = if pending.is_empty() {
            queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            queue.recv_timeout(RETRY_INTERVAL)
        };
        let last_round = match next {
            Ok(dir) => {
                pending.push((dir, 0));
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        pending.retain_mut(|(dir, failures)| !try_remove(dir, failures));
        if last_round {
            return;
        }
    }
}

/// One attempt; true when the directory is gone. Warns on the first failure only, so a stuck
/// removal is visible without flooding the log.
fn try_remove(dir: &Path, failures: &mut u32) -> bool {
    match fs::remove_dir_all(dir) {
        Ok(()) => {
            info!(dir = %dir.display(), "removed deleted partition directory");
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            if *failures == 0 {
                warn!(dir = %dir.display(), error = %e,
                    "removing deleted partition directory failed; retrying in the background");
            } else {
                debug!(dir = %dir.display(), error = %e, failures = *failures, "removal retry failed");
            }
            *failures += 1;
            false
        }
    }
}

/// Fsyncs the directory holding `path`, making a creation or rename there durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => RealFs.sync_dir(parent),
        _ => RealFs.sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_writes_the_id_and_moves_an_older_incarnation_aside() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("t-0");
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(claim(&dir, old).unwrap(), None);
        assert_eq!(recorded_topic_id(&dir).unwrap(), Some(old));
        fs::write(dir.join("00000000000000000000.log"), b"old data").unwrap();
        assert_eq!(claim(&dir, old).unwrap(), None, "same incarnation: kept");
        assert!(dir.join("00000000000000000000.log").exists());

        let moved = claim(&dir, new)
            .unwrap()
            .expect("older incarnation moved aside");
        assert_eq!(
            moved.file_name().unwrap().to_str().unwrap(),
            format!("t-0.{}-delete", old.simple())
        );
        assert!(moved.join("00000000000000000000.log").exists());
        assert!(!dir.join("00000000000000000000.log").exists());
        assert_eq!(recorded_topic_id(&dir).unwrap(), Some(new));
        assert_eq!(leftovers(data.path()).unwrap(), vec![moved]);
    }

    #[test]
    fn claim_adopts_a_directory_without_metadata_and_refuses_garbage() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("t-0");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("00000000000000000000.log"), b"data").unwrap();
        let id = Uuid::new_v4();
        assert_eq!(claim(&dir, id).unwrap(), None);
        assert!(dir.join("00000000000000000000.log").exists());
        assert_eq!(recorded_topic_id(&dir).unwrap(), Some(id));

        fs::write(dir.join(METADATA_FILE), "garbage").unwrap();
        assert!(claim(&dir, id).is_err());
    }

    #[test]
    fn release_moves_only_its_own_incarnation() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("t-1");
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(release(&dir, old).unwrap(), None, "missing: nothing to do");
        claim(&dir, new).unwrap();
        assert_eq!(release(&dir, old).unwrap(), None, "a newer topic owns it");
        assert!(dir.exists());
        let moved = release(&dir, new).unwrap().unwrap();
        assert!(!dir.exists());
        assert!(moved.exists());
    }

    #[test]
    fn the_remover_deletes_queued_directories() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("t-0.x-delete");
        fs::create_dir_all(dir.join("inner")).unwrap();
        let remover = DirRemover::start();
        remover.remove(dir.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dir.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!dir.exists());
    }
}
