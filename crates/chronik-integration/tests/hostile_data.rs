//! Hostile and broken data against a real broker process: compression bombs, batches that lie
//! about their record count, writes to and deletion of `__consumer_offsets`, a poison record in
//! it across a restart, and compaction of a large partition under load. Raw frames where
//! librdkafka would refuse to send the bytes. Each case reads the broker's peak RSS (`VmHWM`)
//! and checks it against a bound, and ends with a normal librdkafka round trip.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use chronik_integration::raw::exchange;
use chronik_integration::Broker;
use chronik_storage::fs::RealFs;
use chronik_storage::{Log, LogConfig};
use kafka_protocol::compression::{Compressor, Zstd};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_RECORD: i16 = 87;
/// The broker's peak RSS must stay under this in every case (a debug build idles at ~30 MiB).
const RSS_BOUND_KIB: u64 = 300 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

fn create_topic(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    for r in runtime()
        .block_on(admin(bootstrap).create_topics(&[new], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }
}

/// Asserts the broker's resident peak so far is under the bound; returns it in MiB.
fn check_memory(broker: &Broker, case: &str) -> u64 {
    let peak = broker.memory_kib("VmHWM").expect("broker RSS");
    assert!(
        peak < RSS_BOUND_KIB,
        "{case}: broker peak RSS {} MiB over {} MiB",
        peak / 1024,
        RSS_BOUND_KIB / 1024
    );
    println!("{case}: broker peak RSS {} MiB", peak / 1024);
    peak / 1024
}

/// A normal client still produces to and reads back from a fresh topic.
fn round_trip(broker: &Broker, topic: &str) {
    let bootstrap = broker.bootstrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let rt = runtime();
    let delivery = rt
        .block_on(producer.send(
            FutureRecord::to(topic).key("k").payload("still serving"),
            Duration::from_secs(10),
        ))
        .map_err(|(e, _)| e)
        .unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("rt-{topic}"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, delivery.partition, Offset::Offset(delivery.offset))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            assert_eq!(m.payload(), Some(&b"still serving"[..]));
            return;
        }
    }
    panic!("round trip on {topic}: nothing read back");
}

