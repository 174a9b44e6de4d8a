//! Admin APIs through librdkafka's AdminClient and consumer, with their effects checked for real:
//! topic creation (validate-only, configs, errors), deletion (partition directories leave the
//! disk), partition growth, configs that are enforced (retention, max.message.bytes,
//! LogAppendTime), DeleteRecords, ListOffsets (earliest / latest / by timestamp) and topic
//! auto-creation on metadata.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chronik_integration::raw::exchange;
use chronik_integration::Broker;
use core_util::{admin, consume, consume_all, consumer, create_topic, opts, producer};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Timestamp;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(10);

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    values: &[Vec<u8>],
) -> Vec<i64> {
    // send_result enqueues at once (an un-polled `send` future would not), so batches form.
    let mut futures = Vec::new();
    for v in values {
        let record = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .payload(v.as_slice());
        futures.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    let mut offsets = Vec::new();
    for f in futures {
        offsets.push(
            f.await
                .unwrap()
                .map_err(|(e, _)| e)
                .expect("delivery")
                .offset,
        );
    }
    offsets
}

fn partition_dirs(broker: &Broker, topic: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(broker.data_dir().join("data"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit_once('-'))
                .is_some_and(|(t, i)| t == topic && i.parse::<u32>().is_ok())
        })
        .collect();
    dirs.sort();
    dirs
}

/// Partition count from a consumer's metadata request (which never asks for auto-creation).
fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let metadata = consumer(bootstrap)
        .fetch_metadata(Some(topic), T)
        .expect("metadata");
    let t = &metadata.topics()[0];
    match t.error() {
        None => Some(t.partitions().len()),
        Some(_) => None,
    }
}

