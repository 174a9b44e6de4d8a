//! `KafkaClient`: the broker's own outgoing Kafka connection, one request at a time (replica
//! fetchers pull from leaders with it). Frames are Kafka's: a 4-byte size, a header, a body;
//! kafka-protocol encodes and decodes, this only frames and matches correlation ids.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response accepted: a fetch response is bounded by its request's max_bytes.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

pub struct KafkaClient {
    stream: TcpStream,
    client_id: StrBytes,
    correlation_id: i32,
    buf: BytesMut,
}

impl KafkaClient {
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(KafkaClient {
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            correlation_id: 0,
            buf: BytesMut::new(),
        })
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header.encode(&mut frame, R::header_version(version))?;
        request.encode(&mut frame, version)?;
        let size = (frame.len() - 4) as u32;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&frame).await?;

        let size = self.stream.read_u32().await? as usize;
        if size > MAX_RESPONSE_BYTES {
            bail!("response of {size} bytes is larger than {MAX_RESPONSE_BYTES}");
        }
        self.buf.clear();
        self.buf.resize(size, 0);
        self.stream.read_exact(&mut self.buf).await?;
        let mut body = self.buf.split().freeze();
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "response correlation id {} does not match request {}",
                header.correlation_id,
                self.correlation_id
            );
        }
        let response = R::Response::decode(&mut body, version)?;
        if body.has_remaining() {
            bail!("{} bytes left after the response", body.remaining());
        }
        Ok(response)
    }
}
