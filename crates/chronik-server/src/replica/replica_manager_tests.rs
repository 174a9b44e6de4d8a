//! `ReplicaManager` on disk: re-created topics start empty, deleted directories go away, and a
//! partition that cannot be opened goes offline without taking the others with it.

use std::collections::BTreeMap;

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::config::FlushPolicy;

fn manager(dir: &Path) -> ReplicaManager {
    let replicas =
        ReplicaManager::new(dir.to_path_buf(), LogDefaults::default(), FlushPolicy::Os).unwrap();
    replicas.finish_recovery().unwrap();
    replicas
}

/// Broker id of this test's replica manager.
const ME: i32 = 1;

/// A topic whose every partition lives on broker `ME` alone.
fn topic(name: &str, partitions: i32) -> TopicImage {
    TopicImage {
        name: name.into(),
        id: Uuid::new_v4(),
        internal: false,
        configs: BTreeMap::new(),
        partitions: (0..partitions)
            .map(|_| crate::metadata::records::PartitionState::new(vec![ME]))
            .collect(),
    }
}

/// One batch of `count` small records.
fn batch(count: i64) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|offset| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: now_ms(),
            key: None,
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.freeze()
}

fn wait_until_gone(dirs: &[PathBuf]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dirs.iter().any(|d| d.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(dirs.iter().all(|d| !d.exists()), "left on disk: {dirs:?}");
}

#[test]
fn a_recreated_topic_starts_empty_even_if_the_old_directory_survived() {
    let data = tempfile::tempdir().unwrap();
    let old = topic("t", 1);
    let replicas = manager(data.path());
    replicas.reconcile_topic(&old, ME).unwrap();
    replicas.append("t", 0, &batch(5), 1).unwrap();
    assert_eq!(replicas.partition("t", 0).unwrap().log_end_offset(), 5);
    replicas.shutdown();
    drop(replicas);

    // The old topic's deletion never reached the disk (a crash before the rename): the
    // directory is still `t-0`, holding the old topic id.
    let new = topic("t", 1);
    let replicas = manager(data.path());
    replicas.reconcile_topic(&new, ME).unwrap();
    let partition = replicas.partition("t", 0).unwrap();
    assert_eq!(partition.topic_id, new.id);
    assert_eq!(partition.log_end_offset(), 0);
    wait_until_gone(&[data.path().join(format!("t-0.{}-delete", old.id.simple()))]);
}

#[test]
fn a_stale_incarnation_still_hosted_is_replaced() {
    let data = tempfile::tempdir().unwrap();
    let replicas = manager(data.path());
    replicas.reconcile_topic(&topic("t", 1), ME).unwrap();
    replicas.append("t", 0, &batch(3), 1).unwrap();
    // Re-created before the deletion of the first one reached the replica manager.
    let new = topic("t", 1);
    replicas.reconcile_topic(&new, ME).unwrap();
    let partition = replicas.partition("t", 0).unwrap();
    assert_eq!(partition.topic_id, new.id);
    assert_eq!(partition.log_end_offset(), 0);
}

#[test]
fn remove_topic_frees_the_name_at_once_and_removes_the_data() {
    let data = tempfile::tempdir().unwrap();
    let doomed = topic("t", 2);
    let replicas = manager(data.path());
    replicas.reconcile_topic(&doomed, ME).unwrap();
    replicas.append("t", 1, &batch(2), 1).unwrap();
    replicas.remove_topic(&doomed);
    assert!(!data.path().join("t-0").exists());
    assert!(!data.path().join("t-1").exists());
    assert!(replicas.partition("t", 1).is_none());
    wait_until_gone(&[
        data.path()
            .join(format!("t-0.{}-delete", doomed.id.simple())),
        data.path()
            .join(format!("t-1.{}-delete", doomed.id.simple())),
    ]);

    // Removing an old incarnation leaves the new one alone.
    let new = topic("t", 1);
    replicas.reconcile_topic(&new, ME).unwrap();
    replicas.remove_topic(&doomed);
    assert!(replicas.partition("t", 0).is_some());
    assert!(data.path().join("t-0").exists());
}

#[test]
fn a_partition_reassigned_away_is_no_longer_hosted_and_its_data_goes() {
    let data = tempfile::tempdir().unwrap();
    let mut t = topic("t", 2);
    let replicas = manager(data.path());
    replicas.reconcile_topic(&t, ME).unwrap();
    replicas.append("t", 0, &batch(3), 1).unwrap();
    let hosted = replicas.partition("t", 0).unwrap();
    assert!(hosted.is_leader());
    // Partition 0 moved to broker 2: reconciling stops hosting it; partition 1 stays.
    t.partitions[0] = crate::metadata::records::PartitionState {
        leader_epoch: 1,
        partition_epoch: 1,
        ..crate::metadata::records::PartitionState::new(vec![2])
    };
    replicas.reconcile_topic(&t, ME).unwrap();
    assert!(replicas.partition("t", 0).is_none());
    assert!(
        !hosted.is_leader(),
        "waiting producers learn it stopped leading"
    );
    assert!(replicas.partition("t", 1).is_some());
    assert!(!data.path().join("t-0").exists());
    assert!(data.path().join("t-1").exists());
    wait_until_gone(&[data.path().join(format!("t-0.{}-delete", t.id.simple()))]);
    // Moved back here, it starts empty; stop_replica removes it again.
    t.partitions[0] = crate::metadata::records::PartitionState::new(vec![ME]);
    replicas.reconcile_topic(&t, ME).unwrap();
    assert_eq!(replicas.partition("t", 0).unwrap().log_end_offset(), 0);
    replicas.stop_replica(&t, 0);
    assert!(replicas.partition("t", 0).is_none());
    assert!(!data.path().join("t-0").exists());
}

#[test]
fn leftover_deletions_are_removed_at_startup() {
    let data = tempfile::tempdir().unwrap();
    let leftover = data
        .path()
        .join("t-0.0123456789abcdef0123456789abcdef-delete");
    std::fs::create_dir_all(leftover.join("nested")).unwrap();
    std::fs::write(leftover.join("00000000000000000000.log"), b"x").unwrap();
    let _replicas = manager(data.path());
    wait_until_gone(&[leftover]);
    assert!(partition_dir::leftovers(data.path()).unwrap().is_empty());
}

#[tokio::test]
async fn a_partition_that_cannot_be_opened_is_offline_and_the_others_serve() {
    let data = tempfile::tempdir().unwrap();
    let t = topic("t", 2);
    let replicas = manager(data.path());
    replicas.reconcile_topic(&t, ME).unwrap();
    replicas.append("t", 0, &batch(2), 1).unwrap();
    replicas.append("t", 1, &batch(2), 1).unwrap();
    replicas.shutdown();
    drop(replicas);
    std::fs::write(data.path().join("t-1/leader-epoch-checkpoint"), "garbage\n").unwrap();

    let replicas = manager(data.path());
    let error = replicas.reconcile_topic(&t, ME).unwrap_err();
    assert_eq!(error.code(), ResponseError::KafkaStorageError.code());
    assert!(replicas.partition("t", 0).is_some());
    let offline = replicas.offline_partition("t", 1).expect("offline");
    assert_eq!(offline.topic_id, t.id);
    let code = |partition| {
        replicas
            .online_partition("t", partition)
            .err()
            .map(|e| e.code())
    };
    assert_eq!(code(1), Some(ResponseError::KafkaStorageError.code()));
    assert_eq!(code(2), Some(ResponseError::UnknownTopicOrPartition.code()));
    // Reconciling again (a config change) neither retries nor fails the online partition.
    assert!(replicas.reconcile_topic(&t, ME).is_ok());
    assert!(replicas.partition("t", 1).is_none());

    let requests: Vec<FetchPartition> = (0..2)
        .map(|partition| FetchPartition {
            topic: "t".into(),
            partition,
            offset: 0,
            max_bytes: 1 << 20,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        })
        .collect();
    let fetched = replicas
        .fetch(
            FetchFrom::Consumer,
            &requests,
            1 << 20,
            1,
            Duration::from_millis(10),
        )
        .await;
    assert_eq!(fetched[0].error_code, 0);
    assert!(!fetched[0].records.is_empty());
    assert_eq!(
        fetched[1].error_code,
        ResponseError::KafkaStorageError.code()
    );

    // Deleting the topic clears the offline entry and moves the bad directory aside too.
    replicas.remove_topic(&t);
    assert!(replicas.offline_partition("t", 1).is_none());
    assert!(!data.path().join("t-1").exists());
}

/// A crash that lost the segments' unsynced bytes (simulated by cutting the segment file):
/// the journal brings back every acknowledged batch, also for a partition the restored
/// metadata did not name yet when recovery finished (opened later, as the image catches up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journaled_batches_come_back_even_for_a_partition_opened_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let t = topic("t", 1);
    {
        let replicas = ReplicaManager::new(
            dir.path().to_path_buf(),
            LogDefaults::default(),
            FlushPolicy::GroupCommit,
        )
        .unwrap();
        replicas.reconcile_topic(&t, ME).unwrap();
        replicas.finish_recovery().unwrap();
        let mut waits = Vec::new();
        for _ in 0..10 {
            let (partition, appended) = replicas.append("t", 0, &batch(3), 1).unwrap();
            waits.push((partition, appended.end_offset));
        }
        let codes = replicas
            .wait_for_acks(&waits, 1, Duration::from_secs(10))
            .await;
        assert!(codes.iter().all(|&c| c == 0), "{codes:?}");
        // A crash: no clean shutdown, and the page cache lost the segment's bytes.
        drop(waits);
    }
    let segment = dir.path().join("t-0").join(format!("{:020}.log", 0));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(0)
        .unwrap();

    let replicas = ReplicaManager::new(
        dir.path().to_path_buf(),
        LogDefaults::default(),
        FlushPolicy::GroupCommit,
    )
    .unwrap();
    replicas.finish_recovery().unwrap(); // before the image names the topic
    replicas.reconcile_topic(&t, ME).unwrap();
    let partition = replicas.partition("t", 0).unwrap();
    assert_eq!(partition.log_end_offset(), 30);
    assert_eq!(partition.high_watermark(), 30);
    let read = partition.read(0, 1 << 20, true).unwrap();
    let records: i64 = chronik_storage::batches(&read.bytes)
        .map(|b| b.unwrap().0.last_offset_delta as i64 + 1)
        .sum();
    assert_eq!(records, 30, "every acknowledged record is back");
}