async fn create_err(
    bootstrap: &str,
    topic: NewTopic<'_>,
    validate_only: bool,
) -> Option<RDKafkaErrorCode> {
    let results = admin(bootstrap)
        .create_topics([&topic], &opts().validate_only(validate_only))
        .await
        .expect("create_topics");
    results[0].as_ref().err().map(|(_, code)| *code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_validates_and_reports_errors() {
    // Auto-creation off, so a metadata lookup cannot create what validate-only did not.
    let broker = Broker::start_with(&["--auto-create-topics", "false"]);
    let b = broker.bootstrap();

    // validate-only: success, but nothing is created.
    let t = NewTopic::new("validated", 3, TopicReplication::Fixed(1)).set("retention.ms", "60000");
    assert_eq!(create_err(&b, t, true).await, None);
    assert_eq!(partition_count(&b, "validated"), None);
    assert!(partition_dirs(&broker, "validated").is_empty());
    let t = NewTopic::new("validated", 3, TopicReplication::Fixed(1));
    assert_eq!(
        create_err(&b, t, false).await,
        None,
        "validate-only must not have created it"
    );
    assert_eq!(partition_count(&b, "validated"), Some(3));
    assert_eq!(partition_dirs(&broker, "validated").len(), 3);

    // Duplicates.
    let t = NewTopic::new("validated", 1, TopicReplication::Fixed(1));
    assert_eq!(
        create_err(&b, t, false).await,
        Some(RDKafkaErrorCode::TopicAlreadyExists)
    );
    let t = NewTopic::new("validated", 1, TopicReplication::Fixed(1));
    assert_eq!(
        create_err(&b, t, true).await,
        Some(RDKafkaErrorCode::TopicAlreadyExists)
    );

    // Bad names.
    let long = "x".repeat(250);
    for name in ["bad name", "slash/topic", "..", ".", "ü", long.as_str()] {
        let t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        assert_eq!(
            create_err(&b, t, false).await,
            Some(RDKafkaErrorCode::InvalidTopic),
            "name {name:?}"
        );
    }
    // Bad partition counts and replication factors.
    let t = NewTopic::new("zero-partitions", 0, TopicReplication::Fixed(1));
    assert_eq!(
        create_err(&b, t, false).await,
        Some(RDKafkaErrorCode::InvalidPartitions)
    );
    let t = NewTopic::new("rf-three", 1, TopicReplication::Fixed(3));
    assert_eq!(
        create_err(&b, t, false).await,
        Some(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    // Bad configs: unknown names and bad values.
    for (k, v) in [
        ("no.such.config", "1"),
        ("retention.ms", "soon"),
        ("retention.ms", "-7"),
        ("cleanup.policy", "shred"),
        ("message.timestamp.type", "Whenever"),
        ("max.message.bytes", "99999999999"),
    ] {
        let t = NewTopic::new("bad-config", 1, TopicReplication::Fixed(1)).set(k, v);
        assert_eq!(
            create_err(&b, t, false).await,
            Some(RDKafkaErrorCode::InvalidConfig),
            "{k}={v}"
        );
    }
    for name in ["bad name", "zero-partitions", "rf-three", "bad-config"] {
        assert_eq!(partition_count(&b, name), None, "{name} must not exist");
    }

    // Configs given at creation are what DescribeConfigs reports.
    create_topic(
        &b,
        "configured",
        2,
        &[("retention.ms", "123456"), ("cleanup.policy", "delete")],
    )
    .await;
    let described = admin(&b)
        .describe_configs([&ResourceSpecifier::Topic("configured")], &opts())
        .await
        .unwrap();
    let resource = described[0].as_ref().expect("describe configs");
    let retention = resource
        .get("retention.ms")
        .expect("retention.ms described");
    assert_eq!(retention.value.as_deref(), Some("123456"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert!(!retention.is_default);
    let segment = resource
        .get("segment.bytes")
        .expect("segment.bytes described");
    assert!(segment.is_default);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_removes_the_data_from_disk() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "doomed", 3, &[]).await;
    let producer = producer(&b, &[]);
    for p in 0..3 {
        produce(&producer, "doomed", p, &[vec![1u8; 1000], vec![2u8; 1000]]).await;
    }
    assert_eq!(partition_dirs(&broker, "doomed").len(), 3);

    let results = admin(&b).delete_topics(&["doomed"], &opts()).await.unwrap();
    assert_eq!(results[0], Ok("doomed".to_string()));
    let deadline = Instant::now() + T;
    while !partition_dirs(&broker, "doomed").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        partition_dirs(&broker, "doomed").is_empty(),
        "partition dirs left on disk"
    );
    assert_eq!(partition_count(&b, "doomed"), None);
    // A client that still has it in its metadata cache does not bring it back by asking for
    // it with auto-creation allowed, right after the deletion.
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("doomed"))))]))
        .with_allow_auto_topic_creation(true);
    let answer: MetadataResponse = exchange(&b, ApiKey::Metadata, 12, &request).unwrap();
    assert_eq!(answer.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert_eq!(partition_count(&b, "doomed"), None);
    // CreateTopics may: a topic of the same name starts empty at offset 0.
    create_topic(&b, "doomed", 1, &[]).await;
    let low_high = consumer(&b).fetch_watermarks("doomed", 0, T).unwrap();
    assert_eq!(low_high, (0, 0));

    let results = admin(&b)
        .delete_topics(&["never-was"], &opts())
        .await
        .unwrap();
    assert_eq!(
        results[0],
        Err((
            "never-was".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_a_topic_and_never_shrinks_it() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "growing", 2, &[]).await;
    let results = admin(&b)
        .create_partitions([&NewPartitions::new("growing", 5)], &opts())
        .await
        .unwrap();
    assert_eq!(results[0], Ok("growing".to_string()));
    assert_eq!(partition_count(&b, "growing"), Some(5));
    assert_eq!(partition_dirs(&broker, "growing").len(), 5);
    let producer = producer(&b, &[]);
    assert_eq!(
        produce(&producer, "growing", 4, &[b"p4".to_vec()]).await,
        vec![0]
    );
    let read = consume_all(&b, "growing", 5, 1);
    assert_eq!(
        (read[0].partition, read[0].value.as_slice()),
        (4, b"p4".as_slice())
    );

    for count in [3, 5] {
        let results = admin(&b)
            .create_partitions([&NewPartitions::new("growing", count)], &opts())
            .await
            .unwrap();
        assert_eq!(
            results[0],
            Err(("growing".to_string(), RDKafkaErrorCode::InvalidPartitions)),
            "to {count}"
        );
    }
    let results = admin(&b)
        .create_partitions([&NewPartitions::new("no-such-topic", 3)], &opts())
        .await
        .unwrap();
    assert_eq!(
        results[0],
        Err((
            "no-such-topic".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
    assert_eq!(partition_count(&b, "growing"), Some(5));
}

async fn alter(b: &str, topic: &str, configs: &[(&str, &str)]) {
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in configs {
        change = change.set(k, v);
    }
    let results = admin(b).alter_configs([&change], &opts()).await.unwrap();
    assert!(results[0].is_ok(), "alter {configs:?}: {:?}", results[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_configs_are_described_and_enforced() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "altered", 1, &[]).await;
    let producer = producer(&b, &[("message.max.bytes", "5000000"), ("linger.ms", "0")]);
    assert_eq!(
        produce(&producer, "altered", 0, &[vec![0u8; 5000]]).await,
        vec![0]
    );

    alter(
        &b,
        "altered",
        &[
            ("max.message.bytes", "2000"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    let described = admin(&b)
        .describe_configs([&ResourceSpecifier::Topic("altered")], &opts())
        .await
        .unwrap();
    let resource = described[0].as_ref().unwrap();
    assert_eq!(
        resource.get("max.message.bytes").unwrap().value.as_deref(),
        Some("2000")
    );
    assert_eq!(
        resource
            .get("message.timestamp.type")
            .unwrap()
            .value
            .as_deref(),
        Some("LogAppendTime")
    );

    // max.message.bytes now refuses what it accepted before.
    let result = producer
        .send(
            FutureRecord::<[u8], [u8]>::to("altered")
                .partition(0)
                .payload(&[0u8; 5000][..]),
            Timeout::After(T),
        )
        .await;
    assert!(
        matches!(
            result,
            Err((
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                _
            ))
        ),
        "{:?}",
        result.map(|d| d.offset)
    );
    // LogAppendTime replaces the producer's timestamp.
    let record = FutureRecord::<[u8], [u8]>::to("altered")
        .partition(0)
        .payload(b"small")
        .timestamp(42);
    assert_eq!(
        producer
            .send(record, Timeout::After(T))
            .await
            .map_err(|(e, _)| e)
            .unwrap()
            .offset,
        1
    );
    let read = consume_all(&b, "altered", 1, 2);
    assert_eq!(read.len(), 2);
    assert!(matches!(read[1].timestamp, Timestamp::LogAppendTime(t) if t > 1_000_000_000_000));

    // Bad values are refused and change nothing. (rdkafka's alter_configs does not surface
    // per-resource errors, so the proof is that nothing changed.)
    let change = AlterConfig::new(ResourceSpecifier::Topic("altered")).set("retention.ms", "never");
    let _ = admin(&b).alter_configs([&change], &opts()).await.unwrap();
    let described = admin(&b)
        .describe_configs([&ResourceSpecifier::Topic("altered")], &opts())
        .await
        .unwrap();
    let resource = described[0].as_ref().unwrap();
    assert_eq!(
        resource.get("max.message.bytes").unwrap().value.as_deref(),
        Some("2000")
    );
    assert_eq!(
        resource.get("retention.ms").unwrap().value.as_deref(),
        Some("604800000")
    );
    assert!(resource.get("retention.ms").unwrap().is_default);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments_and_advances_the_log_start() {
    let broker = Broker::start_with(&["--log-retention-check-interval-ms", "200"]);
    let b = broker.bootstrap();
    create_topic(&b, "retained", 1, &[("segment.bytes", "2000")]).await;
    let producer = producer(&b, &[("linger.ms", "0"), ("compression.type", "none")]);
    // One batch per message (sent one at a time), 500 bytes each: a new segment every few.
    for i in 0..40u8 {
        produce(&producer, "retained", 0, &[vec![i; 500]]).await;
    }
    let c = consumer(&b);
    assert_eq!(c.fetch_watermarks("retained", 0, T).unwrap(), (0, 40));
    // Nothing expires under the default retention.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.fetch_watermarks("retained", 0, T).unwrap(), (0, 40));

    alter(
        &b,
        "retained",
        &[("segment.bytes", "2000"), ("retention.ms", "100")],
    )
    .await;
    let deadline = Instant::now() + T;
    let mut low = 0;
    while Instant::now() < deadline {
        low = c.fetch_watermarks("retained", 0, T).unwrap().0;
        if low > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(low > 30, "log start offset only at {low}");
    // A record stamped an hour ahead outlives retention.ms=100 (CreateTime retention).
    let future = FutureRecord::<[u8], [u8]>::to("retained")
        .partition(0)
        .payload(b"fresh")
        .timestamp(chrono_now_ms() + 3_600_000);
    let fresh = producer
        .send(future, Timeout::After(T))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(fresh.offset, 40);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (low, high) = c.fetch_watermarks("retained", 0, T).unwrap();
    assert!(
        low > 30 && low <= 40 && high == 41,
        "watermarks ({low}, {high})"
    );
    let read = consume(
        &b,
        "retained",
        1,
        Offset::Beginning,
        (high - low) as usize,
        T,
    );
    assert_eq!(read.len() as i64, high - low);
    assert_eq!(
        read[0].offset, low,
        "earliest read must start at the log start offset"
    );
    assert_eq!(read.last().unwrap().value, b"fresh");
    let segments = std::fs::read_dir(broker.data_dir().join("data/retained-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(
        segments <= 2,
        "{segments} segment files left after retention"
    );
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_offset() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "trimmed", 2, &[]).await;
    let producer = producer(&b, &[]);
    let values: Vec<Vec<u8>> = (0..100).map(|i| format!("v{i}").into_bytes()).collect();
    produce(&producer, "trimmed", 0, &values).await;
    produce(&producer, "trimmed", 1, &values[..10]).await;

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(40))
        .unwrap();
    tpl.add_partition_offset("trimmed", 1, Offset::End).unwrap();
    let result = admin(&b)
        .delete_records(&tpl, &opts())
        .await
        .expect("delete records");
    let low0 = result.find_partition("trimmed", 0).unwrap();
    assert_eq!(low0.error(), Ok(()));
    assert_eq!(low0.offset(), Offset::Offset(40));
    assert_eq!(
        result.find_partition("trimmed", 1).unwrap().offset(),
        Offset::Offset(10)
    );

    let c = consumer(&b);
    assert_eq!(c.fetch_watermarks("trimmed", 0, T).unwrap(), (40, 100));
    assert_eq!(c.fetch_watermarks("trimmed", 1, T).unwrap(), (10, 10));
    let read = consume(&b, "trimmed", 1, Offset::Beginning, 60, T);
    assert_eq!(read.len(), 60);
    assert_eq!(
        (read[0].offset, read[0].value.as_slice()),
        (40, b"v40".as_slice())
    );

    // Beyond the high watermark: refused, nothing moves.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trimmed", 0, Offset::Offset(500))
        .unwrap();
    let result = admin(&b).delete_records(&tpl, &opts()).await;
    let refused = match result {
        Err(_) => true,
        Ok(tpl) => tpl.find_partition("trimmed", 0).unwrap().error().is_err(),
    };
    assert!(refused, "DeleteRecords beyond the high watermark must fail");
    assert_eq!(c.fetch_watermarks("trimmed", 0, T).unwrap(), (40, 100));
    // And the log start survives a restart.
    drop(c);
    let mut broker = broker;
    broker.restart();
    assert_eq!(
        consumer(&b).fetch_watermarks("trimmed", 0, T).unwrap(),
        (40, 100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_earliest_latest_and_by_timestamp() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "timed", 1, &[]).await;
    let producer = producer(&b, &[("linger.ms", "0")]);
    let base = 1_700_000_000_000i64;
    for i in 0..10i64 {
        let record = FutureRecord::<[u8], [u8]>::to("timed")
            .partition(0)
            .payload(b"x")
            .timestamp(base + i * 1000);
        producer
            .send(record, Timeout::After(T))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let c = consumer(&b);
    assert_eq!(c.fetch_watermarks("timed", 0, T).unwrap(), (0, 10));
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("timed", 0, Offset::Offset(ts))
            .unwrap();
        let found = c.offsets_for_times(tpl, T).expect("offsets_for_times");
        found.find_partition("timed", 0).unwrap().offset()
    };
    assert_eq!(lookup(base - 5000), Offset::Offset(0));
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(lookup(base + 5500), Offset::Offset(6));
    assert_eq!(lookup(base + 9000), Offset::Offset(9));
    assert_eq!(lookup(base + 9001), Offset::End, "past the last timestamp");
    create_topic(&b, "empty", 1, &[]).await;
    assert_eq!(
        consumer(&b).fetch_watermarks("empty", 0, T).unwrap(),
        (0, 0)
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("empty", 0, Offset::Offset(base))
        .unwrap();
    let found = c.offsets_for_times(tpl, T).unwrap();
    assert_eq!(
        found.find_partition("empty", 0).unwrap().offset(),
        Offset::End
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_creates_topics_only_when_enabled() {
    let broker = Broker::start_with(&["--num-partitions", "3"]);
    let b = broker.bootstrap();
    // A consumer's metadata request does not ask for auto-creation; a producer's does.
    assert_eq!(partition_count(&b, "auto-made"), None);
    let p: BaseProducer = core_util::config(&b, &[]).create().unwrap();
    let metadata = p.client().fetch_metadata(Some("auto-made"), T).unwrap();
    assert_eq!(metadata.topics()[0].error(), None);
    assert_eq!(partition_count(&b, "auto-made"), Some(3));
    assert_eq!(partition_dirs(&broker, "auto-made").len(), 3);
    // An illegal name is not created.
    let metadata = p.client().fetch_metadata(Some("no good"), T).unwrap();
    assert_eq!(
        metadata.topics()[0].error(),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION)
    );

    let off = Broker::start_with(&["--auto-create-topics", "false"]);
    let p: BaseProducer = core_util::config(&off.bootstrap(), &[]).create().unwrap();
    let metadata = p.client().fetch_metadata(Some("not-made"), T).unwrap();
    assert_eq!(
        metadata.topics()[0].error(),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    );
    assert!(partition_dirs(&off, "not-made").is_empty());
}

/// `chronik-server users add` before the first start: the broker commits the credential to its
/// metadata log (DescribeUserScramCredentials lists it, the pending file is gone) and keeps it
/// across a restart.
#[test]
fn a_user_added_before_the_start_is_in_the_metadata_after_it() {
    use kafka_protocol::messages::{
        DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    };
    let mut broker = Broker::prepare(&[]);
    let password = broker.data_dir().join("pw.txt");
    std::fs::write(&password, "s3cret\n").unwrap();
    let added = std::process::Command::new(chronik_integration::server_bin())
        .args(["users", "add", "admin", "--mechanism", "SCRAM-SHA-256"])
        .arg("--password-file")
        .arg(&password)
        .args(["--iterations", "8192", "--data-dir"])
        .arg(broker.storage_dir())
        .output()
        .expect("running users add");
    assert!(added.status.success(), "{added:?}");
    let pending = broker.storage_dir().join("meta/pending-users.json");
    let stored = std::fs::read_to_string(&pending).unwrap();
    assert!(!stored.contains("s3cret"), "only salted forms are stored");
    // (user, error code, (mechanism, iterations) per credential)
    type Users = Vec<(String, i16, Vec<(i8, i32)>)>;
    let users = |broker: &Broker| -> Users {
        let response: DescribeUserScramCredentialsResponse = exchange(
            &broker.bootstrap(),
            ApiKey::DescribeUserScramCredentials,
            0,
            &DescribeUserScramCredentialsRequest::default(),
        )
        .expect("DescribeUserScramCredentials");
        assert_eq!(response.error_code, 0);
        response
            .results
            .iter()
            .map(|r| {
                let infos = r
                    .credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect();
                (r.user.to_string(), r.error_code, infos)
            })
            .collect()
    };
    for _ in 0..2 {
        broker.restart();
        assert_eq!(users(&broker), vec![("admin".into(), 0, vec![(1, 8192)])]);
        assert!(!pending.exists(), "committed, so no longer pending");
    }
}
