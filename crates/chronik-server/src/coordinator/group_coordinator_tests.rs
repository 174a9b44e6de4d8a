use std::collections::BTreeMap;

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::*;
use crate::config::FlushPolicy;

struct Fixture {
    _dir: tempfile::TempDir,
    config: Arc<BrokerConfig>,
    metadata: Arc<MetadataStore>,
    replicas: Arc<ReplicaManager>,
    controller: Controller,
}

fn open(dir: tempfile::TempDir) -> Fixture {
    let config = Arc::new(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        offsets_topic_num_partitions: 3,
        flush_policy: FlushPolicy::Os,
        ..Default::default()
    });
    let metadata = Arc::new(MetadataStore::open(&dir.path().join("meta"), None).unwrap());
    let replicas = Arc::new(
        ReplicaManager::new(
            config.data_dir.clone(),
            config.log.clone(),
            config.flush_policy,
        )
        .unwrap(),
    );
    let controller = Controller::new(config.clone(), metadata.clone(), replicas.clone());
    controller.reconcile_all();
    replicas.finish_recovery().unwrap();
    Fixture {
        _dir: dir,
        config,
        metadata,
        replicas,
        controller,
    }
}

fn coordinator(f: &Fixture) -> GroupCoordinator {
    GroupCoordinator::new(f.config.clone(), f.metadata.clone(), f.replicas.clone())
}

fn produce(f: &Fixture, topic: &str, partition: i32, count: usize) {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    f.replicas
        .append(topic, partition, &buf.freeze(), -1)
        .unwrap();
}

fn commit(topic: &str, partition: i32, offset: i64) -> OffsetToCommit {
    OffsetToCommit {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: Some("meta".into()),
    }
}

#[tokio::test]
async fn lag_is_log_end_minus_committed_and_offsets_survive_a_reload() {
    let f = open(tempfile::tempdir().unwrap());
    f.controller
        .create_topic(
            NewTopic {
                name: "t",
                partitions: 2,
                replication_factor: -1,
                configs: BTreeMap::new(),
            },
            false,
        )
        .unwrap();
    produce(&f, "t", 0, 10);
    produce(&f, "t", 1, 4);
    let c = coordinator(&f);
    c.ensure_offsets_topic(&f.controller).unwrap();
    let codes = c
        .commit_offsets(
            "g",
            "",
            None,
            -1,
            vec![commit("t", 0, 7), commit("t", 1, 4), commit("nope", 0, 1)],
        )
        .await
        .unwrap();
    assert_eq!(
        codes,
        vec![0, 0, ResponseError::UnknownTopicOrPartition.code()]
    );
    let lag = c.consumer_lag();
    assert_eq!(
        lag,
        vec![
            PartitionLag {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                committed: 7,
                log_end_offset: 10,
                lag: 3
            },
            PartitionLag {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
                committed: 4,
                log_end_offset: 4,
                lag: 0
            },
        ]
    );
    // A later commit wins; a deleted offset stays deleted after reload.
    c.commit_offsets("g", "", None, -1, vec![commit("t", 0, 9)])
        .await
        .unwrap();
    assert_eq!(c.delete_offsets("g", &[("t".into(), 1)]).unwrap(), vec![0]);
    let reloaded = coordinator(&f);
    reloaded.load().unwrap();
    let fetched = reloaded.fetch_offsets("g", None);
    assert_eq!(fetched.len(), 1);
    assert_eq!((fetched[0].0.as_str(), fetched[0].1), ("t", 0));
    let value = fetched[0].2.clone().unwrap();
    assert_eq!((value.offset, value.metadata.as_str()), (9, "meta"));
    // Deleting the group writes tombstones for everything.
    assert_eq!(reloaded.delete_group("g"), 0);
    let again = coordinator(&f);
    again.load().unwrap();
    assert!(again.fetch_offsets("g", None).is_empty());
    assert!(again.list_groups().is_empty());
}

#[tokio::test]
async fn offsets_of_long_empty_groups_expire() {
    let f = open(tempfile::tempdir().unwrap());
    f.controller
        .create_topic(
            NewTopic {
                name: "t",
                partitions: 1,
                replication_factor: -1,
                configs: BTreeMap::new(),
            },
            false,
        )
        .unwrap();
    let c = coordinator(&f);
    c.ensure_offsets_topic(&f.controller).unwrap();
    c.commit_offsets("g", "", None, -1, vec![commit("t", 0, 1)])
        .await
        .unwrap();
    c.expire_offsets(now_ms());
    assert_eq!(c.fetch_offsets("g", None).len(), 1);
    let retention_ms = f.config.offsets_retention_minutes * 60_000;
    c.expire_offsets(now_ms() + retention_ms + 1000);
    assert!(c.fetch_offsets("g", None).is_empty());
    let reloaded = coordinator(&f);
    reloaded.load().unwrap();
    assert!(reloaded.list_groups().is_empty());
}
