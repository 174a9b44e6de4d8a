//! Produce with librdkafka and read everything back: many partitions, every compression codec,
//! keys, headers, timestamps (CreateTime kept, LogAppendTime applied), the idempotent producer,
//! messages at and above max.message.bytes, and a broker restart in the middle of a stream.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chronik_integration::Broker;
use core_util::{consume_all, create_topic, producer, Msg};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

/// Sends every record and waits for all acknowledgements; returns (partition, offset) per record.
async fn send_all(
    producer: &FutureProducer,
    records: Vec<FutureRecord<'_, [u8], [u8]>>,
) -> Vec<(i32, i64)> {
    // send_result enqueues at once (an un-polled `send` future would not), so batches form.
    let mut futures = Vec::new();
    for mut record in records {
        loop {
            match producer.send_result(record) {
                Ok(f) => break futures.push(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => panic!("enqueue failed: {e}"),
            }
        }
    }
    let mut out = Vec::new();
    for f in futures {
        match f.await.expect("delivery future dropped") {
            Ok(d) => out.push((d.partition, d.offset)),
            Err((e, _)) => panic!("delivery failed: {e}"),
        }
    }
    out
}

fn by_partition(messages: &[Msg]) -> BTreeMap<i32, Vec<&Msg>> {
    let mut map: BTreeMap<i32, Vec<&Msg>> = BTreeMap::new();
    for m in messages {
        map.entry(m.partition).or_default().push(m);
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_across_twelve_partitions_with_keys_headers_and_timestamps() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let partitions = 12;
    let per_codec = 120;
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    let base_ts = 1_600_000_000_000i64;
    for codec in codecs {
        let topic = format!("codec-{codec}");
        create_topic(&bootstrap, &topic, partitions, &[]).await;
        let producer = producer(
            &bootstrap,
            &[("compression.type", codec), ("linger.ms", "20")],
        );
        let keys: Vec<String> = (0..per_codec).map(|i| format!("key-{i}")).collect();
        let values: Vec<String> = (0..per_codec)
            .map(|i| format!("{codec} value {i} {}", "x".repeat(i * 7 % 300)))
            .collect();
        let records = (0..per_codec)
            .map(|i| {
                FutureRecord::to(&topic)
                    .partition((i % partitions as usize) as i32)
                    .key(keys[i].as_bytes())
                    .payload(values[i].as_bytes())
                    .timestamp(base_ts + i as i64)
                    .headers(
                        OwnedHeaders::new()
                            .insert(Header {
                                key: "idx",
                                value: Some(i.to_string().as_bytes()),
                            })
                            .insert(Header {
                                key: "codec",
                                value: Some(codec.as_bytes()),
                            })
                            .insert(Header::<&[u8]> {
                                key: "null",
                                value: None,
                            }),
                    )
            })
            .collect();
        let acked = send_all(&producer, records).await;
        let read = consume_all(&bootstrap, &topic, partitions, per_codec);
        assert_eq!(
            read.len(),
            per_codec,
            "{codec}: read back {} messages",
            read.len()
        );
        for (p, msgs) in by_partition(&read) {
            let offsets: Vec<i64> = msgs.iter().map(|m| m.offset).collect();
            assert_eq!(
                offsets,
                (0..msgs.len() as i64).collect::<Vec<_>>(),
                "{codec} p{p}"
            );
        }
        for m in &read {
            let i: usize = m.headers[0]
                .1
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).parse().unwrap())
                .unwrap();
            assert_eq!(
                acked[i],
                (m.partition, m.offset),
                "{codec}: record {i} acked elsewhere"
            );
            assert_eq!(m.partition, (i % partitions as usize) as i32);
            assert_eq!(m.key.as_deref(), Some(keys[i].as_bytes()));
            assert_eq!(m.value, values[i].as_bytes(), "{codec} record {i}");
            assert_eq!(
                m.headers,
                vec![
                    ("idx".to_string(), Some(i.to_string().into_bytes())),
                    ("codec".to_string(), Some(codec.as_bytes().to_vec())),
                    ("null".to_string(), None),
                ]
            );
            assert_eq!(
                m.timestamp,
                Timestamp::CreateTime(base_ts + i as i64),
                "{codec}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topic_stamps_records_with_broker_time() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "log-append-time";
    create_topic(
        &bootstrap,
        topic,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let before = now_ms();
    let producer = producer(&bootstrap, &[("compression.type", "lz4")]);
    let records = (0..20)
        .map(|_| {
            FutureRecord::to(topic)
                .payload(b"v".as_slice())
                .timestamp(1_000)
        })
        .collect();
    send_all(&producer, records).await;
    let after = now_ms();
    let read = consume_all(&bootstrap, topic, 1, 20);
    assert_eq!(read.len(), 20);
    for m in read {
        match m.timestamp {
            Timestamp::LogAppendTime(t) => {
                assert!(
                    t >= before - 1000 && t <= after + 1000,
                    "{t} not in [{before}, {after}]"
                )
            }
            other => panic!("expected LogAppendTime, got {other:?}"),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_writes_everything_exactly_once_in_order() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "idempotent";
    let partitions = 4;
    create_topic(&bootstrap, topic, partitions, &[]).await;
    let producer = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "50"),
            ("linger.ms", "2"),
        ],
    );
    let n = 4000;
    let values: Vec<String> = (0..n).map(|i| format!("{i}")).collect();
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            FutureRecord::to(topic)
                .partition((i % partitions as usize) as i32)
                .payload(v.as_bytes())
        })
        .collect();
    send_all(&producer, records).await;
    let read = consume_all(&bootstrap, topic, partitions, n);
    assert_eq!(read.len(), n);
    let mut seen = HashSet::new();
    for (p, msgs) in by_partition(&read) {
        let numbers: Vec<usize> = msgs
            .iter()
            .map(|m| String::from_utf8_lossy(&m.value).parse().unwrap())
            .collect();
        let expected: Vec<usize> = (0..n)
            .filter(|i| i % partitions as usize == p as usize)
            .collect();
        assert_eq!(
            numbers, expected,
            "partition {p}: not exactly once in order"
        );
        let offsets: Vec<i64> = msgs.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (0..msgs.len() as i64).collect::<Vec<_>>());
        seen.extend(numbers);
    }
    assert_eq!(seen.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_up_to_max_message_bytes_pass_and_larger_ones_are_refused() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "big-messages";
    create_topic(&bootstrap, topic, 1, &[]).await;
    // The producer's own limit is raised so the broker's limit is the one enforced.
    let producer = producer(
        &bootstrap,
        &[
            ("message.max.bytes", "10000000"),
            ("compression.type", "none"),
            ("linger.ms", "0"),
        ],
    );
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let acked = send_all(
        &producer,
        vec![FutureRecord::to(topic).payload(big.as_slice())],
    )
    .await;
    assert_eq!(acked, vec![(0, 0)]);

    let too_big = vec![7u8; 1_100_000];
    let result = producer
        .send(
            FutureRecord::<[u8], [u8]>::to(topic).payload(too_big.as_slice()),
            Timeout::After(Duration::from_secs(30)),
        )
        .await;
    match result {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {}
        other => panic!(
            "expected MessageSizeTooLarge, got {:?}",
            other.map(|d| d.offset)
        ),
    }
    let acked = send_all(
        &producer,
        vec![FutureRecord::to(topic).payload(b"small".as_slice())],
    )
    .await;
    assert_eq!(
        acked,
        vec![(0, 1)],
        "the refused message must not take an offset"
    );

    let read = consume_all(&bootstrap, topic, 1, 2);
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].value, big);
    assert_eq!(read[1].value, b"small");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "restart";
    let partitions = 3;
    create_topic(&bootstrap, topic, partitions, &[]).await;
    let producer = producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("retries", "10"),
            ("retry.backoff.ms", "100"),
        ],
    );
    let first: Vec<String> = (0..600).map(|i| format!("before-{i}")).collect();
    let records = first
        .iter()
        .enumerate()
        .map(|(i, v)| {
            FutureRecord::to(topic)
                .partition(i as i32 % partitions)
                .payload(v.as_bytes())
        })
        .collect();
    let acked_first = send_all(&producer, records).await;

    broker.restart();

    // The same producer reconnects by itself.
    let second: Vec<String> = (0..600).map(|i| format!("after-{i}")).collect();
    let records = second
        .iter()
        .enumerate()
        .map(|(i, v)| {
            FutureRecord::to(topic)
                .partition(i as i32 % partitions)
                .payload(v.as_bytes())
        })
        .collect();
    let acked_second = send_all(&producer, records).await;

    let read = consume_all(&bootstrap, topic, partitions, 1200);
    assert_eq!(read.len(), 1200);
    for (p, msgs) in by_partition(&read) {
        let offsets: Vec<i64> = msgs.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, (0..400).collect::<Vec<_>>(), "partition {p}");
        let values: Vec<String> = msgs
            .iter()
            .map(|m| String::from_utf8_lossy(&m.value).into())
            .collect();
        let expected: Vec<String> = first
            .iter()
            .chain(second.iter())
            .enumerate()
            .filter(|(i, _)| (*i % 600) as i32 % partitions == p)
            .map(|(_, v)| v.clone())
            .collect();
        assert_eq!(values, expected, "partition {p}");
    }
    for (i, (p, o)) in acked_first.iter().chain(acked_second.iter()).enumerate() {
        let m = read
            .iter()
            .find(|m| m.partition == *p && m.offset == *o)
            .unwrap();
        let v = if i < 600 { &first[i] } else { &second[i - 600] };
        assert_eq!(String::from_utf8_lossy(&m.value), v.as_str());
    }
}
