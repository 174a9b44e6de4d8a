//! The wire protocol, byte by byte: hand-built requests over a plain `TcpStream`.
//!
//! ApiVersions (KIP-511 fallback, v0 response header), acks=0 produce sends nothing back,
//! pipelined responses come back in request order, and every kind of bad input closes only the
//! connection it came on — the broker keeps serving fresh connections afterwards.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use chronik_integration::Broker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

const UNSUPPORTED_VERSION: i16 = 35;
const CORRUPT_MESSAGE: i16 = 2;

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn request_frame<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Bytes {
    chronik_integration::raw::request_frame(key, version, correlation_id, body)
}

fn read_frame(stream: &mut TcpStream) -> Bytes {
    chronik_integration::raw::read_frame(stream).expect("response frame")
}

/// Reads a response, checks its correlation id and decodes the body.
fn read_response<T: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> T {
    let mut frame = read_frame(stream);
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id, "correlation id");
    let body = T::decode(&mut frame, version).expect("decode response body");
    assert!(
        frame.is_empty(),
        "{} trailing bytes in response",
        frame.len()
    );
    body
}

fn api_versions(stream: &mut TcpStream, version: i16, correlation_id: i32) -> ApiVersionsResponse {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("protocol-test"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    stream
        .write_all(&request_frame(
            ApiKey::ApiVersions,
            version,
            correlation_id,
            &request,
        ))
        .unwrap();
    read_response(stream, ApiKey::ApiVersions, version, correlation_id)
}

/// The server closes the connection: reads hit EOF (or a reset) before any response.
fn assert_closed(mut stream: TcpStream, what: &str) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: got {n} bytes instead of a closed connection"),
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            panic!("{what}: connection still open after 10 s")
        }
        Err(_) => {} // reset: closed too
    }
}

/// A fresh connection is served normally.
fn assert_serving(broker: &Broker, what: &str) {
    let mut stream = TcpStream::connect(broker.bootstrap()).unwrap_or_else(|e| {
        panic!(
            "after {what}: broker not accepting ({e}); log:\n{}",
            broker.log()
        )
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let response = api_versions(&mut stream, 3, 4242);
    assert_eq!(response.error_code, 0, "after {what}");
    assert!(!response.api_keys.is_empty(), "after {what}");
}

fn metadata(stream: &mut TcpStream, topics: &[&str], correlation_id: i32) -> MetadataResponse {
    let version = 12;
    let request = MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                })
                .collect(),
        ))
        .with_allow_auto_topic_creation(true);
    stream
        .write_all(&request_frame(
            ApiKey::Metadata,
            version,
            correlation_id,
            &request,
        ))
        .unwrap();
    read_response(stream, ApiKey::Metadata, version, correlation_id)
}

fn record_batch(values: &[&str]) -> BytesMut {
    let values: Vec<Bytes> = values
        .iter()
        .map(|v| Bytes::copy_from_slice(v.as_bytes()))
        .collect();
    chronik_integration::raw::record_batch(&values)
}

/// A batch of `values` whose CRC no longer matches (a bit of its last byte, record data,
/// flipped): CORRUPT_MESSAGE.
fn corrupt_batch(values: &[&str]) -> Bytes {
    let mut batch = record_batch(values);
    let last = batch.len() - 1;
    batch[last] ^= 0x01;
    batch.freeze()
}

fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

/// Fetches partition 0 of `topic` from offset 0 and returns the decoded record values.
fn fetch_values(
    stream: &mut TcpStream,
    topic: &str,
    correlation_id: i32,
) -> (i16, i64, Vec<String>) {
    let version = 11;
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        // Long-poll: acks=0 data becomes visible once the group commit made it durable.
        .with_max_wait_ms(5000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    stream
        .write_all(&request_frame(
            ApiKey::Fetch,
            version,
            correlation_id,
            &request,
        ))
        .unwrap();
    let response: FetchResponse = read_response(stream, ApiKey::Fetch, version, correlation_id);
    let partition = &response.responses[0].partitions[0];
    let mut values = Vec::new();
    if let Some(records) = &partition.records {
        let mut records = records.clone();
        for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
            for r in set.records {
                values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
    }
    (partition.error_code, partition.high_watermark, values)
}

#[test]
fn api_versions_v3_lists_apis_with_a_v0_response_header() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream
        .write_all(&request_frame(
            ApiKey::ApiVersions,
            3,
            77,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ))
        .unwrap();
    let mut frame = read_frame(&mut stream);
    // v0 response header: just the correlation id, no tagged-field byte after it.
    assert_eq!(&frame[..4], &77i32.to_be_bytes());
    let _ = ResponseHeader::decode(&mut frame, 0).unwrap();
    let response = ApiVersionsResponse::decode(&mut frame, 3).unwrap();
    assert!(frame.is_empty());
    assert_eq!(response.error_code, 0);
    let keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
    for key in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
    ] {
        assert!(
            keys.contains(&(key as i16)),
            "{key:?} not advertised: {keys:?}"
        );
    }
    let api = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert!(api.min_version == 0 && api.max_version >= 3);
}

