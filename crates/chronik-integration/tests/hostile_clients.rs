//! Hostile and greedy clients cannot take the broker's memory or its other clients' service
//! (issue 11): a real broker process, raw frames where a client library would refuse to send
//! them, the broker's resident memory sampled from /proc during each case and checked against
//! a stated bound, and after each case an rdkafka producer and consumer still get through.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chronik_integration::raw::{
    exchange_on, read_frame, record_batch, request_frame, request_frame_from,
};
use chronik_integration::{Broker, RssWatch};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, BrokerId, DescribeClientQuotasRequest, DescribeClientQuotasResponse,
    FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

const MIB: u64 = 1 << 20;

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Fails unless the sampled peak stayed under `baseline + bound`; prints the figures.
fn assert_peak_under(case: &str, baseline: u64, watch: RssWatch, bound: u64) {
    let peak = watch.peak();
    eprintln!(
        "{case}: broker RSS {} MiB before, peak {} MiB (bound {} MiB over the start)",
        baseline / MIB,
        peak / MIB,
        bound / MIB
    );
    assert!(
        peak < baseline + bound,
        "{case}: peak RSS {} MiB over {} MiB + {} MiB",
        peak / MIB,
        baseline / MIB,
        bound / MIB
    );
}

/// An rdkafka producer's message comes back to an rdkafka consumer.
fn round_trip(broker: &Broker, after: &str) {
    let bootstrap = broker.bootstrap();
    let topic = format!("round-trip-{}", after.replace(' ', "-"));
    let value = format!("still serving after {after}");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(core_util::produce_all(
            &bootstrap,
            &topic,
            std::slice::from_ref(&value),
        ));
    let got = core_util::consume_all(&bootstrap, &topic, 1, 1);
    assert!(
        got.iter().any(|m| m.value == value.as_bytes()),
        "after {after}: the round trip's message did not come back"
    );
}

/// The server closes the connection within `within` (reads hit EOF or a reset).
fn assert_closed_within(mut stream: TcpStream, within: Duration, what: &str) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue, // a response to an earlier request
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("{what}: connection still open after {within:?}")
            }
            Err(_) => return,
        }
    }
}

fn api_versions(stream: &mut TcpStream) -> ApiVersionsResponse {
    exchange_on(
        stream,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .expect("ApiVersions")
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Appends about `bytes` to partition 0 of `topic` in batches of one 1,000,000-byte record.
fn fill(broker: &Broker, topic: &str, bytes: u64) {
    let mut stream = connect(broker);
    let value = Bytes::from(vec![b'x'; 1_000_000]);
    let mut records = BytesMut::new();
    for _ in 0..4 {
        records.extend_from_slice(&record_batch(std::slice::from_ref(&value)));
    }
    let request = produce_request(topic, records.freeze());
    for _ in 0..bytes.div_ceil(4_000_000) {
        let response: ProduceResponse =
            exchange_on(&mut stream, ApiKey::Produce, 9, &request).expect("produce");
        assert_eq!(
            response.responses[0].partition_responses[0].error_code, 0,
            "filling {topic}"
        );
    }
}

fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn fetch_request(topic: &str, max_wait_ms: i32, max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(max_bytes)])])
}

async fn create(broker: &Broker, topic: &str) {
    core_util::create_topic(&broker.bootstrap(), topic, 1, &[]).await;
}

/// Sends `frame` `times` times on a clone of `stream` from a thread, never reading; returns
/// how many went onto the wire before the stream was shut down.
fn pipeline(stream: &TcpStream, frame: Bytes, times: usize) -> std::thread::JoinHandle<usize> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        (0..times)
            .take_while(|_| writer.write_all(&frame).is_ok())
            .count()
    })
}

