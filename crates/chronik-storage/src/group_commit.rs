//! Group-commit fsync shared by all partitions: one dedicated OS thread.
//!
//! Callers hand over a [`SyncHandle`] (the files holding their unsynced bytes) and either a
//! completion callback (`sync_then`, run on the fsync thread: keep it short) or get a oneshot
//! receiver (`sync`). The thread takes every request queued so far, fsyncs each distinct
//! file once (deduplicated by `Arc` pointer), then completes all of those requests.
//! Requests that arrive while an fsync runs form the next round, so the number of
//! fsyncs follows the disk's speed, not the request rate.
//!
//! The thread exits when the `GroupCommit` is dropped (its channel closes); queued
//! requests are still completed first.

use std::collections::HashMap;
use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::trace;

use crate::fs::FileRef;

/// The files that hold unsynced bytes of one append. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SyncHandle {
    files: Arc<[FileRef]>,
}

impl SyncHandle {
    pub fn new(files: Vec<FileRef>) -> SyncHandle {
        SyncHandle {
            files: files.into(),
        }
    }

    pub fn files(&self) -> &[FileRef] {
        &self.files
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Fsyncs the files on the calling thread (for callers without a `GroupCommit`).
    pub fn sync_now(&self) -> io::Result<()> {
        for file in self.files.iter() {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// What to do once a request's files are synced (or failed to).
type Completion = Box<dyn FnOnce(io::Result<()>) + Send>;
type Request = (SyncHandle, Completion);

/// The group-commit thread. Share it as `Arc<GroupCommit>`.
pub struct GroupCommit {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the fsync thread.
    pub fn start() -> Arc<GroupCommit> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("chronik-group-commit".into())
            .spawn(move || run(rx))
            .expect("spawn group-commit thread");
        Arc::new(GroupCommit {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `handle` for the next fsync round. The receiver completes once all its
    /// files are synced (or with the error of the first that failed).
    pub fn sync(&self, handle: SyncHandle) -> oneshot::Receiver<io::Result<()>> {
        let (done, rx) = oneshot::channel();
        self.sync_then(handle, move |result| {
            let _ = done.send(result);
        });
        rx
    }

    /// Queues `handle` for the next fsync round and runs `done` with the outcome on the
    /// fsync thread (or right here for an empty handle or a stopped thread).
    pub fn sync_then(
        &self,
        handle: SyncHandle,
        done: impl FnOnce(io::Result<()>) + Send + 'static,
    ) {
        if handle.is_empty() {
            return done(Ok(()));
        }
        let tx = self.tx.lock().clone();
        match tx {
            Some(tx) => {
                if let Err(mpsc::SendError((_, done))) = tx.send((handle, Box::new(done))) {
                    done(Err(stopped()));
                }
            }
            None => done(Err(stopped())),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.tx.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("group commit thread stopped")
}

/// Identity of a shared file (its allocation; the vtable half of the pointer is dropped).
fn file_id(file: &FileRef) -> *const () {
    Arc::as_ptr(file).cast()
}

fn run(rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        round.extend(rx.try_iter());
        // Distinct files of this round, with the outcome of their fsync.
        let mut results: HashMap<*const (), Option<(io::ErrorKind, String)>> = HashMap::new();
        for (handle, _) in &round {
            for file in handle.files.iter() {
                results
                    .entry(file_id(file))
                    .or_insert_with(|| file.sync_data().err().map(|e| (e.kind(), e.to_string())));
            }
        }
        trace!(
            requests = round.len(),
            files = results.len(),
            "group commit round"
        );
        for (handle, done) in round {
            let outcome = handle
                .files
                .iter()
                .find_map(|f| results[&file_id(f)].clone())
                .map_or(Ok(()), |(kind, msg)| Err(io::Error::new(kind, msg)));
            done(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{OpenMode, RealFs};

    #[test]
    fn many_concurrent_syncs_complete() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        let files: Vec<FileRef> = (0..4)
            .map(|i| {
                fs.open(&dir.path().join(format!("f{i}")), OpenMode::CreateOrKeep)
                    .unwrap()
            })
            .collect();
        let gc = GroupCommit::start();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let gc = gc.clone();
                let files = files.clone();
                std::thread::spawn(move || {
                    let receivers: Vec<_> = (0..50)
                        .map(|i| {
                            let h = SyncHandle::new(vec![
                                files[(t + i) % 4].clone(),
                                files[(t + i + 1) % 4].clone(),
                            ]);
                            gc.sync(h)
                        })
                        .collect();
                    for rx in receivers {
                        rx.blocking_recv().unwrap().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(gc
            .sync(SyncHandle::default())
            .blocking_recv()
            .unwrap()
            .is_ok());
        drop(gc); // joins the thread
    }
}