#[test]
fn api_versions_too_new_gets_v0_unsupported_version_and_the_list() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    // A v99 request: the header is v2 (flexible); the body is whatever a future client sends.
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(99)
        .with_correlation_id(0x1234_5678)
        .with_client_id(Some(StrBytes::from_static_str("future-client")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, 2).unwrap();
    buf.put_slice(&[0x05, b'a', b'b', b'c', b'd', 0x02, b'9', 0x00, 0xde, 0xad]);
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&buf).unwrap();

    let mut frame = read_frame(&mut stream);
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, 0x1234_5678);
    let response = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert!(frame.is_empty(), "v0 layout expected");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    assert!(response
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version >= 3));
    // The client retries with a version from the list on the same connection.
    let retry = api_versions(&mut stream, 3, 2);
    assert_eq!(retry.error_code, 0);
}

#[test]
fn acks_zero_produce_gets_no_response_and_the_next_response_comes_next() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let topic = "acks-zero";
    assert_eq!(metadata(&mut stream, &[topic], 1).topics[0].error_code, 0);
    let version = 9;
    let batch = record_batch(&["fire", "and", "forget"]).freeze();
    stream
        .write_all(&request_frame(
            ApiKey::Produce,
            version,
            100,
            &produce_request(topic, 0, batch),
        ))
        .unwrap();
    // The next response on this connection must be the ApiVersions one (correlation id 101).
    let response = api_versions(&mut stream, 3, 101);
    assert_eq!(response.error_code, 0);
    // And the acks=0 data was stored.
    let (error, hw, values) = fetch_values(&mut stream, topic, 102);
    assert_eq!(error, 0);
    assert_eq!(hw, 3);
    assert_eq!(values, ["fire", "and", "forget"]);
}

/// Kafka closes the connection when an acks=0 produce fails: it has no response to carry the
/// error, and the producer learns of it by the disconnect (and refreshes its metadata).
#[test]
fn a_failed_acks_zero_produce_closes_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let topic = "acks-zero-fails";
    assert_eq!(metadata(&mut stream, &[topic], 1).topics[0].error_code, 0);
    stream
        .write_all(&request_frame(
            ApiKey::Produce,
            9,
            100,
            &produce_request(topic, 0, corrupt_batch(&["corrupt"])),
        ))
        .unwrap();
    assert_closed(stream, "a failed acks=0 produce");
    assert_serving(&broker, "a failed acks=0 produce");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let topic = "pipelined";
    assert_eq!(metadata(&mut stream, &[topic], 1).topics[0].error_code, 0);
    // 50 requests of mixed kinds back to back, without reading anything in between.
    let mut expected = Vec::new();
    let mut bytes = BytesMut::new();
    for i in 0..50 {
        let correlation_id = 1000 + i;
        let frame = match i % 3 {
            0 => {
                expected.push((correlation_id, ApiKey::Produce, 9));
                let value = format!("m{i}");
                request_frame(
                    ApiKey::Produce,
                    9,
                    correlation_id,
                    &produce_request(topic, 1, record_batch(&[&value]).freeze()),
                )
            }
            1 => {
                expected.push((correlation_id, ApiKey::ApiVersions, 3));
                request_frame(
                    ApiKey::ApiVersions,
                    3,
                    correlation_id,
                    &ApiVersionsRequest::default()
                        .with_client_software_name(StrBytes::from_static_str("t"))
                        .with_client_software_version(StrBytes::from_static_str("1")),
                )
            }
            _ => {
                expected.push((correlation_id, ApiKey::Metadata, 12));
                request_frame(
                    ApiKey::Metadata,
                    12,
                    correlation_id,
                    &MetadataRequest::default()
                        .with_topics(Some(vec![MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_static_str("pipelined"))))])),
                )
            }
        };
        bytes.put_slice(&frame);
    }
    stream.write_all(&bytes).unwrap();
    let mut produced_offsets = Vec::new();
    for (correlation_id, key, version) in expected {
        match key {
            ApiKey::Produce => {
                let r: ProduceResponse = read_response(&mut stream, key, version, correlation_id);
                let p = &r.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0);
                produced_offsets.push(p.base_offset);
            }
            ApiKey::ApiVersions => {
                let r: ApiVersionsResponse =
                    read_response(&mut stream, key, version, correlation_id);
                assert_eq!(r.error_code, 0);
            }
            _ => {
                let r: MetadataResponse = read_response(&mut stream, key, version, correlation_id);
                assert_eq!(r.topics[0].error_code, 0);
            }
        }
    }
    // Produces in one connection are appended in request order.
    let n = produced_offsets.len() as i64;
    assert_eq!(produced_offsets, (0..n).collect::<Vec<_>>());
}