/// How many segments the partition directory `dir` holds.
fn segment_count(broker: &Broker, dir: &str) -> usize {
    std::fs::read_dir(broker.storage_dir().join(dir))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

/// One keyed record in the v2 record encoding (offset delta `delta`).
fn encode_record(out: &mut BytesMut, delta: i64, key: &[u8], value: &[u8]) {
    fn varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let mut body = vec![0u8]; // attributes
    varint(&mut body, 0); // timestamp delta
    varint(&mut body, delta);
    varint(&mut body, key.len() as i64);
    body.extend_from_slice(key);
    varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    varint(&mut body, 0); // headers
    let mut len = Vec::new();
    varint(&mut len, body.len() as i64);
    out.put_slice(&len);
    out.put_slice(&body);
}

/// A RecordBatch v2 around `payload` with the given attributes and record count.
fn batch(attributes: i16, count: i32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((49 + payload.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(attributes);
    b.put_i32(count - 1);
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// A zstd batch of 4,096 keyed records of 64 KiB (256 MiB inflated), ~100 KiB on the wire.
fn zstd_bomb() -> Bytes {
    let value = vec![b'a'; 64 << 10];
    let mut raw = BytesMut::new();
    let mut count = 0;
    while raw.len() < 256 << 20 {
        encode_record(&mut raw, count, b"bomb-key", &value);
        count += 1;
    }
    let mut compressed = BytesMut::new();
    Zstd::compress(&mut compressed, |b: &mut BytesMut| {
        *b = raw.split();
        Ok(())
    })
    .unwrap();
    assert!(compressed.len() < 1 << 20, "{}", compressed.len());
    batch(4, count as i32, &compressed)
}

fn produce_raw(broker: &Broker, topic: &str, records: Bytes) -> i16 {
    produce_raw_with_message(broker, topic, records).0
}

/// Produce v9 (which carries an error message): (error code, message).
fn produce_raw_with_message(broker: &Broker, topic: &str, records: Bytes) -> (i16, String) {
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response: ProduceResponse =
        exchange(&broker.bootstrap(), ApiKey::Produce, 9, &request).unwrap();
    let p = &response.responses[0].partition_responses[0];
    let message = p.error_message.as_ref().map(|m| m.to_string());
    (p.error_code, message.unwrap_or_default())
}

/// ListOffsets for `timestamp` (-1 latest): (error, offset).
fn list_offset(broker: &Broker, topic: &str, timestamp: i64) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse =
        exchange(&broker.bootstrap(), ApiKey::ListOffsets, 5, &request).unwrap();
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset)
}

#[test]
fn a_zstd_bomb_is_refused_and_listoffsets_inflates_within_the_bound() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    create_topic(
        &bootstrap,
        "bomb-compacted",
        &[("cleanup.policy", "compact")],
    );
    create_topic(&bootstrap, "bomb-plain", &[]);
    let bomb = zstd_bomb();

    let started = Instant::now();
    assert_eq!(
        produce_raw(&broker, "bomb-compacted", bomb.clone()),
        INVALID_RECORD
    );
    assert_eq!(
        produce_raw(&broker, "bomb-plain", bomb.clone()),
        INVALID_RECORD
    );
    println!("two bombs refused in {:?}", started.elapsed());
    // Nothing was stored, so no offset was consumed.
    assert_eq!(list_offset(&broker, "bomb-compacted", -1), (0, 0));
    assert_eq!(list_offset(&broker, "bomb-plain", -1), (0, 0));
    assert_eq!(list_offset(&broker, "bomb-plain", 0), (0, -1));
    check_memory(&broker, "zstd bomb produced");

    // A bomb already in a log (written before this check existed): ListOffsets by timestamp
    // inflates it within the bound, off the partition lock, and still answers.
    broker.stop();
    let dir = broker.storage_dir().join("bomb-plain-0");
    let mut log = Log::open(&RealFs::shared(), &dir, LogConfig::default()).unwrap();
    let epoch = log.latest_epoch().unwrap_or(0);
    log.append(&mut bomb.to_vec(), epoch, 1_700_000_000_000)
        .unwrap();
    log.close().unwrap();
    broker.restart();
    let started = Instant::now();
    assert_eq!(
        list_offset(&broker, "bomb-plain", 1_700_000_000_000),
        (0, 0)
    );
    println!(
        "ListOffsets over the stored bomb in {:?}",
        started.elapsed()
    );
    check_memory(&broker, "ListOffsets by timestamp over a stored bomb");
    round_trip(&broker, "bomb-plain");
    round_trip(&broker, "after-bomb");
}

#[test]
fn a_batch_claiming_two_billion_records_is_refused() {
    let broker = Broker::start();
    create_topic(&broker.bootstrap(), "liar", &[]);
    let mut records = BytesMut::new();
    encode_record(&mut records, 0, b"k", b"v");
    // 61-byte header + one record, claiming i32::MAX records (lastOffsetDelta to match).
    let lie = batch(0, i32::MAX, &records);
    assert!(lie.len() < 80);
    let started = Instant::now();
    assert_eq!(produce_raw(&broker, "liar", lie), INVALID_RECORD);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The same lie, compressed: refused as fast, nothing inflated past the bound.
    let mut compressed = BytesMut::new();
    Zstd::compress(&mut compressed, |b: &mut BytesMut| {
        b.put_slice(&records);
        Ok(())
    })
    .unwrap();
    assert_eq!(
        produce_raw(&broker, "liar", batch(4, i32::MAX, &compressed)),
        INVALID_RECORD
    );
    // No offsets consumed, no segment rolled.
    assert_eq!(list_offset(&broker, "liar", -1), (0, 0));
    let segments = segment_count(&broker, "liar-0");
    assert_eq!(segments, 1);
    check_memory(&broker, "batch claiming 2^31 records");
    round_trip(&broker, "liar");
}

/// Counts rebalances, so a test can tell that none happened after the first.
#[derive(Default)]
struct Counting {
    assignments: AtomicUsize,
}

impl ClientContext for Counting {}
impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.assignments.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer<Counting> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create_with_context(Counting::default())
        .unwrap()
}