#[test]
fn the_status_reports_offsets_and_counts_leader_changes() {
    let data = tempfile::tempdir().unwrap();
    let replicas = manager(data.path());
    let mut t = topic("t", 2);
    replicas.reconcile_topic(&t, ME).unwrap();
    replicas.append("t", 1, &batch(3), 1).unwrap();
    // The same image again changes nothing; a new leader epoch on partition 0 is an election.
    replicas.reconcile_topic(&t, ME).unwrap();
    t.partitions[0].leader_epoch += 1;
    t.partitions[0].partition_epoch += 1;
    replicas.reconcile_topic(&t, ME).unwrap();
    let status = replicas.status(ME);
    assert_eq!(status.broker, ME);
    let c = &status.counters;
    assert_eq!((c.leader_elections, c.became_leader), (1, 3));
    assert_eq!((c.isr_shrinks, c.isr_expands, c.truncations), (0, 0, 0));
    let p: Vec<_> = status
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition,
                p.role,
                p.leader_epoch,
                p.high_watermark,
                p.log_end_offset,
            )
        })
        .collect();
    use crate::replica::ReplicaRole::Leader;
    assert_eq!(p, vec![(0, Leader, 1, 0, 0), (1, Leader, 0, 3, 3)]);
    assert_eq!(status.partitions[1].replica_ends, vec![(ME, 3)]);
}

