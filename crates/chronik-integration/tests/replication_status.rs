//! `chronik-server cluster status` on three real nodes shows replication: each partition's
//! high watermark and every replica's log end (the leader's view and each replica's own), and
//! each broker's counters; an idle, healthy cluster elects no leader and changes no ISR.

mod core_util;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use chronik_integration::{server_bin, Cluster};
use core_util::{admin, opts, producer};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::FutureRecord;

const TOPIC: &str = "status";
const PARTITIONS: i32 = 3;
const PER_PARTITION: usize = 200;

type Words = BTreeMap<String, String>;

/// The `key=value` words of each line of the status section that starts with `header`.
fn section(text: &str, header: &str) -> Vec<Words> {
    text.lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The status report: (partition lines of `TOPIC` by partition, counter lines by broker).
fn status(bootstrap: &str) -> (BTreeMap<i32, Words>, BTreeMap<i32, Words>, String) {
    let out = Command::new(server_bin())
        .args(["cluster", "status", "--bootstrap-server", bootstrap])
        .output()
        .expect("running chronik-server cluster status");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cluster status failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let partitions = section(&text, "replication:")
        .into_iter()
        .filter(|w| w["topic"] == TOPIC)
        .map(|w| (w["partition"].parse().unwrap(), w))
        .collect();
    let brokers = section(&text, "replication counters:")
        .into_iter()
        .map(|w| (w["broker"].parse().unwrap(), w))
        .collect();
    (partitions, brokers, text)
}

/// `1:5,2:5,3:-1` as (replica, end) pairs; `-` ends are None.
fn ends(list: &str) -> Vec<(i32, Option<i64>)> {
    list.split(',')
        .map(|e| {
            let (r, end) = e.split_once(':').expect("replica:end");
            (r.parse().unwrap(), end.parse().ok())
        })
        .collect()
}

/// Whether every partition of `TOPIC` is fully in sync at `expect_hw`: ISR of 3, and every
/// replica's log end (the leader's view and its own) at the high watermark.
fn in_sync(partitions: &BTreeMap<i32, Words>, expect_hw: i64) -> bool {
    partitions.len() == PARTITIONS as usize
        && partitions.values().all(|w| {
            let hw: i64 = w["hw"].parse().unwrap_or(-2);
            w["state"] == "ok"
                && w["isr"].split(',').count() == 3
                && w["replicas"].split(',').count() == 3
                && hw == expect_hw
                && [&w["ends"], &w["own"]].iter().all(|list| {
                    let ends = ends(list);
                    ends.len() == 3 && ends.iter().all(|(_, end)| *end == Some(hw))
                })
        })
}

fn counter(words: &Words, name: &str) -> u64 {
    words
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {words:?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_replicas_in_sync_and_an_idle_cluster_elects_no_one() {
    let cluster = Cluster::start(
        3,
        &[
            "--replica-lag-time-max-ms",
            "4000",
            "--broker-session-timeout-ms",
            "3000",
        ],
    );
    let bootstrap = cluster.bootstrap();
    let one = cluster.nodes[0].bootstrap();
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    for r in admin(&bootstrap)
        .create_topics([&topic], &opts())
        .await
        .expect("create_topics request")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e:?}"));
    }

    let producer = producer(
        &bootstrap,
        &[("acks", "all"), ("enable.idempotence", "true")],
    );
    let sends: Vec<_> = (0..PARTITIONS)
        .flat_map(|p| (0..PER_PARTITION).map(move |i| (p, format!("p{p}-{i}"))))
        .map(|(p, v)| {
            producer
                .send_result(FutureRecord::<(), _>::to(TOPIC).partition(p).payload(&v))
                .unwrap_or_else(|(e, _)| panic!("{v} not enqueued: {e}"))
        })
        .collect();
    for send in sends {
        send.await
            .expect("delivery future")
            .unwrap_or_else(|(e, _)| panic!("not acknowledged: {e}"));
    }

    // acks=all returned, so the high watermark covers every record; the followers' next fetch
    // tells the leader so (and their own log ends are already there).
    let hw = PER_PARTITION as i64;
    let deadline = Instant::now() + Duration::from_secs(15);
    let (before, counters_before) = loop {
        let (partitions, brokers, text) = status(&one);
        if in_sync(&partitions, hw) && brokers.values().all(|w| w.contains_key("uptime_ms")) {
            println!("{text}");
            break (partitions, brokers);
        }
        assert!(
            Instant::now() < deadline,
            "not every replica of {TOPIC} at hw {hw} with an ISR of 3:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(counters_before.len(), 3, "{counters_before:?}");
    let leading: u64 = counters_before
        .values()
        .map(|w| counter(w, "leading"))
        .sum();
    assert!(leading >= PARTITIONS as u64, "{counters_before:?}");

    // Idle: followers keep fetching, nothing lags, nobody is fenced.
    std::thread::sleep(Duration::from_secs(60));

    let (after, counters_after, text) = status(&one);
    println!("{text}");
    assert!(in_sync(&after, hw), "after idling:\n{text}");
    for (p, w) in &before {
        for key in ["leader", "epoch", "isr"] {
            assert_eq!(
                w[key], after[p][key],
                "partition {p} {key} changed:\n{text}"
            );
        }
    }
    assert_eq!(counters_after.len(), 3, "{text}");
    for (broker, b) in &counters_before {
        let a = &counters_after[broker];
        assert!(
            counter(a, "uptime_ms") >= counter(b, "uptime_ms") + 60_000,
            "broker {broker} restarted?\n{text}"
        );
        for name in [
            "leader_elections",
            "became_leader",
            "isr_shrinks",
            "isr_expands",
            "truncations",
            "log_restarts",
        ] {
            assert_eq!(
                counter(b, name),
                counter(a, name),
                "broker {broker} {name} moved while idle:\n{text}"
            );
        }
    }
}
