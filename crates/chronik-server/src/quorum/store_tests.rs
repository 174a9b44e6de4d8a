//! openraft's storage conformance suite against `LogStore` + `StateMachine`, plus what the
//! suite does not check: that the log, vote and snapshot survive a reopen and a torn tail.

use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, StorageError, Vote,
};
use tokio::sync::watch;

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::{Entry, NodeId, TypeConfig};
use crate::metadata::records::{MetadataBatch, MetadataRecord};
use crate::metadata::MetadataImage;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path()).unwrap();
        let (publish, _) = watch::channel(Arc::new(MetadataImage::default()));
        let sm = StateMachine::open(dir.path(), publish).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, cluster_id: &str) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(MetadataBatch::new(vec![MetadataRecord::ClusterId {
            cluster_id: cluster_id.into(),
        }])),
    }
}

/// Appends and waits for the flush callback, as openraft does.
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    log.blocking_append(entries).await.unwrap();
}

#[tokio::test]
async fn log_vote_and_purge_survive_reopen_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path()).unwrap();
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        append(&mut log, (1..=5).map(|i| entry(1, i, "a")).collect()).await;
        log.truncate(log_id(1, 5)).await.unwrap();
        log.purge(log_id(1, 1)).await.unwrap();
        append(&mut log, vec![entry(2, 5, "b")]).await;
    }
    let log_path = dir.path().join("log");
    let mut bytes = std::fs::read(&log_path).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 9, 1, 2]);
    std::fs::write(&log_path, &bytes).unwrap();

    let mut log = LogStore::open(dir.path()).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
    assert_eq!(state.last_log_id, Some(log_id(2, 5)));
    let entries = log.try_get_log_entries(0..10).await.unwrap();
    let ids: Vec<_> = entries.iter().map(|e| e.log_id).collect();
    assert_eq!(
        ids,
        vec![log_id(1, 2), log_id(1, 3), log_id(1, 4), log_id(2, 5)]
    );
    assert_eq!(
        std::fs::metadata(&log_path).unwrap().len() as usize,
        bytes.len() - 6
    );
}

#[tokio::test]
async fn the_image_is_published_and_restored_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (publish, mut images) = watch::channel(Arc::new(MetadataImage::default()));
    let mut sm = StateMachine::open(dir.path(), publish).unwrap();
    sm.apply(vec![entry(1, 1, "x"), entry(1, 2, "y")])
        .await
        .unwrap();
    let image = images.borrow_and_update().clone();
    assert_eq!((image.applied_index, image.cluster_id.as_str()), (2, "y"));
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    drop(sm);

    let (publish, images) = watch::channel(Arc::new(MetadataImage::default()));
    let mut sm = StateMachine::open(dir.path(), publish).unwrap();
    assert_eq!(images.borrow().cluster_id, "y");
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 2)));
    assert!(sm.get_current_snapshot().await.unwrap().is_some());
}
