//! Three real `chronik-server` processes forming a metadata quorum, driven by librdkafka and by
//! raw Kafka requests (Metadata v12, FindCoordinator v4) where librdkafka hides what the test
//! checks (the controller id, a group's coordinator). Nodes are killed with SIGKILL.

mod core_util;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chronik_integration::raw::{exchange, exchange_on};
use chronik_integration::Cluster;
use core_util::{admin, config, create_topic, opts, producer, status_brokers};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeQuorumRequest, DescribeQuorumResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;

/// Metadata (all topics) as `addr` answers it.
fn metadata(addr: &str) -> std::io::Result<MetadataResponse> {
    exchange(
        addr,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
}

/// What `addr` says: (controller id from DescribeCluster, live broker ids, topic names).
fn view(addr: &str) -> Option<(i32, BTreeSet<i32>, BTreeSet<String>)> {
    let m = metadata(addr).ok()?;
    let cluster: DescribeClusterResponse = exchange(
        addr,
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default(),
    )
    .ok()?;
    Some((
        cluster.controller_id.0,
        m.brokers.iter().map(|b| b.node_id.0).collect(),
        m.topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .collect(),
    ))
}

/// Polls `check` until it holds or `timeout` passes; returns how long it took.
fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {timeout:?}");
}

fn controller_of(cluster: &Cluster) -> i32 {
    let mut controller = -1;
    eventually("a controller is elected", Duration::from_secs(10), || {
        controller = view(&cluster.nodes[0].bootstrap()).map_or(-1, |v| v.0);
        controller > 0
    });
    controller
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_created_through_any_node_are_everywhere_and_survive_a_controller_kill() {
    let mut cluster = Cluster::start(3, &[]);
    let created = Instant::now();
    for (i, node) in cluster.nodes.iter().enumerate() {
        create_topic(&node.bootstrap(), &format!("via-{}", i + 1), 3, &[]).await;
    }
    // "Answered once applied locally": the creating node lists its topic at once.
    for (i, node) in cluster.nodes.iter().enumerate() {
        let (_, brokers, topics) = view(&node.bootstrap()).unwrap();
        assert!(topics.contains(&format!("via-{}", i + 1)));
        assert_eq!(brokers, BTreeSet::from([1, 2, 3]));
    }
    let everywhere = eventually(
        "every node lists every topic",
        Duration::from_secs(5),
        || {
            cluster.nodes.iter().all(|n| {
                view(&n.bootstrap())
                    .is_some_and(|(_, _, t)| (1..=3).all(|i| t.contains(&format!("via-{i}"))))
            })
        },
    );
    println!(
        "FIGURE three topics created and visible on every node after {:?} (last visible {everywhere:?} after the last CreateTopics)",
        created.elapsed()
    );

    let old = controller_of(&cluster);
    // Any node answers DescribeQuorum with the leader's view: every voter caught up.
    let request = DescribeQuorumRequest::default().with_topics(vec![]);
    let quorum: DescribeQuorumResponse = exchange(
        &cluster.nodes[0].bootstrap(),
        ApiKey::DescribeQuorum,
        1,
        &request,
    )
    .unwrap();
    assert_eq!(quorum.error_code, 0);
    let partition = &quorum.topics[0].partitions[0];
    assert_eq!(partition.leader_id.0, old);
    assert_eq!(partition.current_voters.len(), 3);
    eventually(
        "every voter at the leader's log end",
        Duration::from_secs(5),
        || {
            let q: DescribeQuorumResponse = exchange(
                &cluster.nodes[1].bootstrap(),
                ApiKey::DescribeQuorum,
                1,
                &request,
            )
            .unwrap();
            let p = &q.topics[0].partitions[0];
            p.current_voters
                .iter()
                .all(|v| v.log_end_offset == p.high_watermark)
        },
    );
    cluster.node(old).kill();
    let survivor = cluster.nodes[(old % 3) as usize].bootstrap();
    let killed_at = Instant::now();
    let mut new = -1;
    let elected = eventually("a new controller", Duration::from_secs(15), || {
        new = view(&survivor).map_or(-1, |v| v.0);
        new > 0 && new != old
    });
    println!("FIGURE new controller {new} elected {elected:?} after SIGKILL of controller {old}");
    let topic = NewTopic::new("after-kill", 2, TopicReplication::Fixed(1));
    let results = admin(&survivor)
        .create_topics([&topic], &opts())
        .await
        .expect("create_topics request");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    println!(
        "FIGURE CreateTopics through a survivor answered {:?} after the kill",
        killed_at.elapsed()
    );

    cluster.node(old).restart();
    let caught_up = eventually(
        "the restarted node catches up",
        Duration::from_secs(15),
        || {
            view(&cluster.node(old).bootstrap()).is_some_and(|(_, b, t)| {
                t.contains("after-kill") && t.contains("via-1") && b.len() == 3
            })
        },
    );
    println!("FIGURE restarted node {old} listed every topic {caught_up:?} after it started");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_quorum_metadata_changes_fail_retriably_and_data_still_flows() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "spread", 3, &[]).await;
    // The partition led by node 1, which survives.
    let m = metadata(&cluster.nodes[0].bootstrap()).unwrap();
    let spread = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "spread"))
        .unwrap();
    let on_1 = spread
        .partitions
        .iter()
        .find(|p| p.leader_id.0 == 1)
        .expect("a partition led by node 1")
        .partition_index;
    cluster.node(2).kill();
    cluster.node(3).kill();

    let node1 = cluster.nodes[0].bootstrap();
    let started = Instant::now();
    let topic = NewTopic::new("no-quorum", 1, TopicReplication::Fixed(1));
    // The broker answers within the request's own timeout (3 s), before the client gives up.
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(3)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = admin(&node1)
        .create_topics([&topic], &options)
        .await
        .expect("an answer, not a client-side timeout");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let (_, code) = results[0].clone().expect_err("created without a quorum");
    assert!(
        matches!(
            code,
            RDKafkaErrorCode::RequestTimedOut | RDKafkaErrorCode::NotController
        ),
        "{code:?}"
    );
    println!("FIGURE CreateTopics without a quorum answered {code:?} after {took:?}");

    let producer = producer(&node1, &[]);
    let delivered = producer
        .send(
            FutureRecord::<str, str>::to("spread")
                .partition(on_1)
                .payload("still here"),
            Duration::from_secs(10),
        )
        .await;
    assert!(delivered.is_ok(), "{delivered:?}");
    let consumer: BaseConsumer = config(
        &node1,
        &[("group.id", "unused"), ("enable.auto.commit", "false")],
    )
    .create()
    .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("spread", on_1, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    // Errors about the dead brokers may come first; the message must come.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut read = None;
    while read.is_none() && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            read = m.payload().map(|p| p.to_vec());
        }
    }
    assert_eq!(read.as_deref(), Some(&b"still here"[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn six_partitions_over_three_brokers_and_a_three_member_group() {
    let cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "six", 6, &[]).await;
    let m = metadata(&cluster.nodes[0].bootstrap()).unwrap();
    let six = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "six"))
        .unwrap();
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for p in &six.partitions {
        *leaders.entry(p.leader_id.0).or_default() += 1;
    }
    assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));

    let producer = producer(&bootstrap, &[("acks", "all")]);
    for i in 0..600 {
        let key = format!("k{i}");
        let value = format!("v{i}");
        producer
            .send(
                FutureRecord::to("six").key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }

    let members: Vec<BaseConsumer> = (0..3)
        .map(|_| {
            let c: BaseConsumer = config(
                &bootstrap,
                &[
                    ("group.id", "trio"),
                    ("auto.offset.reset", "earliest"),
                    ("session.timeout.ms", "6000"),
                    ("fetch.wait.max.ms", "100"),
                ],
            )
            .create()
            .unwrap();
            c.subscribe(&["six"]).unwrap();
            c
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut per_member = [0usize; 3];
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 600 && Instant::now() < deadline {
        for (i, c) in members.iter().enumerate() {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                seen.insert(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
                per_member[i] += 1;
            }
        }
    }
    assert_eq!(seen.len(), 600, "read back every message");
    let assigned: Vec<usize> = members
        .iter()
        .map(|c| c.assignment().map(|a| a.count()).unwrap_or(0))
        .collect();
    assert_eq!(assigned.iter().sum::<usize>(), 6, "{assigned:?}");
    assert!(assigned.iter().all(|n| *n == 2), "{assigned:?}");

    // The coordinator is whichever broker leads the group's __consumer_offsets partition.
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_static_str("trio")]);
    let found: FindCoordinatorResponse = exchange(
        &cluster.nodes[2].bootstrap(),
        ApiKey::FindCoordinator,
        4,
        &request,
    )
    .unwrap();
    let coordinator = found.coordinators[0].node_id.0;
    let m = metadata(&cluster.nodes[0].bootstrap()).unwrap();
    let offsets = m
        .topics
        .iter()
        .find(|t| {
            t.name
                .as_ref()
                .is_some_and(|n| n.as_str() == "__consumer_offsets")
        })
        .unwrap();
    let partition = (java_hash("trio").unsigned_abs() as usize) % offsets.partitions.len();
    assert_eq!(coordinator, offsets.partitions[partition].leader_id.0);
    // Any other broker sends the client back to FindCoordinator.
    let other = cluster
        .nodes
        .iter()
        .enumerate()
        .find(|(i, _)| *i as i32 + 1 != coordinator)
        .map(|(_, n)| n.bootstrap())
        .unwrap();
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(StrBytes::from_static_str("trio").into())
        .with_member_id(StrBytes::from_static_str("nobody"))
        .with_generation_id(1);
    let answer: HeartbeatResponse = exchange(&other, ApiKey::Heartbeat, 4, &heartbeat).unwrap();
    assert_eq!(answer.error_code, 16, "NOT_COORDINATOR");
}

