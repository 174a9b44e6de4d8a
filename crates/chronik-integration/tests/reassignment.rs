//! Partition reassignment (KIP-455) on four real `chronik-server` processes: a partition on
//! brokers 1,2,3 moves to 2,3,4 through the `chronik-server reassign` admin command while it
//! is being produced to; the move completes on its own once broker 4 caught up, leadership
//! leaves broker 1, which deletes its copy, and no acknowledged write is lost or duplicated.

mod core_util;

use std::process::Command;
use std::time::{Duration, Instant};

use chronik_integration::{server_bin, Cluster};
use core_util::{admin, consume, opts, produce_all};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Offset;

const TOPIC: &str = "moving";

/// `chronik-server reassign --bootstrap <bootstrap> <args>`: its output, or a test failure.
fn reassign(bootstrap: &str, args: &[&str]) -> String {
    let output = Command::new(server_bin())
        .arg("reassign")
        .args(["--bootstrap", bootstrap])
        .args(args)
        .output()
        .expect("running chronik-server reassign");
    assert!(
        output.status.success(),
        "reassign {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Leader, replicas and ISR of partition 0, as a broker's metadata says.
fn partition_0(bootstrap: &str) -> (i32, Vec<i32>, Vec<i32>) {
    let consumer: BaseConsumer = core_util::config(bootstrap, &[]).create().expect("client");
    let metadata = consumer
        .fetch_metadata(Some(TOPIC), Duration::from_secs(5))
        .expect("metadata");
    let p = &metadata.topics()[0].partitions()[0];
    (p.leader(), p.replicas().to_vec(), p.isr().to_vec())
}

fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_moves_to_other_brokers_while_serving_and_leaves_its_old_one() {
    let cluster = Cluster::start(
        4,
        &[
            "--replica-lag-time-max-ms",
            "4000",
            "--broker-session-timeout-ms",
            "3000",
        ],
    );
    let bootstrap = cluster.bootstrap();
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Variable(&[&[1, 2, 3]]))
        .set("min.insync.replicas", "2");
    for r in admin(&bootstrap)
        .create_topics([&topic], &opts())
        .await
        .expect("create_topics request")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e:?}"));
    }
    let before = values("before", 2000);
    produce_all(&bootstrap, TOPIC, &before).await;
    assert_eq!(partition_0(&bootstrap).0, 1, "broker 1 leads at first");
    let old_dir = cluster.nodes[0].storage_dir().join(format!("{TOPIC}-0"));
    assert!(old_dir.exists());

    let started = reassign(
        &bootstrap,
        &["--topic", TOPIC, "--partition", "0", "--replicas", "2,3,4"],
    );
    assert!(started.contains("started"), "{started}");
    // Writes go on during the move, across the leadership change.
    let during = values("during", 1000);
    produce_all(&bootstrap, TOPIC, &during).await;
    eventually(
        "the reassignment to complete",
        Duration::from_secs(60),
        || reassign(&bootstrap, &["--list"]).contains("no reassignment in progress"),
    );
    let status = Command::new(server_bin())
        .args(["cluster", "status", "--bootstrap-server", &bootstrap])
        .output()
        .expect("cluster status");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr),
    );
    assert!(
        stdout.contains("reassignments:\n  no reassignment in progress"),
        "{stdout}{stderr}"
    );
    eventually(
        "metadata to show replicas 2,3,4",
        Duration::from_secs(20),
        || {
            let (leader, replicas, _) = partition_0(&bootstrap);
            replicas == vec![2, 3, 4] && leader == 2
        },
    );
    let after = values("after", 1000);
    produce_all(&bootstrap, TOPIC, &after).await;
    let all: Vec<String> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .cloned()
        .collect();
    let read = consume(
        &bootstrap,
        TOPIC,
        1,
        Offset::Beginning,
        all.len(),
        Duration::from_secs(30),
    );
    let read_values: Vec<String> = read
        .iter()
        .map(|m| String::from_utf8(m.value.clone()).unwrap())
        .collect();
    assert_eq!(read_values, all, "every acknowledged value, once, in order");
    for (i, m) in read.iter().enumerate() {
        assert_eq!(m.offset, i as i64, "contiguous offsets");
    }
    eventually(
        "broker 1 to delete its copy",
        Duration::from_secs(20),
        || !old_dir.exists(),
    );
    assert!(cluster.nodes[3]
        .storage_dir()
        .join(format!("{TOPIC}-0"))
        .exists());
    // Nothing to cancel any more.
    let cancel = Command::new(server_bin())
        .args(["reassign", "--bootstrap", &bootstrap])
        .args(["--topic", TOPIC, "--partition", "0", "--cancel"])
        .output()
        .unwrap();
    assert!(!cancel.status.success());
    assert!(
        String::from_utf8_lossy(&cancel.stderr).contains("NoReassignmentInProgress"),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
}
