//! librdkafka client settings and the few admin calls every mode shares: topic
//! create/delete, partition lists and high watermarks.
//!
//! librdkafka's metadata and watermark calls block, so they run on `spawn_blocking`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::ThreadedProducer;
use rdkafka::types::RDKafkaErrorCode;

use crate::cli::Args;
use crate::client_log::BenchContext;
use crate::delivery::Reports;

/// Time allowed for one metadata / watermark / admin request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Settings shared by every client.
pub fn base_config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap_servers)
        .set("client.id", "chronik-bench");
    c
}

/// A producer with its polling thread, reporting deliveries to `reports`. No
/// idempotence, so the broker sees plain produce requests; a retried batch may then be
/// stored twice, which `--validate` reports as duplicates.
pub fn producer(args: &Args, reports: Reports) -> Result<ThreadedProducer<Reports>> {
    let outstanding = u64::from(args.concurrency) * u64::from(args.in_flight);
    // librdkafka's local queue must hold everything the tasks keep outstanding, or
    // the bench would measure its own queue-full retries.
    let queue = outstanding.clamp(100_000, 10_000_000);
    base_config(args)
        .set("acks", args.acks.as_librdkafka())
        .set("compression.type", args.compression.as_librdkafka())
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", args.message_timeout_ms.to_string())
        .set("queue.buffering.max.messages", queue.to_string())
        .create_with_context(reports)
        .context("creating the librdkafka producer")
}

/// Consumer settings. `group` is the group to subscribe with; without one the
/// consumer only `assign`s, but librdkafka refuses `assign` without any group.id
/// ("Local: Unknown group"), so it gets a private one it never joins or commits to.
pub fn consumer_config(args: &Args, group: Option<&str>) -> ClientConfig {
    let mut c = base_config(args);
    c.set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    match group {
        Some(g) => c.set("group.id", g),
        None => c.set(
            "group.id",
            format!("chronik-bench-assign-{}", std::process::id()),
        ),
    };
    c
}

pub fn admin(args: &Args) -> Result<AdminClient<BenchContext>> {
    base_config(args)
        .create_with_context(BenchContext)
        .context("creating the librdkafka admin client")
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// Creates `topic`; returns false if it already existed.
pub async fn create_topic(
    admin: &AdminClient<BenchContext>,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<bool> {
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let results = admin
        .create_topics([&new], &admin_options())
        .await
        .with_context(|| format!("CreateTopics {topic}"))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
        Some(Err((name, code))) => bail!("CreateTopics {name}: broker answered {code:?}"),
        None => bail!("CreateTopics {topic}: empty response"),
    }
}

pub async fn delete_topic(admin: &AdminClient<BenchContext>, topic: &str) -> Result<()> {
    let results = admin
        .delete_topics(&[topic], &admin_options())
        .await
        .with_context(|| format!("DeleteTopics {topic}"))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((name, code))) => bail!("DeleteTopics {name}: broker answered {code:?}"),
        None => bail!("DeleteTopics {topic}: empty response"),
    }
}

/// Partition ids of `topic` per a Metadata request, or an error if it has none.
pub fn partitions_blocking(consumer: &BaseConsumer<BenchContext>, topic: &str) -> Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .with_context(|| format!("Metadata request for {topic}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("Metadata response does not list topic {topic}"))?;
    if let Some(err) = t.error() {
        bail!(
            "Metadata for {topic}: broker answered {:?}",
            RDKafkaErrorCode::from(err)
        );
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    if ids.is_empty() {
        bail!("Metadata for {topic}: no partitions");
    }
    Ok(ids)
}

/// (low, high) watermark of each partition, in the order of `partitions`.
pub fn watermarks_blocking(
    consumer: &BaseConsumer<BenchContext>,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i64, i64)>> {
    partitions
        .iter()
        .map(|&p| {
            consumer
                .fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                .with_context(|| format!("ListOffsets for {topic}/{p}"))
        })
        .collect()
}

/// Partitions and high watermarks, fetched off the async runtime.
pub async fn partitions_and_watermarks(
    args: &Args,
    topic: &str,
) -> Result<(Vec<i32>, Vec<(i64, i64)>)> {
    let consumer: Arc<BaseConsumer<BenchContext>> = Arc::new(
        consumer_config(args, None)
            .create_with_context(BenchContext)
            .context("creating the librdkafka consumer")?,
    );
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let parts = partitions_blocking(&consumer, &topic)?;
        let marks = watermarks_blocking(&consumer, &topic, &parts)?;
        Ok((parts, marks))
    })
    .await?
}