/// Clients pipeline thousands of fetches and never read a response: one asks for 4 MiB of data
/// each time, the other long-polls an empty partition with 1 MiB requests (1 GB in all). The
/// broker does not read a connection's next Fetch before the previous one's response is
/// written, so neither costs more than a request and a response, while others are served.
#[test]
fn pipelined_fetches_that_are_never_read_stay_bounded() {
    let broker = Broker::start();
    let (full, empty) = ("pipelined", "pipelined-empty");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        create(&broker, full).await;
        create(&broker, empty).await;
    });
    fill(&broker, full, 16 * MIB);
    let baseline = broker.rss_bytes();
    let watch = broker.watch_rss();
    let reader = connect(&broker);
    let data = request_frame(ApiKey::Fetch, 11, 1, &fetch_request(full, 500, 4 << 20));
    let data_sender = pipeline(&reader, data, 5000);
    let poller = connect(&broker);
    // Padded with a forgotten-topics list, which a session-less fetch ignores.
    let padded = fetch_request(empty, 500, 1 << 20).with_forgotten_topics_data(vec![
        ForgottenTopic::default()
            .with_topic(name(empty))
            .with_partitions(vec![0; 256 << 10]),
    ]);
    let padded = request_frame(ApiKey::Fetch, 11, 2, &padded);
    let poll_sender = pipeline(&poller, padded, 1000);
    std::thread::sleep(Duration::from_secs(4));
    round_trip(&broker, "pipelined fetches");
    assert_peak_under(
        "thousands of pipelined unread fetches",
        baseline,
        watch,
        32 * MIB,
    );
    reader.shutdown(Shutdown::Both).unwrap();
    poller.shutdown(Shutdown::Both).unwrap();
    eprintln!(
        "on the wire before the clients were stopped: {} of 5000 data fetches, {} of 1000 padded long polls",
        data_sender.join().unwrap(),
        poll_sender.join().unwrap()
    );
    round_trip(&broker, "pipelined fetches closed");
}

/// Hundreds of connections send a size prefix of the largest allowed frame (and a little of
/// its body) and nothing more: the broker allocates only what arrived. A prefix above
/// socket_request_max_bytes closes its connection at once.
#[test]
fn huge_size_prefixes_cost_only_what_arrived() {
    let broker = Broker::start();
    let baseline = broker.rss_bytes();
    let data_before = broker.data_bytes();
    let watch = broker.watch_rss();
    let prefix = (100i32 << 20).to_be_bytes();
    let mut connections = Vec::new();
    for i in 0..300 {
        let mut stream = connect(&broker);
        stream.write_all(&prefix).unwrap();
        if i % 2 == 0 {
            stream.write_all(&[0u8; 16 * 1024]).unwrap();
        }
        connections.push(stream);
    }
    std::thread::sleep(Duration::from_secs(2));
    // Untouched allocations do not show in RSS; the address space asked for does.
    let data_grew = broker.data_bytes().saturating_sub(data_before);
    eprintln!(
        "300 huge prefixes: data address space grew {} MiB",
        data_grew / MIB
    );
    assert!(
        data_grew < 256 * MIB,
        "300 prefixes made the broker allocate {} MiB",
        data_grew / MIB
    );
    round_trip(&broker, "huge prefixes");
    assert_peak_under(
        "300 connections with 100 MiB prefixes",
        baseline,
        watch,
        64 * MIB,
    );

    let mut over = connect(&broker);
    over.write_all(&((100i32 << 20) + 1).to_be_bytes()).unwrap();
    assert_closed_within(over, Duration::from_secs(5), "a prefix over the maximum");
    drop(connections);
    round_trip(&broker, "huge prefixes closed");
}

/// Request bodies share one pool (queued_max_request_bytes): forty connections that each send
/// 4 MiB of an 8 MiB frame and stall hold at most the pool, and the frame deadline closes them.
#[test]
fn stalled_bodies_are_bounded_by_the_pool_and_time_out() {
    let broker = Broker::start_with(&[
        "--socket-request-max-bytes",
        "8388608",
        "--queued-max-request-bytes",
        "16777216",
        "--request-frame-timeout-ms",
        "3000",
    ]);
    let baseline = broker.rss_bytes();
    let watch = broker.watch_rss();
    let senders: Vec<_> = (0..40)
        .map(|_| {
            let mut stream = connect(&broker);
            stream
                .set_write_timeout(Some(Duration::from_secs(6)))
                .unwrap();
            std::thread::spawn(move || {
                let _ = stream.write_all(&(8i32 << 20).to_be_bytes());
                let _ = stream.write_all(&vec![0u8; 4 << 20]);
                stream
            })
        })
        .collect();
    let started = Instant::now();
    for sender in senders {
        // The frame deadline (3 s) closes each, whether its body got into the pool or not.
        assert_closed_within(
            sender.join().unwrap(),
            Duration::from_secs(10),
            "a stalled frame",
        );
    }
    eprintln!("40 stalled frames closed after {:?}", started.elapsed());
    assert_peak_under(
        "40 stalled 8 MiB frames, 16 MiB pool",
        baseline,
        watch,
        64 * MIB,
    );
    round_trip(&broker, "stalled bodies");
}

