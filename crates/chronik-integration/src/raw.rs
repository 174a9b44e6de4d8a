//! Raw Kafka requests, for tests that check what librdkafka hides (a controller id, a
//! coordinator, a leader hint): one request and its response over TCP, encoded and decoded
//! by kafka-protocol.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

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
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("cluster-test")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&buf)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body)?;
    let mut frame = Bytes::from(body);
    ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
    Ok(Resp::decode(&mut frame, version).unwrap())
}
