//! One client connection: reads size-prefixed request frames, hands each to the API layer, and
//! writes the responses back in request order while later requests keep being read and handled
//! (pipelining, as librdkafka and the Java client expect).
//!
//! Two halves: a reader task that frames the socket's bytes and queues one handling future per
//! request (the bounded queue is the connection's backpressure), and the writer loop here that
//! drives those futures concurrently in a `FuturesOrdered` and writes each response as its turn
//! comes. A frame with an absurd length, a request the API layer refuses, or a write error ends
//! this connection only. Frames are checked by `request_bounds` before the API layer decodes them.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::debug;

use crate::api::{self, Outcome};
use crate::broker::Broker;
use crate::security::Session;

/// Requests a connection may have in flight before the reader stops reading.
const MAX_IN_FLIGHT: usize = 128;

pub async fn run(stream: TcpStream, broker: Arc<Broker>) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let (read_half, mut write_half) = stream.into_split();
    let (queue, mut requests) = mpsc::channel::<BoxFuture<'static, Outcome>>(MAX_IN_FLIGHT);
    let max_frame = broker.config.socket_request_max_bytes;
    // PLAINTEXT without SASL: the principal is User:ANONYMOUS, the host the peer's address.
    let session = Arc::new(Session::anonymous(peer));
    let reader = tokio::spawn(read_frames(read_half, queue, broker, session, max_frame));

    let mut in_flight = FuturesOrdered::new();
    let mut reader_done = false;
    loop {
        tokio::select! {
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => match outcome {
                Outcome::Respond(frame) => {
                    if let Err(e) = write_half.write_all(&frame).await {
                        debug!(?peer, error = %e, "write failed; closing");
                        break;
                    }
                }
                Outcome::NoResponse => {}
                Outcome::Close(reason) => {
                    debug!(?peer, reason, "closing connection");
                    break;
                }
            },
            request = requests.recv(), if !reader_done => match request {
                Some(future) => in_flight.push_back(future),
                None => reader_done = true,
            },
            else => break,
        }
    }
    reader.abort();
    let _ = write_half.shutdown().await;
}

async fn read_frames(
    read_half: OwnedReadHalf,
    queue: mpsc::Sender<BoxFuture<'static, Outcome>>,
    broker: Arc<Broker>,
    session: Arc<Session>,
    max_frame: usize,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    loop {
        let frame = match read_frame(&mut reader, max_frame).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(reason) => {
                let _ = queue
                    .send(Box::pin(async move { Outcome::Close(reason) }))
                    .await;
                return;
            }
        };
        // A refused frame is answered by closing; stop reading after it. (The walk is cheap:
        // strings and record sets are skipped by length.)
        let refused = super::request_bounds::check_frame(&frame).is_err();
        if queue
            .send(Box::pin(handle_untrusted_frame(
                broker.clone(),
                session.clone(),
                frame,
            )))
            .await
            .is_err()
            || refused
        {
            return;
        }
    }
}

/// What the connection does with one frame off the socket: the pre-decode bounds check, then
/// the API layer. A refused frame closes the connection.
pub async fn handle_untrusted_frame(
    broker: Arc<Broker>,
    session: Arc<Session>,
    frame: Bytes,
) -> Outcome {
    match super::request_bounds::check_frame(&frame) {
        Err(refused) => Outcome::Close(refused.reason()),
        Ok(()) => api::handle_frame(broker, session, frame).await,
    }
}

/// Reads one frame body; Ok(None) at a clean end of stream.
async fn read_frame(
    reader: &mut BufReader<OwnedReadHalf>,
    max_frame: usize,
) -> Result<Option<Bytes>, &'static str> {
    let size = match reader.read_i32().await {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(_) => return Err("read error"),
    };
    if size < 8 || size as usize > max_frame {
        return Err("frame size out of bounds");
    }
    let mut body = BytesMut::zeroed(size as usize);
    reader
        .read_exact(&mut body)
        .await
        .map_err(|_| "connection closed mid-frame")?;
    Ok(Some(body.freeze()))
}