/// Responses ready together go out in one write (here: the ApiVersions answers wait behind an
/// acks=1 produce until its journal round); a request that closes the connection among them
/// must still let the responses before it out first.
#[test]
fn responses_before_a_closing_request_are_still_written() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let topic = "closes-after-answers";
    assert_eq!(metadata(&mut stream, &[topic], 1).topics[0].error_code, 0);
    let versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("t"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let mut bytes = BytesMut::new();
    let stored = record_batch(&["stored"]).freeze();
    bytes.put_slice(&request_frame(
        ApiKey::Produce,
        9,
        199,
        &produce_request(topic, 1, stored),
    ));
    bytes.put_slice(&request_frame(ApiKey::ApiVersions, 3, 200, &versions));
    bytes.put_slice(&request_frame(ApiKey::ApiVersions, 3, 201, &versions));
    bytes.put_slice(&request_frame(
        ApiKey::Produce,
        9,
        202,
        &produce_request(topic, 0, corrupt_batch(&["corrupt"])),
    ));
    stream.write_all(&bytes).unwrap();
    let r: ProduceResponse = read_response(&mut stream, ApiKey::Produce, 9, 199);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    for correlation_id in [200, 201] {
        let r: ApiVersionsResponse =
            read_response(&mut stream, ApiKey::ApiVersions, 3, correlation_id);
        assert_eq!(r.error_code, 0);
    }
    assert_closed(stream, "a failed acks=0 produce after two requests");
}

/// Sends raw bytes on a fresh connection and expects the broker to close it, then checks a new
/// connection is still served.
fn bad_input_closes_only_its_connection(broker: &Broker, what: &str, bytes: &[u8]) {
    let mut stream = connect(broker);
    stream.write_all(bytes).unwrap();
    assert_closed(stream, what);
    assert_serving(broker, what);
}

fn raw_frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&((8 + 2 + body.len()) as i32).to_be_bytes());
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    frame.extend_from_slice(body);
    frame
}

#[test]
fn bad_frames_close_only_their_connection() {
    let broker = Broker::start();
    // A healthy connection opened before the bad inputs must keep working throughout.
    let mut healthy = connect(&broker);
    assert_eq!(api_versions(&mut healthy, 3, 1).error_code, 0);

    bad_input_closes_only_its_connection(&broker, "negative frame length", &(-5i32).to_be_bytes());
    bad_input_closes_only_its_connection(&broker, "zero frame length", &0i32.to_be_bytes());
    bad_input_closes_only_its_connection(&broker, "2 GiB frame length", &(i32::MAX).to_be_bytes());
    bad_input_closes_only_its_connection(&broker, "unknown API key", &raw_frame(999, 0, 5, &[]));
    bad_input_closes_only_its_connection(
        &broker,
        "garbage body for Metadata v12",
        &raw_frame(ApiKey::Metadata as i16, 12, 6, &[0xff, 0xfe, 0x01]),
    );
    bad_input_closes_only_its_connection(
        &broker,
        "garbage body for Produce v3",
        &raw_frame(ApiKey::Produce as i16, 3, 7, &[0x00, 0x07, 0x41]),
    );
    // Truncated frame, then EOF: the broker must notice and not serve it.
    {
        let mut stream = connect(&broker);
        let frame = raw_frame(ApiKey::ApiVersions as i16, 0, 11, &[]);
        stream.write_all(&frame[..frame.len() - 3]).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_closed(stream, "truncated frame then EOF");
        assert_serving(&broker, "truncated frame then EOF");
    }

    assert_eq!(api_versions(&mut healthy, 3, 2).error_code, 0);
    assert!(
        !broker.log().contains("panicked"),
        "broker panicked:\n{}",
        broker.log()
    );
}