#[test]
fn a_restarted_replica_starts_from_its_checkpointed_high_watermark_not_its_log_end() {
    let data = tempfile::tempdir().unwrap();
    // Broker 2 leads; this broker (ME) follows and holds ten records of which the ISR has
    // committed four.
    let mut t = topic("t", 1);
    t.partitions[0].replicas = vec![2, ME];
    t.partitions[0].isr = vec![2, ME];
    t.partitions[0].leader = 2;
    {
        let replicas = manager(data.path());
        replicas.reconcile_topic(&t, ME).unwrap();
        let partition = replicas.partition("t", 0).unwrap();
        partition.append_replicated(&batch(10)).unwrap();
        partition.follow_high_watermark(4);
        replicas.checkpoint_high_watermarks().unwrap();
        replicas.shutdown();
    }
    let replicas = manager(data.path());
    replicas.reconcile_topic(&t, ME).unwrap();
    let partition = replicas.partition("t", 0).unwrap();
    assert_eq!(partition.log_end_offset(), 10);
    assert_eq!(partition.high_watermark(), 4, "not the log end");
    // Its leader tells it more; the checkpoint follows.
    partition.follow_high_watermark(7);
    assert_eq!(partition.high_watermark(), 7);
    // Leading alone (ISR of one), its own log end is committed at once.
    t.partitions[0].leader = ME;
    t.partitions[0].leader_epoch += 1;
    t.partitions[0].isr = vec![ME];
    replicas.reconcile_topic(&t, ME).unwrap();
    assert_eq!(partition.high_watermark(), 10);
    replicas.checkpoint_high_watermarks().unwrap();
    let written = std::fs::read_to_string(data.path().join(hw_checkpoint::FILE_NAME)).unwrap();
    assert_eq!(written, "0\n1\nt 0 10\n");
}
