//! Partition replication on three real `chronik-server` processes: followers pull from the
//! leader, acks=all waits for the ISR, a killed leader's partitions move to an in-sync
//! follower, and afterwards every replica holds the same batches. Driven by librdkafka.

mod core_util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chronik_integration::raw::exchange;
use chronik_integration::Cluster;
use core_util::{consume, create_replicated_topic, produce_all, produce_all_to};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;

const TOPIC_CONFIGS: &[(&str, &str)] = &[("min.insync.replicas", "2")];

fn start_cluster() -> Cluster {
    start_cluster_with(&[])
}

fn start_cluster_with(extra: &[&str]) -> Cluster {
    let mut args = vec![
        "--replica-lag-time-max-ms",
        "4000",
        "--broker-session-timeout-ms",
        "3000",
    ];
    args.extend_from_slice(extra);
    Cluster::start(3, &args)
}

/// The leader and ISR of each partition of `topic`, as a broker's metadata says.
fn partition_states(bootstrap: &str, topic: &str) -> BTreeMap<i32, (i32, Vec<i32>)> {
    let consumer: BaseConsumer = core_util::config(bootstrap, &[]).create().expect("client");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| (p.id(), (p.leader(), p.isr().to_vec())))
        .collect()
}

fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The bytes of a partition's segment files, in offset order (segment boundaries may differ
/// between replicas; the batches may not).
fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    segments
        .iter()
        .flat_map(|p| std::fs::read(p).expect("segment"))
        .collect()
}

/// Waits until every node's copy of the partition directory `name` holds the same batches.
fn replicas_converge(cluster: &Cluster, name: &str) {
    let dirs: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| n.storage_dir().join(name))
        .collect();
    eventually(
        &format!("every replica of {name} to hold the same batches"),
        Duration::from_secs(20),
        || {
            let logs: Vec<Vec<u8>> = dirs.iter().map(|d| log_bytes(d)).collect();
            logs.iter().all(|l| !l.is_empty() && *l == logs[0])
        },
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_all_is_replicated_to_every_replica_byte_for_byte() {
    // Several fetchers per leader: each partition stays with one of them.
    let cluster = start_cluster_with(&["--num-replica-fetchers", "3"]);
    let bootstrap = cluster.bootstrap();
    create_replicated_topic(&bootstrap, "replicated", 4, 3, TOPIC_CONFIGS).await;
    const PARTITIONS: i32 = 4;
    let values: Vec<String> = (0..3000).map(|i| format!("value-{i}")).collect();
    produce_all_to(&bootstrap, "replicated", PARTITIONS, &values).await;

    let read = consume(
        &bootstrap,
        "replicated",
        PARTITIONS,
        Offset::Beginning,
        values.len(),
        Duration::from_secs(30),
    );
    // Value i went to partition i % PARTITIONS: each partition holds its share, once, in
    // order, at contiguous offsets.
    for p in 0..PARTITIONS {
        let got: Vec<(i64, String)> = read
            .iter()
            .filter(|m| m.partition == p)
            .map(|m| (m.offset, String::from_utf8(m.value.clone()).unwrap()))
            .collect();
        let expected: Vec<(i64, String)> = values
            .iter()
            .skip(p as usize)
            .step_by(PARTITIONS as usize)
            .enumerate()
            .map(|(offset, v)| (offset as i64, v.clone()))
            .collect();
        assert_eq!(got, expected, "partition {p}");
    }

    for p in 0..PARTITIONS {
        replicas_converge(&cluster, &format!("replicated-{p}"));
    }
    let states = partition_states(&bootstrap, "replicated");
    assert!(
        states.values().all(|(_, isr)| isr.len() == 3),
        "idle followers stay in the ISR: {states:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_leader_is_replaced_by_an_in_sync_follower_without_losing_acknowledged_writes() {
    let mut cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    create_replicated_topic(&bootstrap, "failover", 1, 3, TOPIC_CONFIGS).await;
    let first: Vec<String> = (0..1000).map(|i| format!("before-{i}")).collect();
    produce_all(&bootstrap, "failover", &first).await;

    let (leader, _) = partition_states(&bootstrap, "failover")[&0].clone();
    cluster.node(leader).kill();
    let survivors: String = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 + 1 != leader)
        .map(|(_, n)| n.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    eventually("a new leader from the ISR", Duration::from_secs(20), || {
        let (new_leader, isr) = partition_states(&survivors, "failover")[&0].clone();
        new_leader >= 0 && new_leader != leader && !isr.contains(&leader)
    });
    let second: Vec<String> = (0..1000).map(|i| format!("after-{i}")).collect();
    produce_all(&survivors, "failover", &second).await;

    cluster.node(leader).restart();
    eventually(
        "the old leader to rejoin the ISR",
        Duration::from_secs(30),
        || partition_states(&bootstrap, "failover")[&0].1.len() == 3,
    );
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let read = consume(
        &bootstrap,
        "failover",
        1,
        Offset::Beginning,
        all.len(),
        Duration::from_secs(30),
    );
    let read_values: Vec<String> = read
        .iter()
        .map(|m| String::from_utf8(m.value.clone()).unwrap())
        .collect();
    assert_eq!(read_values, all, "no acknowledged write lost or duplicated");
    replicas_converge(&cluster, "failover-0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_answers_a_fetch_with_where_the_leader_is() {
    let cluster = start_cluster();
    let bootstrap = cluster.bootstrap();
    create_replicated_topic(&bootstrap, "routed", 1, 3, TOPIC_CONFIGS).await;
    let (leader, _) = partition_states(&bootstrap, "routed")[&0].clone();
    let follower = cluster
        .nodes
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != leader)
        .map(|(_, n)| n.bootstrap())
        .unwrap();
    let request = FetchRequest::default()
        .with_max_wait_ms(10)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("routed")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = exchange(&follower, ApiKey::Fetch, 12, &request).unwrap();
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(partition.current_leader.leader_id.0, leader);
    assert!(partition.current_leader.leader_epoch >= 0);
    // v16 (topics by id) names the leader's endpoint too.
    let metadata: MetadataResponse = exchange(
        &follower,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .unwrap();
    let topic_id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "routed"))
        .map(|t| t.topic_id)
        .unwrap();
    let mut request = request;
    request.topics[0].topic_id = topic_id;
    let response: FetchResponse = exchange(&follower, ApiKey::Fetch, 16, &request).unwrap();
    let leader_port = cluster.nodes[(leader - 1) as usize].port() as i32;
    assert_eq!(
        response.responses[0].partitions[0]
            .current_leader
            .leader_id
            .0,
        leader
    );
    assert!(response
        .node_endpoints
        .iter()
        .any(|e| e.node_id.0 == leader && e.port == leader_port));
}
