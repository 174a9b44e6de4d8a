//! Storage that fails safe, against real `chronik-server` processes and librdkafka clients:
//! - a deleted topic re-created under the same name starts empty, even when a crash cut the
//!   deletion short and left the old directory in place;
//! - a partition that cannot be opened is offline (KAFKA_STORAGE_ERROR) while the rest serve;
//! - a full disk refuses writes without losing or inventing acknowledged data, and writes
//!   resume once there is space again (needs root for a tmpfs; skipped with a message if not);
//! - kill -9 under an idempotent producer's retries loses and duplicates nothing.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use chronik_integration::{Broker, Tmpfs};
use core_util::{admin, config, create_topic, opts};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer,
    ProducerContext,
};
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const KAFKA_STORAGE_ERROR: i16 = 56;
const T: Duration = Duration::from_secs(30);

/// An acks=all producer that reports every failure instead of retrying it.
fn strict_producer(bootstrap: &str) -> FutureProducer {
    config(
        bootstrap,
        &[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("enable.idempotence", "false"),
            ("message.send.max.retries", "0"),
            ("message.timeout.ms", "15000"),
        ],
    )
    .create()
    .expect("producer")
}

async fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    value: &[u8],
) -> Result<i64, KafkaError> {
    let record = FutureRecord::<(), [u8]>::to(topic)
        .partition(partition)
        .payload(value);
    producer
        .send(record, Timeout::After(T))
        .await
        .map(|delivered| delivered.offset)
        .map_err(|(e, _)| e)
}

/// Everything stored in one partition from offset 0, as (offset, value), read by assignment
/// (the group id is required but never joined nor committed to) until `expect` records arrived
/// (then a little longer) or `timeout` passed. Consumer errors are printed, not fatal: some
/// tests read while the broker is unhappy.
fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    expect: usize,
    timeout: Duration,
) -> Vec<(i64, Vec<u8>)> {
    let consumer: BaseConsumer = config(
        bootstrap,
        &[
            ("group.id", "storage-safety-reader"),
            ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "100"),
        ],
    )
    .create()
    .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    while Instant::now() < deadline {
        if out.len() >= expect {
            let until =
                *settle_until.get_or_insert_with(|| Instant::now() + Duration::from_millis(300));
            if Instant::now() >= until {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push((m.offset(), m.payload().unwrap_or_default().to_vec())),
            Some(Err(e)) => eprintln!("consumer error on {topic}-{partition}: {e}"),
            None => {}
        }
    }
    out
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Directories moved aside for deletion and not removed yet.
fn delete_dirs(storage: &Path) -> Vec<String> {
    std::fs::read_dir(storage)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-delete"))
        .collect()
}

/// One request over a fresh connection, decoded (hand-built, to see exact error codes).
fn call<Req: Encodable, Resp: Decodable>(
    bootstrap: &str,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let mut stream = TcpStream::connect(bootstrap).expect("connect");
    stream.set_read_timeout(Some(T)).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("storage-safety")));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, key.request_header_version(version))
        .unwrap();
    request.encode(&mut frame, version).unwrap();
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&frame).unwrap();

    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("response body");
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    Resp::decode(&mut body, version).expect("decode response")
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn fetch_error(bootstrap: &str, topic: &str) -> i16 {
    let request = FetchRequest::default()
        .with_max_wait_ms(10)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = call(bootstrap, ApiKey::Fetch, 11, &request);
    response.responses[0].partitions[0].error_code
}

fn list_offsets_error(bootstrap: &str, topic: &str) -> i16 {
    let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(-1)])]);
    let response: ListOffsetsResponse = call(bootstrap, ApiKey::ListOffsets, 5, &request);
    response.topics[0].partitions[0].error_code
}