/// Java's `String.hashCode`, as Kafka uses it to map a group to an offsets partition.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_broker_is_fenced_and_unfenced_when_it_returns() {
    let mut cluster = Cluster::start(3, &["--broker-session-timeout-ms", "3000"]);
    let node1 = cluster.nodes[0].bootstrap();
    assert_eq!(view(&node1).unwrap().1, BTreeSet::from([1, 2, 3]));
    let before = status_brokers(&node1).expect("cluster status");
    assert!(
        before
            .values()
            .all(|b| b.state == "alive" && b.epoch.is_some()),
        "{before:?}"
    );
    cluster.node(3).kill();
    let fenced = eventually("node 3 fenced", Duration::from_secs(15), || {
        view(&node1).is_some_and(|(_, b, _)| b == BTreeSet::from([1, 2]))
    });
    println!("FIGURE broker fenced {fenced:?} after SIGKILL (session timeout 3 s)");
    cluster.node(3).restart();
    eventually("node 3 unfenced", Duration::from_secs(15), || {
        view(&node1).is_some_and(|(_, b, _)| b == BTreeSet::from([1, 2, 3]))
    });
    let restarted = status_brokers(&node1).expect("cluster status");
    assert_eq!(restarted[&3].state, "alive");
    // A clean stop (SIGTERM) fences the broker at once, not after the session timeout.
    let stopping = Instant::now();
    cluster.node(2).stop();
    let gone = eventually("node 2 fenced at shutdown", Duration::from_secs(2), || {
        view(&node1).is_some_and(|(_, b, _)| b == BTreeSet::from([1, 3]))
    });
    println!(
        "FIGURE SIGTERM to fenced: {:?} (stop took {:?})",
        stopping.elapsed(),
        gone
    );
    // The admin command shows it shutting down until its session ends, then fenced; node 3
    // kept the new epoch of its restart.
    let state_of = |id: i32| status_brokers(&node1).and_then(|b| b.get(&id).cloned());
    let shutting = state_of(2).expect("node 2 listed");
    assert_eq!(shutting.state, "shutting down", "{shutting:?}");
    eventually(
        "node 2 fenced after its session",
        Duration::from_secs(15),
        || state_of(2).is_some_and(|b| b.state == "fenced"),
    );
    let node3 = state_of(3).expect("node 3 listed");
    assert_eq!(node3.state, "alive");
    assert!(
        node3.epoch > before[&3].epoch,
        "{node3:?} after {:?}",
        before[&3]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_node_data_dir_from_before_the_quorum_is_imported_once() {
    let mut broker = chronik_integration::Broker::prepare(&[]);
    let meta = broker.storage_dir().join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("topics.json"),
        r#"{"cluster_id": "legacy-cluster", "topics": {"old": {"name": "old",
        "id": "6f1c1b0e-4a47-4c3a-9c53-0d3e4b4c2a11", "partitions": 2, "replication_factor": 1,
        "configs": {"retention.ms": "123456"}, "internal": false}}}"#,
    )
    .unwrap();
    std::fs::write(meta.join("producer-id-block"), "5000").unwrap();
    broker.restart();
    let (_, brokers, topics) = view(&broker.bootstrap()).unwrap();
    assert_eq!(brokers, BTreeSet::from([1]));
    assert!(topics.contains("old"), "{topics:?}");
    assert!(meta.join("topics.json.imported").exists());
    assert!(!meta.join("topics.json").exists());
    let m = metadata(&broker.bootstrap()).unwrap();
    assert_eq!(m.cluster_id.as_ref().unwrap().as_str(), "legacy-cluster");
    // Produce and read back through the imported topic, then once more after a restart.
    create_topic(&broker.bootstrap(), "new", 1, &[]).await;
    broker.restart();
    let (_, _, topics) = view(&broker.bootstrap()).unwrap();
    assert!(
        topics.contains("old") && topics.contains("new"),
        "{topics:?}"
    );

    // A node of a multi-voter cluster refuses such files with a message.
    let mut voter = chronik_integration::Broker::prepare(&[
        "--node-id",
        "1",
        "--controller-quorum-voters",
        "1@127.0.0.1:1,2@127.0.0.1:2",
    ]);
    let meta = voter.storage_dir().join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(meta.join("producer-id-block"), "5000").unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| voter.restart()));
    assert!(
        result.is_err(),
        "started with legacy files in a multi-voter cluster"
    );
    assert!(
        voter.log().contains("without controller_quorum_voters"),
        "{}",
        voter.log()
    );
}

