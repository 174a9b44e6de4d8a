//! Shared helpers of the broker-core tests (round_trip, crash, admin): rdkafka clients bound to
//! a test broker, topic creation, and reading partitions back with `assign` (no group).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

pub fn config(bootstrap: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    config(bootstrap, &[]).create().expect("admin client")
}

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut base = vec![("linger.ms", "5"), ("message.timeout.ms", "30000")];
    base.extend_from_slice(extra);
    config(bootstrap, &base).create().expect("producer")
}

pub fn consumer(bootstrap: &str) -> BaseConsumer {
    config(
        bootstrap,
        &[
            ("group.id", "chronik-core-tests-assign-only"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("fetch.wait.max.ms", "100"),
        ],
    )
    .create()
    .expect("consumer")
}

pub fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Creates a topic and fails the test if the broker refuses.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_replicated_topic(bootstrap, name, partitions, 1, configs).await
}

/// Creates a topic with `replication` replicas per partition; fails the test if refused.
pub async fn create_replicated_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin(bootstrap)
        .create_topics([&topic], &opts())
        .await
        .expect("create_topics request");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e:?}"));
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Timestamp,
}

/// Reads partitions `0..partitions` of `topic` from the given offset until `expect` messages
/// arrived (then a short while longer, to catch extras) or `timeout` passed.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    start: Offset,
    expect: usize,
    timeout: Duration,
) -> Vec<Msg> {
    let consumer = consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, start).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle: Option<Instant> = None;
    while Instant::now() < deadline {
        if out.len() >= expect {
            let until = *settle.get_or_insert_with(|| Instant::now() + Duration::from_millis(300));
            if Instant::now() >= until {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(Msg {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| k.to_vec()),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                            .collect()
                    })
                    .unwrap_or_default(),
                timestamp: m.timestamp(),
            }),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

pub fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expect: usize) -> Vec<Msg> {
    consume(
        bootstrap,
        topic,
        partitions,
        Offset::Beginning,
        expect,
        Duration::from_secs(30),
    )
}

/// Produces `values` to partition 0 of `topic` with an idempotent acks=all producer (all
/// enqueued at once, so librdkafka batches them) and fails the test unless every one is
/// acknowledged.
pub async fn produce_all(bootstrap: &str, topic: &str, values: &[String]) {
    produce_all_to(bootstrap, topic, 1, values).await
}

/// As `produce_all`, value i to partition i % `partitions`.
pub async fn produce_all_to(bootstrap: &str, topic: &str, partitions: i32, values: &[String]) {
    let producer = producer(
        bootstrap,
        &[("acks", "all"), ("enable.idempotence", "true")],
    );
    let sends: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let partition = i as i32 % partitions;
            producer
                .send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(v),
                )
                .unwrap_or_else(|(e, _)| panic!("{v} not enqueued: {e}"))
        })
        .collect();
    for (send, value) in sends.into_iter().zip(values) {
        send.await
            .expect("delivery future")
            .unwrap_or_else(|(e, _)| panic!("{value} not acknowledged: {e}"));
    }
}

/// One broker line of `chronik-server cluster status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBroker {
    pub port: u16,
    /// "alive", "fenced" or "shutting down".
    pub state: String,
    /// None when the controller did not answer ("epoch=?").
    pub epoch: Option<u64>,
}

/// The brokers section of `chronik-server cluster status` as `bootstrap` sees it, by id.
pub fn status_brokers(bootstrap: &str) -> Option<std::collections::BTreeMap<i32, StatusBroker>> {
    let out = std::process::Command::new(chronik_integration::server_bin())
        .args(["cluster", "status", "--bootstrap-server", bootstrap])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "  <id>  <host>:<port>  <state, one or two words>  epoch=<n>"
    text.split("brokers:")
        .nth(1)?
        .split("partitions:")
        .next()?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (rest, epoch) = l.trim().rsplit_once("epoch=")?;
            let mut words = rest.split_whitespace();
            let id = words.next()?.parse().ok()?;
            let port = words.next()?.rsplit_once(':')?.1.parse().ok()?;
            let state = words.collect::<Vec<_>>().join(" ");
            let broker = StatusBroker {
                port,
                state,
                epoch: epoch.parse().ok(),
            };
            Some((id, broker))
        })
        .collect()
}
