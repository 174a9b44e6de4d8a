//! `KafkaClient`: the broker's own outgoing Kafka connection, one request at a time (replica
//! fetchers pull from leaders with it). Frames are Kafka's: a 4-byte size, a header, a body;
//! kafka-protocol encodes and decodes, this only frames and matches correlation ids. On an
//! inter-broker listener with TLS and/or SASL it connects as `ClientSecurity` says.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::security::sasl::SaslMechanism;
use crate::security::scram_client::ScramClient;
use crate::security::tls::ClientTlsSource;

/// The largest response accepted: a fetch response is bounded by its request's max_bytes.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How this broker connects to the inter-broker listener of others.
#[derive(Default)]
pub struct ClientSecurity {
    /// TLS (SSL, SASL_SSL): trusts `ssl_ca_file`, and shows this broker's certificate.
    pub tls: Option<ClientTlsSource>,
    /// SASL (SASL_PLAINTEXT, SASL_SSL): this broker's user.
    pub sasl: Option<SaslCredentials>,
}

pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub user: String,
    pub password: String,
}

pub struct KafkaClient {
    stream: Box<dyn Stream>,
    client_id: StrBytes,
    correlation_id: i32,
    buf: BytesMut,
}

impl KafkaClient {
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> anyhow::Result<Self> {
        let connecting = async {
            let tcp = TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?;
            tcp.set_nodelay(true)?;
            let stream: Box<dyn Stream> = match &security.tls {
                None => Box::new(tcp),
                Some(source) => {
                    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                    let name = rustls::pki_types::ServerName::try_from(
                        host.trim_matches(['[', ']']).to_string(),
                    )
                    .with_context(|| format!("{host} is not a TLS server name"))?;
                    let connector = tokio_rustls::TlsConnector::from(source.config());
                    Box::new(
                        connector
                            .connect(name, tcp)
                            .await
                            .with_context(|| format!("TLS handshake with {addr}"))?,
                    )
                }
            };
            let mut client = KafkaClient {
                stream,
                client_id: StrBytes::from_string(client_id.to_string()),
                correlation_id: 0,
                buf: BytesMut::new(),
            };
            if let Some(credentials) = &security.sasl {
                client
                    .authenticate(credentials)
                    .await
                    .with_context(|| format!("SASL authentication with {addr}"))?;
            }
            anyhow::Ok(client)
        };
        tokio::time::timeout(timeout, connecting)
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
    }

    /// SaslHandshake v1 and SaslAuthenticate v2 rounds for the mechanism.
    async fn authenticate(&mut self, credentials: &SaslCredentials) -> anyhow::Result<()> {
        let mechanism = credentials.mechanism;
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(mechanism.name()));
        let answer = self.send(&handshake, 1).await?;
        if answer.error_code != 0 {
            bail!(
                "SaslHandshake for {}: error {}",
                mechanism.name(),
                answer.error_code
            );
        }
        match mechanism {
            SaslMechanism::Plain => {
                let token = format!("\0{}\0{}", credentials.user, credentials.password);
                self.sasl_round(token.into_bytes()).await?;
            }
            SaslMechanism::Scram(m) => {
                let (mut scram, first) =
                    ScramClient::start(m, &credentials.user, &credentials.password);
                let server_first = self.sasl_round(first.into_bytes()).await?;
                let server_first = std::str::from_utf8(&server_first)?;
                let last = scram.respond(server_first).map_err(anyhow::Error::msg)?;
                let server_final = self.sasl_round(last.into_bytes()).await?;
                scram
                    .finish(std::str::from_utf8(&server_final)?)
                    .map_err(anyhow::Error::msg)?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate: our token out, the server's back.
    async fn sasl_round(&mut self, token: Vec<u8>) -> anyhow::Result<Bytes> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let answer = self.send(&request, 2).await?;
        if answer.error_code != 0 {
            bail!(
                "error {}: {}",
                answer.error_code,
                answer.error_message.as_deref().unwrap_or_default()
            );
        }
        Ok(answer.auth_bytes)
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