/// Sets the cluster-wide default `log.retention.ms` through `addr` (one metadata record).
fn set_default_retention(stream: &mut TcpStream, value: i64) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let config = AlterableConfig::default()
        .with_name(StrBytes::from_static_str("log.retention.ms"))
        .with_config_operation(0)
        .with_value(Some(StrBytes::from_string(value.to_string())));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![config]),
    ]);
    let response: IncrementalAlterConfigsResponse =
        exchange_on(stream, ApiKey::IncrementalAlterConfigs, 1, &request).unwrap();
    response.responses[0].error_code
}

/// The cluster-wide default `log.retention.ms` as `addr` describes it.
fn default_retention(addr: &str) -> Option<String> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configuration_keys(None)]);
    let response: DescribeConfigsResponse =
        exchange(addr, ApiKey::DescribeConfigs, 4, &request).ok()?;
    response.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == "log.retention.ms")
        .and_then(|c| c.value.as_ref().map(|v| v.to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_missed_more_than_the_kept_log_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3, &[]);
    let controller = controller_of(&cluster);
    let down = if controller == 3 { 2 } else { 3 };
    cluster.node(down).kill();
    let via = cluster.nodes[(down % 3) as usize].bootstrap();
    // More metadata records than a snapshot keeps behind it (snapshot every 1000, 100 kept).
    let mut stream = TcpStream::connect(&via).unwrap();
    for i in 0..1300 {
        assert_eq!(set_default_retention(&mut stream, 60_000 + i), 0);
    }
    // The leader's log no longer starts where the stopped node's ends: only a snapshot helps.
    let purged = std::fs::read_to_string(
        cluster
            .node(controller)
            .storage_dir()
            .join("meta/raft/purged"),
    )
    .expect("the leader purged its log after a snapshot");
    let purged_index: u64 = purged
        .split("\"index\":")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches('}').trim().parse().ok())
        .unwrap_or_else(|| panic!("purged id {purged}"));
    assert!(purged_index > 100, "{purged}");
    cluster.node(down).restart();
    let addr = cluster.node(down).bootstrap();
    let took = eventually(
        "the restarted node has the latest value",
        Duration::from_secs(20),
        || default_retention(&addr).as_deref() == Some("61299"),
    );
    println!("FIGURE node {down} caught up over 1300 records (snapshot) in {took:?}");
}

#[test]
fn a_data_dir_of_one_quorum_refuses_other_voters() {
    let mut broker = chronik_integration::Broker::start();
    broker.stop();
    let mut other = chronik_integration::Broker::prepare(&[
        "--node-id",
        "1",
        "--controller-quorum-voters",
        "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
    ]);
    // Same data directory, other voters.
    std::fs::remove_dir_all(other.storage_dir()).ok();
    copy_tree(&broker.storage_dir(), &other.storage_dir());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| other.restart()));
    assert!(result.is_err(), "started with other voters");
    assert!(
        other
            .log()
            .contains("changing the voters of a quorum is not supported"),
        "{}",
        other.log()
    );
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
