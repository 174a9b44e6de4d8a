//! `StateMachine`: openraft's `RaftStateMachine` whose state is the `MetadataImage`. Applying
//! committed entries folds their batches into a new image and publishes it on a `watch`; a
//! snapshot is the serialized image.
//!
//! The image lives in memory and is rebuilt on restart from the last snapshot plus the log
//! entries after it (openraft re-applies up to the saved committed id). Only snapshots are
//! persisted: `data/meta/raft/snapshot`, JSON `{meta, image}`, written through a temp file,
//! fsync and rename before `build_snapshot`/`install_snapshot` return.
//!
//! Concurrency: openraft calls the state machine from one task; the snapshot builder works on
//! its own copy of the image (an `Arc`), so building never blocks applying.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::write_atomically;
use super::{Entry, Node, NodeId, TypeConfig};
use crate::metadata::MetadataImage;

type Membership = StoredMembership<NodeId, Node>;
type CurrentSnapshot = Arc<Mutex<Option<(SnapshotMeta<NodeId, Node>, Vec<u8>)>>>;

/// The snapshot file.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    image: MetadataImage,
}

pub struct StateMachine {
    dir: PathBuf,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
    /// The snapshot last built or installed, as sent to followers; shared with builders.
    current: CurrentSnapshot,
    publish: watch::Sender<Arc<MetadataImage>>,
}

impl StateMachine {
    /// Loads the last snapshot in `dir`, if any, and publishes its image on `publish`.
    pub fn open(
        dir: &Path,
        publish: watch::Sender<Arc<MetadataImage>>,
    ) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let mut sm = StateMachine {
            dir: dir.to_path_buf(),
            image: Arc::new(MetadataImage::default()),
            last_applied: None,
            membership: Membership::default(),
            current: CurrentSnapshot::default(),
            publish,
        };
        match std::fs::read(dir.join("snapshot")) {
            Ok(bytes) => {
                let stored: StoredSnapshot = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("snapshot: {e}"))
                })?;
                sm.load(stored)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sm.publish.send_replace(sm.image.clone());
        Ok(sm)
    }

    fn load(&mut self, stored: StoredSnapshot) -> std::io::Result<()> {
        let data = serde_json::to_vec(&stored.image)?;
        self.image = Arc::new(stored.image);
        self.last_applied = stored.meta.last_log_id;
        self.membership = stored.meta.last_membership.clone();
        *self.current.lock() = Some((stored.meta, data));
        Ok(())
    }
}

/// Builds a snapshot from the image as it was when the builder was made.
pub struct SnapshotBuilder {
    dir: PathBuf,
    current: CurrentSnapshot,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: Membership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snapshot_id = match &self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, rand::random::<u32>()),
            None => format!("empty-{}", rand::random::<u32>()),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let data =
            serde_json::to_vec(&*self.image).map_err(|e| StorageIOError::read_state_machine(&e))?;
        save(&self.dir, &meta, &self.image)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        *self.current.lock() = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

fn save(
    dir: &Path,
    meta: &SnapshotMeta<NodeId, Node>,
    image: &MetadataImage,
) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Ref<'a> {
        meta: &'a SnapshotMeta<NodeId, Node>,
        image: &'a MetadataImage,
    }
    let bytes = serde_json::to_vec(&Ref { meta, image })?;
    write_atomically(&dir.join("snapshot"), &bytes, true)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, Membership), StorageError<NodeId>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut image = (*self.image).clone();
        let mut responses = Vec::new();
        for entry in entries {
            match entry.payload {
                EntryPayload::Normal(batch) => image = image.apply(entry.log_id.index, &batch),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
                EntryPayload::Blank => {}
            }
            image.applied_index = entry.log_id.index;
            self.last_applied = Some(entry.log_id);
            responses.push(());
        }
        if !responses.is_empty() {
            self.image = Arc::new(image);
            self.publish.send_replace(self.image.clone());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            dir: self.dir.clone(),
            current: self.current.clone(),
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let image: MetadataImage = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        save(&self.dir, meta, &image)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *self.current.lock() = Some((meta.clone(), data));
        self.publish.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.current.lock().as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}