#[test]
fn produce_with_a_corrupt_crc_is_refused_and_not_stored() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let topic = "corrupt-crc";
    assert_eq!(metadata(&mut stream, &[topic], 1).topics[0].error_code, 0);
    stream
        .write_all(&request_frame(
            ApiKey::Produce,
            9,
            2,
            &produce_request(topic, 1, corrupt_batch(&["bad"])),
        ))
        .unwrap();
    let response: ProduceResponse = read_response(&mut stream, ApiKey::Produce, 9, 2);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, CORRUPT_MESSAGE);
    assert_eq!(partition.base_offset, -1);
    // A good batch afterwards lands at offset 0: nothing of the corrupt one was stored.
    stream
        .write_all(&request_frame(
            ApiKey::Produce,
            9,
            3,
            &produce_request(topic, 1, record_batch(&["good"]).freeze()),
        ))
        .unwrap();
    let response: ProduceResponse = read_response(&mut stream, ApiKey::Produce, 9, 3);
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.base_offset, 0);
    let (error, hw, values) = fetch_values(&mut stream, topic, 4);
    assert_eq!((error, hw), (0, 1));
    assert_eq!(values, ["good"]);
}

/// A broker process under an address-space limit (`ulimit -v`), as in a container with strict
/// memory accounting: there an allocation the decoder sizes from an attacker's array length
/// fails, and Rust aborts the process instead of panicking.
struct LimitedBroker {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl LimitedBroker {
    fn start(limit_kib: u64) -> LimitedBroker {
        let dir = tempfile::tempdir().unwrap();
        let port = chronik_integration::free_port();
        let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v {limit_kib} && exec \"$0\" \"$@\""))
            .arg(chronik_integration::server_bin())
            .args([
                "start",
                "--metrics-listen",
                "off",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut broker = LimitedBroker {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..600 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return broker;
            }
            assert!(
                broker.child.try_wait().unwrap().is_none(),
                "{}",
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("limited broker did not start: {}", broker.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("broker.log")).unwrap_or_default()
    }

    fn send_bad(&mut self, what: &str, bytes: &[u8]) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(bytes).unwrap();
        assert_closed(stream, what);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "broker died on {what}; log:\n{}",
            self.log()
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(
            api_versions(&mut stream, 3, 1).error_code,
            0,
            "after {what}"
        );
    }
}

impl Drop for LimitedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn huge_array_lengths_close_the_connection_without_allocating() {
    let mut broker = LimitedBroker::start(4 << 20);
    let bad_input_closes_only_its_connection =
        |broker: &mut LimitedBroker, what: &str, bytes: &[u8]| broker.send_bad(what, bytes);
    let broker = &mut broker;
    // Metadata v1 topics array claiming 2^31-1 entries with no bytes behind it.
    bad_input_closes_only_its_connection(
        broker,
        "Metadata array length 2^31-1",
        &raw_frame(ApiKey::Metadata as i16, 1, 8, &i32::MAX.to_be_bytes()),
    );
    // Metadata v12 (flexible): compact array length varint 0xffffffff.
    let mut compact = Vec::new();
    compact.push(0x00); // header tagged fields
    compact.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut frame = raw_frame(ApiKey::Metadata as i16, 12, 9, &compact);
    // raw_frame wrote a v1 header; v12 uses header v2, whose tagged-field byte is the 0x00 above.
    let len = frame.len();
    frame[..4].copy_from_slice(&((len - 4) as i32).to_be_bytes());
    bad_input_closes_only_its_connection(broker, "Metadata compact array length 2^32-2", &frame);
    // Produce v3 with a topic array of 2^31-1.
    let mut produce = Vec::new();
    produce.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id
    produce.extend_from_slice(&1i16.to_be_bytes()); // acks
    produce.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    produce.extend_from_slice(&i32::MAX.to_be_bytes()); // topics
    bad_input_closes_only_its_connection(
        broker,
        "Produce array length 2^31-1",
        &raw_frame(ApiKey::Produce as i16, 3, 10, &produce),
    );

    // Fetch v11 with a partitions array of 2^31-1 inside one topic.
    let mut fetch = Vec::new();
    fetch.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    fetch.extend_from_slice(&500i32.to_be_bytes()); // max wait
    fetch.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    fetch.extend_from_slice(&i32::MAX.to_be_bytes()); // max bytes
    fetch.push(0); // isolation level
    fetch.extend_from_slice(&0i32.to_be_bytes()); // session id
    fetch.extend_from_slice(&(-1i32).to_be_bytes()); // session epoch
    fetch.extend_from_slice(&1i32.to_be_bytes()); // one topic
    fetch.extend_from_slice(&1i16.to_be_bytes());
    fetch.push(b't');
    fetch.extend_from_slice(&i32::MAX.to_be_bytes()); // partitions
    bad_input_closes_only_its_connection(
        broker,
        "Fetch partitions array 2^31-1",
        &raw_frame(ApiKey::Fetch as i16, 11, 12, &fetch),
    );
}