/// Slow-loris: frames sent a byte at a time are closed at the frame deadline, and a connection
/// idle longer than connections_max_idle_ms is closed, while a long poll longer than that is not.
#[test]
fn slow_frames_and_idle_connections_are_closed() {
    let broker = Broker::start_with(&[
        "--request-frame-timeout-ms",
        "2000",
        "--connections-max-idle-ms",
        "1500",
    ]);
    let baseline = broker.rss_bytes();
    let watch = broker.watch_rss();
    let frame = request_frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    let lorises: Vec<_> = (0..50)
        .map(|_| {
            let mut stream = connect(&broker);
            let frame = frame.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                for byte in frame.iter() {
                    if stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                    let mut probe = [0u8; 1];
                    stream.set_nonblocking(true).unwrap();
                    let closed = matches!(stream.read(&mut probe), Ok(0));
                    stream.set_nonblocking(false).unwrap();
                    if closed {
                        break;
                    }
                }
                started.elapsed()
            })
        })
        .collect();
    for loris in lorises {
        let took = loris.join().unwrap();
        assert!(
            took < Duration::from_secs(5),
            "a byte-at-a-time frame stayed open {took:?}"
        );
    }
    round_trip(&broker, "slow frames");
    assert_peak_under("50 slow-loris frames", baseline, watch, 32 * MIB);

    let mut idle = connect(&broker);
    assert_eq!(api_versions(&mut idle).error_code, 0);
    assert_closed_within(idle, Duration::from_secs(5), "an idle connection");

    // A fetch long-polling past the idle timeout is answered: in flight is not idle.
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create(&broker, "idle-long-poll"));
    let mut polling = connect(&broker);
    let response: FetchResponse = exchange_on(
        &mut polling,
        ApiKey::Fetch,
        11,
        &fetch_request("idle-long-poll", 2500, 1 << 20),
    )
    .expect("long poll answered");
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
}

/// A fetch asking for 2 GiB from a partition holding 64 MB gets at most fetch.max.bytes (plus
/// one batch), from eight connections at once, within memory.
#[test]
fn fetch_max_bytes_caps_a_two_gib_fetch() {
    let broker = Broker::start_with(&["--fetch-max-bytes", "8388608"]);
    let topic = "big";
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create(&broker, topic));
    fill(&broker, topic, 64 * MIB);
    let baseline = broker.rss_bytes();
    let watch = broker.watch_rss();
    let fetchers: Vec<_> = (0..8)
        .map(|_| {
            let mut stream = connect(&broker);
            std::thread::spawn(move || {
                let request = fetch_request(topic, 100, i32::MAX);
                stream
                    .write_all(&request_frame(ApiKey::Fetch, 11, 7, &request))
                    .unwrap();
                read_frame(&mut stream).expect("fetch response").len()
            })
        })
        .collect();
    for fetcher in fetchers {
        let size = fetcher.join().unwrap();
        assert!(
            (1_000_000..=9 << 20).contains(&size),
            "a 2 GiB fetch got {size} bytes with fetch.max.bytes = 8 MiB"
        );
    }
    assert_peak_under(
        "8 concurrent 2 GiB fetches, 8 MiB cap",
        baseline,
        watch,
        192 * MIB,
    );
    round_trip(&broker, "2 GiB fetches");
}