/// (topic error, partition error, offline replicas) of partition 0.
fn metadata_of(bootstrap: &str, topic: &str) -> (i16, i16, Vec<i32>) {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = call(bootstrap, ApiKey::Metadata, 9, &request);
    let t = &response.topics[0];
    let p = &t.partitions[0];
    (
        t.error_code,
        p.error_code,
        p.offline_replicas.iter().map(|b| b.0).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topic_recreated_under_its_name_starts_empty() {
    let mut broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "phoenix", 2, &[]).await;
    let old = strict_producer(&b);
    for p in 0..2 {
        for i in 0..20 {
            send(&old, "phoenix", p, format!("old-{i}").as_bytes())
                .await
                .expect("old record");
        }
    }
    drop(old);

    let deleted = admin(&b)
        .delete_topics(&["phoenix"], &opts())
        .await
        .unwrap();
    assert_eq!(deleted[0], Ok("phoenix".to_string()));
    create_topic(&b, "phoenix", 2, &[]).await;
    let new = strict_producer(&b);
    for p in 0..2 {
        for i in 0..5 {
            let offset = send(&new, "phoenix", p, format!("new-{i}").as_bytes())
                .await
                .expect("new record");
            assert_eq!(offset, i, "the new topic starts at offset 0");
        }
    }
    let expected: Vec<(i64, Vec<u8>)> = (0..5)
        .map(|i| (i, format!("new-{i}").into_bytes()))
        .collect();
    for p in 0..2 {
        assert_eq!(read_partition(&b, "phoenix", p, 5, T), expected);
    }
    // The old directories were renamed at once and are removed in the background.
    let storage = broker.storage_dir();
    wait_until(T, "deleted directories are removed", || {
        delete_dirs(&storage).is_empty()
    });

    // A deletion interrupted before its removal finished is completed at the next start.
    broker.stop();
    let leftover = storage.join("phoenix-0.00000000000000000000000000000000-delete");
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("00000000000000000000.log"), b"old").unwrap();
    broker.restart();
    wait_until(T, "the leftover directory is removed", || {
        !leftover.exists()
    });
    for p in 0..2 {
        assert_eq!(read_partition(&b, "phoenix", p, 5, T), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_cut_short_by_a_crash_does_not_resurrect_old_data() {
    let mut broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "ghost", 1, &[]).await;
    let old = strict_producer(&b);
    for i in 0..5 {
        send(&old, "ghost", 0, format!("old-{i}").as_bytes())
            .await
            .expect("old record");
    }
    drop(old);
    // A crash right after the deletion was committed to the metadata log and before the
    // partition directory was moved aside: the image no longer has the topic, `ghost-0`
    // still holds its data. Recreated here by putting a copy of the directory back.
    let dir = broker.storage_dir().join("ghost-0");
    let copy = broker.storage_dir().join("ghost-copy");
    copy_dir(&dir, &copy);
    let deleted = admin(&b)
        .delete_topics(&["ghost"], &opts())
        .await
        .expect("delete_topics request");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    broker.kill();
    wait_until(T, "the deleted directory is gone", || !dir.exists());
    std::fs::rename(&copy, &dir).unwrap();
    broker.restart();
    assert!(broker.storage_dir().join("ghost-0").exists());

    create_topic(&b, "ghost", 1, &[]).await;
    let new = strict_producer(&b);
    assert_eq!(send(&new, "ghost", 0, b"new-0").await, Ok(0));
    assert_eq!(
        read_partition(&b, "ghost", 0, 1, T),
        vec![(0, b"new-0".to_vec())]
    );
    let storage = broker.storage_dir();
    wait_until(T, "the old incarnation is removed", || {
        delete_dirs(&storage).is_empty()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_cannot_be_opened_is_offline_and_the_rest_serve() {
    let mut broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "good", 1, &[]).await;
    create_topic(&b, "bad", 1, &[]).await;
    let producer = strict_producer(&b);
    for topic in ["good", "bad"] {
        for i in 0..10 {
            send(&producer, topic, 0, format!("{topic}-{i}").as_bytes())
                .await
                .expect("record before the corruption");
        }
    }
    drop(producer);
    broker.stop();
    let bad = broker.storage_dir().join("bad-0");
    std::fs::write(bad.join("leader-epoch-checkpoint"), "not a checkpoint\n").unwrap();
    std::fs::write(bad.join("log-start-offset"), "not an offset\n").unwrap();
    broker.restart();

    let log = broker.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("bad-0") && l.contains("offline")),
        "no clear warning naming the offline partition; log:\n{log}"
    );

    // The other topic is readable and writable.
    let read = read_partition(&b, "good", 0, 10, T);
    let expected: Vec<(i64, Vec<u8>)> = (0..10)
        .map(|i| (i, format!("good-{i}").into_bytes()))
        .collect();
    assert_eq!(read, expected);
    let producer = strict_producer(&b);
    assert_eq!(send(&producer, "good", 0, b"good-10").await, Ok(10));

    // The bad one answers KAFKA_STORAGE_ERROR to Produce, Fetch and ListOffsets, and Metadata
    // still lists it, with its replica offline.
    match send(&producer, "bad", 0, b"lost?").await {
        Err(KafkaError::MessageProduction(code)) => {
            assert_eq!(code, RDKafkaErrorCode::KafkaStorageError)
        }
        other => panic!("produce to an offline partition: {other:?}"),
    }
    assert_eq!(fetch_error(&b, "bad"), KAFKA_STORAGE_ERROR);
    assert_eq!(list_offsets_error(&b, "bad"), KAFKA_STORAGE_ERROR);
    assert_eq!(fetch_error(&b, "good"), 0);
    assert_eq!(list_offsets_error(&b, "good"), 0);
    let (topic_error, partition_error, offline) = metadata_of(&b, "bad");
    assert_eq!((topic_error, partition_error), (0, 0));
    assert_eq!(offline, vec![1]);
    assert_eq!(metadata_of(&b, "good").2, Vec::<i32>::new());
    assert!(broker.is_running());
}

/// The value of the disk-full test's record `id`: 4 KiB, so 8 MiB fill up quickly.
fn big_value(id: u64) -> Vec<u8> {
    let mut value = format!("v{id:010}-").into_bytes();
    value.resize(4096, b'x');
    value
}

/// Reads the partition and checks that every acknowledged (offset, id) is stored there intact.
fn assert_all_acknowledged_stored(bootstrap: &str, acked: &[(i64, u64)], when: &str) {
    let expect = acked
        .iter()
        .map(|(o, _)| *o as usize + 1)
        .max()
        .unwrap_or(0);
    let stored: BTreeMap<i64, Vec<u8>> = read_partition(bootstrap, "full", 0, expect, T)
        .into_iter()
        .collect();
    eprintln!(
        "{when}: {} acknowledged, {} stored",
        acked.len(),
        stored.len()
    );
    for (offset, id) in acked {
        assert!(
            stored.get(offset) == Some(&big_value(*id)),
            "{when}: acknowledged record {id} at offset {offset} is missing or different"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_acknowledged_data_and_recovers() {
    let mut broker = Broker::prepare(&["--offsets-topic-num-partitions", "1"]);
    let disk = match Tmpfs::mount(&broker.storage_dir(), 8) {
        Ok(disk) => disk,
        Err(e) => {
            eprintln!(
                "SKIPPED a_full_disk_refuses_writes...: cannot mount a tmpfs ({e}); needs root"
            );
            return;
        }
    };
    broker.restart();
    let b = broker.bootstrap();
    create_topic(&b, "full", 1, &[("segment.bytes", "1048576")]).await;
    // The reader's group id makes the broker create __consumer_offsets: do it while there is room.
    read_partition(&b, "full", 0, 0, Duration::from_secs(2));
    let offsets_dir = broker.storage_dir().join("__consumer_offsets-0");
    wait_until(T, "__consumer_offsets exists", || offsets_dir.exists());
    let producer = strict_producer(&b);

    // Fill the disk, in windows of concurrent sends, until refusals keep coming.
    let mut acked: Vec<(i64, u64)> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut next_id = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while errors.len() < 256 && Instant::now() < deadline {
        let mut window = Vec::new();
        for _ in 0..64 {
            let value = big_value(next_id);
            let record = FutureRecord::<(), [u8]>::to("full")
                .partition(0)
                .payload(&value);
            let delivery = producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueue");
            window.push((next_id, delivery));
            next_id += 1;
        }
        for (id, delivery) in window {
            match delivery.await {
                Ok(Ok(delivered)) => acked.push((delivered.offset, id)),
                Ok(Err((e, _))) => errors.push(e.to_string()),
                Err(_) => errors.push("delivery canceled".into()),
            }
        }
    }
    let distinct: HashSet<&String> = errors.iter().collect();
    eprintln!(
        "sent {next_id}, acknowledged {}, refused {}: {distinct:?}",
        acked.len(),
        errors.len()
    );
    assert!(!errors.is_empty(), "8 MiB never filled up");
    assert!(
        broker.is_running(),
        "the broker died on a full disk; log:\n{}",
        broker.log()
    );
    assert_all_acknowledged_stored(&b, &acked, "disk full");

    // Take the last free bytes too, so no metadata file fits: creating a topic must fail and
    // leave no trace, not half-exist until a restart.
    fill(&broker.storage_dir().join("filler"));
    let created = admin(&b)
        .create_topics(
            [&NewTopic::new("while-full", 1, TopicReplication::Fixed(1))],
            &opts(),
        )
        .await
        .expect("create_topics request");
    // The metadata log is append-only and may still have room in its last page: then the
    // topic is committed whole and its partition, which this disk cannot hold, is offline
    // (KAFKA_STORAGE_ERROR) as in Kafka. Refused, it must leave no trace.
    if created[0].is_err() {
        assert!(!topic_listed(&b, "while-full"), "a refused topic is listed");
    } else {
        eprintln!("CreateTopics committed on a full disk; its partition is offline");
    }

    // Space again: writes resume (the first tries may still hit the old failure).
    disk.resize(64).expect("growing the tmpfs");
    let resumed_at = Instant::now();
    let mut resumed = false;
    while !resumed && resumed_at.elapsed() < T {
        let id = next_id;
        next_id += 1;
        match send(&producer, "full", 0, &big_value(id)).await {
            Ok(offset) => {
                acked.push((offset, id));
                resumed = true;
            }
            Err(e) => {
                eprintln!("after growing the disk: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(
        resumed,
        "writes did not resume within {T:?} after the disk grew; log tail:\n{}",
        log_tail(&broker)
    );
    for _ in 0..20 {
        let id = next_id;
        next_id += 1;
        let offset = send(&producer, "full", 0, &big_value(id))
            .await
            .expect("write after the disk grew");
        acked.push((offset, id));
    }
    assert_all_acknowledged_stored(&b, &acked, "after growing");
    // The refused CreateTopics timed out uncommitted; with space again the metadata log takes
    // it, whole (a request that timed out may still be applied, as in Kafka).
    let created = admin(&b)
        .create_topics(
            [&NewTopic::new("while-full", 1, TopicReplication::Fixed(1))],
            &opts(),
        )
        .await
        .expect("create_topics request");
    match &created[0] {
        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
        Err(e) => panic!("creating while-full after the disk grew: {e:?}"),
    }
    wait_until(T, "while-full is listed", || topic_listed(&b, "while-full"));

    // And everything acknowledged survives kill -9.
    drop(producer);
    broker.kill();
    broker.restart();
    assert_all_acknowledged_stored(&b, &acked, "after kill -9 and restart");
    broker.kill();
    drop(disk);
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler file");
    let block = vec![0u8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    // Partial pages: finish byte by byte.
    while file.write_all(&[0]).is_ok() {}
}

fn topic_listed(bootstrap: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = config(bootstrap, &[]).create().expect("client");
    let metadata = consumer.fetch_metadata(None, T).expect("metadata");
    metadata.topics().iter().any(|t| t.name() == topic)
}

fn log_tail(broker: &Broker) -> String {
    let log = broker.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Every delivery report of the idempotent stream: acknowledged (partition, offset, number),
/// and failures.
#[derive(Clone, Default)]
struct Deliveries {
    acked: Arc<Mutex<Vec<(i32, i64, u64)>>>,
    failed: Arc<Mutex<Vec<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let number = std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .trim_start_matches('n')
                    .parse()
                    .unwrap();
                self.acked
                    .lock()
                    .unwrap()
                    .push((m.partition(), m.offset(), number));
            }
            Err((e, _)) => self.failed.lock().unwrap().push(e.to_string()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_an_idempotent_producer_loses_and_duplicates_nothing() {
    let mut broker = Broker::start();
    let b = broker.bootstrap();
    let partitions = 2;
    create_topic(&b, "idem", partitions, &[]).await;
    let deliveries = Deliveries::default();
    let producer: BaseProducer<Deliveries> = config(
        &b,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "2"),
            // Long enough to keep retrying across the restart.
            ("message.timeout.ms", "60000"),
            ("retry.backoff.ms", "50"),
            ("reconnect.backoff.ms", "50"),
            ("reconnect.backoff.max.ms", "500"),
        ],
    )
    .create_with_context(deliveries.clone())
    .expect("producer");

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let payload = format!("n{sent}");
                let record = BaseRecord::<(), str>::to("idem")
                    .partition((sent % partitions as u64) as i32)
                    .payload(payload.as_str());
                match producer.send(record) {
                    Ok(()) => sent += 1,
                    // Queue full: let deliveries drain, then send the same number again.
                    Err(_) => {
                        producer.poll(Duration::from_millis(5));
                    }
                }
                producer.poll(Duration::ZERO);
                if sent.is_multiple_of(100) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            let flushed = producer.flush(Duration::from_secs(90));
            (sent, flushed)
        })
    };
    let acked_count = || deliveries.acked.lock().unwrap().len();

    wait_until(T, "3000 records are acknowledged", || acked_count() >= 3000);
    broker.kill();
    let acked_at_kill = acked_count();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    broker.restart();
    let acked_at_restart = acked_count();
    let progressed = Instant::now();
    while acked_count() < acked_at_restart + 3000 && progressed.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, flushed) = tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    let acked = deliveries.acked.lock().unwrap().clone();
    let failed = deliveries.failed.lock().unwrap().clone();
    eprintln!(
        "sent {sent}, acknowledged {} ({acked_at_kill} at kill, {acked_at_restart} at restart), \
         failed {}, flush {flushed:?}",
        acked.len(),
        failed.len()
    );
    if !failed.is_empty() {
        let distinct: HashSet<&String> = failed.iter().collect();
        eprintln!("failures: {distinct:?}");
    }
    assert!(
        acked.len() >= acked_at_restart + 3000,
        "the producer did not recover after the restart"
    );

    let mut seen = HashSet::new();
    for p in 0..partitions {
        let expect = acked.iter().filter(|(q, _, _)| *q == p).count();
        let stored = read_partition(&b, "idem", p, expect, T);
        let offsets: Vec<i64> = stored.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            offsets,
            (0..stored.len() as i64).collect::<Vec<_>>(),
            "partition {p}: offsets not contiguous from 0"
        );
        let numbers: Vec<u64> = stored
            .iter()
            .map(|(_, v)| {
                std::str::from_utf8(v).unwrap()[1..]
                    .parse()
                    .expect("a numbered value")
            })
            .collect();
        for n in &numbers {
            assert!(seen.insert(*n), "n{n} stored twice");
        }
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "partition {p}: the stream's order was not preserved"
        );
        for (q, offset, number) in acked.iter().filter(|(q, _, _)| *q == p) {
            assert_eq!(
                numbers.get(*offset as usize),
                Some(number),
                "acknowledged n{number} at {q}/{offset} lost or moved"
            );
        }
    }
}

/// Copies a directory's files (one level: a partition directory).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