/// Commits `offset` for `group` on `topic`-0 through a real group member.
fn commit(bootstrap: &str, group: &str, topic: &str, offset: i64) {
    let consumer = group_consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

fn committed(bootstrap: &str, group: &str, topic: &str) -> Offset {
    let consumer = group_consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    got.find_partition(topic, 0).unwrap().offset()
}

#[test]
fn consumer_offsets_is_the_brokers_own() {
    let mut broker = Broker::start_with(&["--offsets-topic-num-partitions", "1"]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", &[]);
    commit(&bootstrap, "g1", "orders", 42);

    // Clients may not write it, delete it, or change its partition count.
    let mut records = BytesMut::new();
    encode_record(&mut records, 0, b"\x00\x02\x00\x01x", b"junk");
    assert_eq!(
        produce_raw(&broker, "__consumer_offsets", batch(0, 1, &records)),
        INVALID_TOPIC_EXCEPTION
    );
    let rt = runtime();
    let admin = admin(&bootstrap);
    let deleted = rt
        .block_on(admin.delete_topics(&["__consumer_offsets"], &AdminOptions::new()))
        .unwrap();
    assert!(
        matches!(deleted[0], Err((_, RDKafkaErrorCode::InvalidTopic))),
        "{deleted:?}"
    );
    let grown = rt
        .block_on(admin.create_partitions(
            &[NewPartitions::new("__consumer_offsets", 3)],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(
        matches!(grown[0], Err((_, RDKafkaErrorCode::InvalidTopic))),
        "{grown:?}"
    );
    assert_eq!(committed(&bootstrap, "g1", "orders"), Offset::Offset(42));
    check_memory(&broker, "internal topic protected");

    // A poison record (its key claims a 256-byte group name it does not hold) written into
    // the log while the broker is down: the coordinator skips it, warns, loads the rest.
    broker.stop();
    let dir = broker.storage_dir().join("__consumer_offsets-0");
    let mut log = Log::open(&RealFs::shared(), &dir, LogConfig::default()).unwrap();
    let mut poison = BytesMut::new();
    encode_record(&mut poison, 0, b"\x00\x02\x01\x00x", b"\x00\x03garbage");
    let epoch = log.latest_epoch().unwrap_or(0);
    log.append(&mut batch(0, 1, &poison).to_vec(), epoch, 1_700_000_000_000)
        .unwrap();
    log.close().unwrap();
    broker.restart();
    assert!(
        broker
            .log()
            .contains("skipping an undecodable __consumer_offsets record"),
        "{}",
        broker.log()
    );
    assert_eq!(committed(&bootstrap, "g1", "orders"), Offset::Offset(42));
    commit(&bootstrap, "g1", "orders", 43);
    assert_eq!(committed(&bootstrap, "g1", "orders"), Offset::Offset(43));
    // And again across another restart, now with the poison record compacted or not.
    broker.restart();
    assert_eq!(committed(&bootstrap, "g1", "orders"), Offset::Offset(43));
    check_memory(&broker, "poison record in __consumer_offsets");
    round_trip(&broker, "orders");
}

/// `line` without its terminal colour codes (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// (pass_ms, locked_ms) of every "compaction pass" line in the broker's log.
fn compaction_passes(log: &str) -> Vec<(u64, u64)> {
    let field = |line: &str, name: &str| -> Option<u64> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    log.lines()
        .filter(|l| l.contains("compaction pass"))
        .map(strip_ansi)
        .filter_map(|l| Some((field(&l, "pass_ms")?, field(&l, "locked_ms")?)))
        .collect()
}

/// Sends one keyed record at a time for at least `min` and until `done` (at most `max`);
/// returns the slowest acknowledgement.
fn max_produce_latency(
    bootstrap: &str,
    topic: &str,
    min: Duration,
    max: Duration,
    done: impl Fn() -> bool,
) -> Duration {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("acks", "1")
        .create()
        .unwrap();
    let rt = runtime();
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < min || (started.elapsed() < max && !done()) {
        let key = format!("probe-{}", i % 100);
        let sent = Instant::now();
        rt.block_on(producer.send(
            FutureRecord::to(topic).key(&key).payload("probe"),
            Duration::from_secs(30),
        ))
        .map_err(|(e, _)| e)
        .unwrap();
        worst = worst.max(sent.elapsed());
        i += 1;
    }
    worst
}

#[test]
fn compaction_of_a_large_partition_does_not_stall_produce_or_heartbeats() {
    let broker = Broker::start_with(&[
        "--log-retention-check-interval-ms",
        "300",
        "--group-initial-rebalance-delay-ms",
        "0",
    ]);
    let bootstrap = broker.bootstrap();
    // Nothing is cleanable while it fills (min.compaction.lag.ms of an hour); then the lag
    // drops to 0 and the first pass has the whole partition to compact.
    let configs = [("cleanup.policy", "compact"), ("segment.bytes", "1048576")];
    create_topic(
        &bootstrap,
        "big",
        &[configs[0], configs[1], ("min.compaction.lag.ms", "3600000")],
    );
    // Without compaction work: the probe alone on an empty topic.
    let quiet = max_produce_latency(
        &bootstrap,
        "big",
        Duration::from_secs(3),
        Duration::from_secs(3),
        || true,
    );

    // ~70 MB over 2,000 keys: every pass has much to read and drop.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let value = "v".repeat(150);
    let rt = runtime();
    rt.block_on(async {
        let keys: Vec<String> = (0..2000).map(|k| format!("key-{k}")).collect();
        let mut pending = Vec::new();
        for i in 0..400_000usize {
            let key = &keys[i % keys.len()];
            pending.push(producer.send_result(FutureRecord::to("big").key(key).payload(&value)));
            if pending.len() == 10_000 {
                for p in pending.drain(..) {
                    p.unwrap().await.unwrap().unwrap();
                }
            }
        }
        for p in pending {
            p.unwrap().await.unwrap().unwrap();
        }
    });

    let mut alter = AlterConfig::new(ResourceSpecifier::Topic("big"));
    for (k, v) in configs.iter().chain(&[("min.compaction.lag.ms", "0")]) {
        alter = alter.set(k, v);
    }
    for r in rt
        .block_on(admin(&bootstrap).alter_configs(&[alter], &AdminOptions::new()))
        .unwrap()
    {
        r.unwrap();
    }

    // A group consumes (heartbeating) while the probe produces and compaction runs.
    let stop = Arc::new(AtomicBool::new(false));
    let consumer_stop = stop.clone();
    let consumer_bootstrap = bootstrap.clone();
    let consumer = std::thread::spawn(move || {
        let consumer = group_consumer(&consumer_bootstrap, "big-readers");
        consumer.subscribe(&["big"]).unwrap();
        let mut read = 0u64;
        while !consumer_stop.load(Ordering::SeqCst) {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                read += 1;
                if read.is_multiple_of(5000) {
                    consumer.commit_consumer_state(CommitMode::Async).unwrap();
                }
            }
        }
        (read, consumer.context().assignments.load(Ordering::SeqCst))
    });
    let segments = segment_count(&broker, "big-0");
    println!("big-0 holds {segments} segments");
    let passes_before = compaction_passes(&broker.log()).len();
    // Until two passes completed after the probe started (the first may have begun before).
    let busy = max_produce_latency(
        &bootstrap,
        "big",
        Duration::from_secs(5),
        Duration::from_secs(120),
        || compaction_passes(&broker.log()).len() >= passes_before + 2,
    );
    stop.store(true, Ordering::SeqCst);
    let (read, assignments) = consumer.join().unwrap();

    let passes = compaction_passes(&broker.log());
    let during = &passes[passes_before.min(passes.len())..];
    let longest = passes.iter().map(|p| p.0).max().unwrap_or(0);
    let locked = passes.iter().map(|p| p.1).max().unwrap_or(0);
    println!(
        "max produce latency: {quiet:?} without compaction, {busy:?} during {} passes \
         (longest pass {longest} ms, lock held at most {locked} ms); consumer read {read}",
        during.len()
    );
    assert!(
        !during.is_empty(),
        "no compaction pass ran during the probe"
    );
    assert!(read > 0);
    assert_eq!(assignments, 1, "the group rebalanced: a heartbeat waited");
    // Produce never waited for a whole pass (before, the pass held the partition lock).
    // The lock is held for the renames only, never for the pass; and where a pass is long
    // enough to tell, no produce waited anywhere near as long.
    assert!(
        locked <= 250 && locked <= longest,
        "lock held {locked} ms in a {longest} ms pass"
    );
    assert!(
        longest < 1000 || busy < Duration::from_millis(longest / 2),
        "a produce waited {busy:?}, a pass took {longest} ms"
    );
    assert!(busy < Duration::from_secs(2), "{busy:?}");
    check_memory(&broker, "compaction under load");
    round_trip(&broker, "big");
}