/// Lets this process (and the broker it starts) hold up to `n` descriptors, as far as the hard
/// limit allows; returns the limit now in force.
fn raise_fd_limit(n: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(n.max(limit.rlim_cur));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

/// Thousands of connections (4000 where the descriptor limit allows), each served once and
/// then left open, cost little; with
/// max_connections_per_ip and max_connections set, extra connections are closed or wait.
#[test]
fn thousands_of_connections_and_connection_limits() {
    // 4000, or as many as the machine's descriptor limit leaves room for.
    let count = 4000.min(raise_fd_limit(16_384).saturating_sub(300)) as usize;
    let broker = Broker::start();
    let baseline = broker.rss_bytes();
    let watch = broker.watch_rss();
    let mut connections = Vec::new();
    for _ in 0..count {
        let mut stream = connect(&broker);
        assert_eq!(api_versions(&mut stream).error_code, 0);
        connections.push(stream);
    }
    round_trip(&broker, "many connections");
    let case = format!("{count} open connections");
    assert_peak_under(&case, baseline, watch, 128 * MIB);
    drop(connections);

    let limited = Broker::start_with(&["--max-connections-per-ip", "8"]);
    // The harness's readiness probe connected once; let it be counted out.
    std::thread::sleep(Duration::from_millis(300));
    let mut eight: Vec<TcpStream> = (0..8).map(|_| connect(&limited)).collect();
    for stream in &mut eight {
        assert_eq!(api_versions(stream).error_code, 0);
    }
    assert_closed_within(
        connect(&limited),
        Duration::from_secs(5),
        "a 9th connection",
    );
    drop(eight.pop());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(api_versions(&mut connect(&limited)).error_code, 0);

    let full = Broker::start_with(&["--max-connections", "8"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut eight: Vec<TcpStream> = (0..8).map(|_| connect(&full)).collect();
    for stream in &mut eight {
        assert_eq!(api_versions(stream).error_code, 0);
    }
    let mut waiting = connect(&full);
    waiting
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let frame = request_frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
    waiting.write_all(&frame).unwrap();
    assert!(
        read_frame(&mut waiting).is_err(),
        "a 9th connection was served at max_connections = 8"
    );
    drop(eight.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    read_frame(&mut waiting).expect("served once a place freed");
}

/// Sends `frame` and reads its response, one after another, for `run`; `count` tells what a
/// response body (header included) counts in bytes and its throttle_time_ms. Returns the bytes
/// counted and the largest throttle time.
fn repeat_for(
    bootstrap: &str,
    frame: Bytes,
    run: Duration,
    count: impl Fn(Bytes) -> (u64, i32),
) -> (u64, i32) {
    let mut stream = TcpStream::connect(bootstrap).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (mut bytes, mut max_throttle) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < run {
        stream.write_all(&frame).unwrap();
        let (counted, throttle) = count(read_frame(&mut stream).expect("response"));
        bytes += counted;
        max_throttle = max_throttle.max(throttle);
    }
    (bytes, max_throttle)
}

/// 64 KiB produce requests as `client_id`: the request bytes count.
fn produce_for(bootstrap: &str, client_id: &str, topic: &str, run: Duration) -> (u64, i32) {
    let value = Bytes::from(vec![b'q'; 64 * 1024]);
    let request = produce_request(topic, record_batch(&[value]).freeze());
    let frame = request_frame_from(client_id, ApiKey::Produce, 9, 1, &request);
    let size = frame.len() as u64;
    repeat_for(bootstrap, frame, run, |mut body| {
        ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(9)).unwrap();
        let response = ProduceResponse::decode(&mut body, 9).unwrap();
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
        (size, response.throttle_time_ms)
    })
}

/// 64 KiB fetches from offset 0 as `client_id`: the response bytes count.
fn fetch_for(bootstrap: &str, client_id: &str, topic: &str, run: Duration) -> (u64, i32) {
    let frame = request_frame_from(
        client_id,
        ApiKey::Fetch,
        11,
        1,
        &fetch_request(topic, 0, 64 << 10),
    );
    repeat_for(bootstrap, frame, run, |mut body| {
        let size = body.len() as u64;
        ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(11)).unwrap();
        let response = FetchResponse::decode(&mut body, 11).unwrap();
        assert_eq!(response.responses[0].partitions[0].error_code, 0);
        (size, response.throttle_time_ms)
    })
}

/// Quotas (KIP-13, KIP-546): set with AlterClientQuotas, read back with DescribeClientQuotas;
/// a client over its produce or fetch byte rate gets throttle_time_ms and is held near its
/// quota while another client, producing or fetching at the same time, is not throttled.
#[test]
fn a_client_over_its_quota_is_throttled_and_others_are_not() {
    use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    const QUOTA: f64 = 256.0 * 1024.0;
    let broker = Broker::start();
    let (topic, read_topic) = ("quota", "quota-read");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        create(&broker, topic).await;
        create(&broker, read_topic).await;
    });
    // 64 KiB batches, read back 64 KiB at a time: as fine-grained as the produce side.
    produce_for(
        &broker.bootstrap(),
        "filler",
        read_topic,
        Duration::from_secs(1),
    );
    let s = |x: &str| StrBytes::from_string(x.to_string());
    let op = |key: &str| OpData::default().with_key(s(key)).with_value(QUOTA);
    let alter = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("client-id"))
            .with_entity_name(Some(s("slow")))])
        .with_ops(vec![op("producer_byte_rate"), op("consumer_byte_rate")])]);
    let mut admin = connect(&broker);
    let altered: AlterClientQuotasResponse =
        exchange_on(&mut admin, ApiKey::AlterClientQuotas, 1, &alter).unwrap();
    assert_eq!(altered.entries[0].error_code, 0, "{altered:?}");
    let describe =
        DescribeClientQuotasRequest::default().with_components(vec![ComponentData::default()
            .with_entity_type(s("client-id"))
            .with_match_type(0)
            .with_match(Some(s("slow")))]);
    let described: DescribeClientQuotasResponse =
        exchange_on(&mut admin, ApiKey::DescribeClientQuotas, 1, &describe).unwrap();
    let entries = described.entries.expect("entries");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let values: Vec<(&str, f64)> = entries[0]
        .values
        .iter()
        .map(|v| (v.key.as_str(), v.value))
        .collect();
    assert_eq!(
        values,
        [("consumer_byte_rate", QUOTA), ("producer_byte_rate", QUOTA)]
    );

    let run = Duration::from_secs(8);
    type Driver = fn(&str, &str, &str, Duration) -> (u64, i32);
    let drive = |driver: Driver, client_id: &'static str, topic: &'static str| {
        let bootstrap = broker.bootstrap();
        std::thread::spawn(move || driver(&bootstrap, client_id, topic, run))
    };
    let runs = [
        (
            "produce",
            drive(produce_for, "slow", topic),
            drive(produce_for, "fast", topic),
        ),
        (
            "fetch",
            drive(fetch_for, "slow", read_topic),
            drive(fetch_for, "fast", read_topic),
        ),
    ];
    let rate = |bytes: u64| bytes as f64 / run.as_secs_f64();
    for (what, slow, fast) in runs {
        let (slow_bytes, slow_throttle) = slow.join().unwrap();
        let (fast_bytes, fast_throttle) = fast.join().unwrap();
        eprintln!(
            "{what} quota {QUOTA} B/s: slow client {:.0} B/s (max throttle {slow_throttle} ms), fast client {:.0} B/s (max throttle {fast_throttle} ms)",
            rate(slow_bytes),
            rate(fast_bytes)
        );
        assert!(
            slow_throttle > 0,
            "{what}: the slow client was never throttled"
        );
        // Kafka measures a rate over at least 10 s, so a new client may use 10 s worth at once.
        assert!(
            rate(slow_bytes) < 2.0 * QUOTA,
            "{what}: the slow client got {:.0} B/s against a quota of {QUOTA}",
            rate(slow_bytes)
        );
        assert_eq!(
            fast_throttle, 0,
            "{what}: the client without a quota was throttled"
        );
        assert!(
            rate(fast_bytes) > 4.0 * QUOTA,
            "{what}: the client without a quota got only {:.0} B/s",
            rate(fast_bytes)
        );
    }
    round_trip(&broker, "quotas");
}
