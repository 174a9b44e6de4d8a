//! Raw Kafka requests, for tests that check what librdkafka hides (a controller id, a
//! coordinator, a leader hint): one request and its response over TCP, encoded and decoded
//! by kafka-protocol.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One request/response on a fresh connection to `addr`.
pub fn exchange<Req: Encodable, Resp: Decodable>(
    addr: &str,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> std::io::Result<Resp> {
    let mut stream = TcpStream::connect(addr)?;
    exchange_on(&mut stream, key, version, request)
}

/// One request/response on `stream`.
pub fn exchange_on<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> std::io::Result<Resp> {
    let buf = request_frame(key, version, 1, request);
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&buf)?;
    let mut frame = read_frame(stream)?;
    ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    Ok(Resp::decode(&mut frame, version).unwrap())
}

/// Size prefix + request header (its version chosen from the API key and version) + body.
pub fn request_frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Bytes {
    request_frame_from("raw-test", key, version, correlation_id, body)
}

/// [`request_frame`] with the given client id.
pub fn request_frame_from<T: Encodable>(
    client_id: &str,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.freeze()
}

/// Reads one response frame's body (after its size prefix), refusing an absurd size.
pub fn read_frame(stream: &mut TcpStream) -> std::io::Result<Bytes> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(4..256 << 20).contains(&size) {
        return Err(std::io::Error::other(format!(
            "absurd response size {size}"
        )));
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}

/// An uncompressed v2 batch of records with these values (no key, no producer id).
pub fn record_batch(values: &[Bytes]) -> BytesMut {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(v.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf
}
