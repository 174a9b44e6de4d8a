//! One client connection: reads size-prefixed request frames, hands each to the API layer, and
//! writes the responses back in request order while later requests keep being read and handled
//! (pipelining, as librdkafka and the Java client expect).
//!
//! Two halves: a reader task that frames the socket's bytes (`FrameReader`: bounded memory, a
//! deadline per frame) and queues one handling future per request, and the writer loop here
//! that drives those futures concurrently in a `FuturesOrdered` and writes each response as its
//! turn comes (responses ready together, such as the produce requests one journal round
//! completed or those of the requests taken from the reader together, in one write). What a
//! connection may hold is bounded:
//! - at most `queued_max_requests_per_connection` requests read and not yet answered; past it
//!   the reader stops reading, so a client that does not read its responses stops being read;
//! - at most one Fetch handled or waiting to be written, so responses held for a client that
//!   does not read them stay within one `fetch.max.bytes` (Kafka handles one request per
//!   connection at a time);
//! - request bodies come from the broker-wide `RequestMemory` and go back once answered;
//! - a response over a client quota is written after its throttle time, and the connection is
//!   not read meanwhile (`Outcome::Throttled`, as Kafka mutes the channel);
//! - nothing in flight, read or written for `connections_max_idle_ms` closes it, and so does a
//!   response the client does not take within that time.
//!
//! A frame with an absurd length, a request the API layer refuses, or a write error ends
//! this connection only. Frames are checked by `request_bounds` before the API layer decodes them.
//!
//! On a SASL listener the reader authenticates the connection first (`api::sasl`): until then
//! frames are bounded by `MAX_UNAUTHENTICATED_FRAME` and only ApiVersions and the SASL APIs are
//! read; the session's principal becomes the authenticated user. Other listeners skip this.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesOrdered, StreamExt};
use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::debug;

use super::frame_reader::{Frame, FrameReader, FrameSource};
use super::listener::SecurityProtocol;
use super::request_memory::{RequestMemory, Reservation};
use crate::api::sasl::{Admit, ConnectionAuth, Event, MAX_UNAUTHENTICATED_FRAME};
use crate::api::{self, Outcome};
use crate::broker::Broker;
use crate::observe::timing::{self, RequestTiming};
use crate::security::Session;

/// A request's outcome and what it holds until its response has been written.
struct Answered {
    outcome: Outcome,
    /// For a request that reached the API layer: its phases so far (for the metrics).
    timing: Option<RequestTiming>,
    _held: Held,
}

struct Held {
    _memory: Reservation,
    _slot: OwnedSemaphorePermit,
    _fetch: Option<OwnedSemaphorePermit>,
}

/// At most this many answered requests are written together.
const MAX_COALESCED: usize = 64;
/// Responses are copied together up to this size; a larger one (a fetch) goes out alone.
const COALESCE_BYTES: usize = 64 * 1024;

/// Writes the responses of `answers` in order, as few writes as their sizes allow. Err (why)
/// when the connection must close: a write failed or timed out, or a request was refused.
async fn write_answers<W: AsyncWrite + Unpin>(
    answers: &[Answered],
    out: &mut W,
    idle: Duration,
    muted_until: &Mutex<Instant>,
) -> Result<(), &'static str> {
    let mut pending = Pending::default();
    for answered in answers {
        let frame = match &answered.outcome {
            Outcome::Respond(frame) => frame,
            Outcome::NoResponse => continue,
            Outcome::Throttled(frame, delay) => {
                // Over a quota: what came before goes out now; this response waits, and so
                // does the next request.
                pending.write(out, idle).await?;
                *muted_until.lock() = Instant::now() + *delay;
                tokio::time::sleep(*delay).await;
                let Some(frame) = frame else { continue };
                frame
            }
            Outcome::Close(reason) => {
                pending.write(out, idle).await?;
                return Err(reason);
            }
        };
        if pending.bytes + frame.len() > COALESCE_BYTES {
            pending.write(out, idle).await?;
        }
        pending.bytes += frame.len();
        pending.frames.push(frame);
    }
    pending.write(out, idle).await
}

/// Responses not written yet.
#[derive(Default)]
struct Pending<'a> {
    frames: Vec<&'a Bytes>,
    bytes: usize,
}

impl Pending<'_> {
    /// One write: a single frame as it is (no copy), several copied together.
    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        idle: Duration,
    ) -> Result<(), &'static str> {
        let written = match self.frames.as_slice() {
            [] => return Ok(()),
            [frame] => write_flushed(out, frame, idle).await,
            frames => {
                let mut together = Vec::with_capacity(self.bytes);
                for frame in frames {
                    together.extend_from_slice(frame);
                }
                write_flushed(out, &together, idle).await
            }
        };
        self.frames.clear();
        self.bytes = 0;
        written
    }
}

/// Writes and flushes (a TLS stream may keep what the socket did not take yet; a plain
/// socket's flush does nothing), within `idle`.
async fn write_flushed<W: AsyncWrite + Unpin>(
    out: &mut W,
    bytes: &[u8],
    idle: Duration,
) -> Result<(), &'static str> {
    let written = async {
        out.write_all(bytes).await?;
        out.flush().await
    };
    match tokio::time::timeout(idle, written).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            debug!(error = %e, "response write failed");
            Err("write failed")
        }
        Err(_) => Err("client does not read its responses"),
    }
}

/// The listener a connection came in on.
pub struct Listening {
    /// Its place in the configuration (the metrics count connections per listener).
    pub index: usize,
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
    /// The principal of a verified TLS client certificate.
    pub certificate_principal: Option<String>,
}

/// Serves one connection, plain or after its TLS handshake (`peer` is its address).
pub async fn run<R: FrameSource, W: AsyncWrite + Unpin>(
    read_half: R,
    mut write_half: W,
    peer: Option<SocketAddr>,
    listener: Listening,
    broker: Arc<Broker>,
    memory: RequestMemory,
) {
    let config = &broker.config;
    let idle = Duration::from_millis(config.connections_max_idle_ms);
    let max_in_flight = config.queued_max_requests_per_connection;
    let auth = listener.protocol.uses_sasl().then(ConnectionAuth::default);
    let max_frame = match auth {
        Some(_) => MAX_UNAUTHENTICATED_FRAME.min(config.socket_request_max_bytes),
        None => config.socket_request_max_bytes,
    };
    let frames = FrameReader::new(
        read_half,
        memory,
        max_frame,
        Duration::from_millis(config.request_frame_timeout_ms),
    );
    let (queue, mut requests) = mpsc::channel::<BoxFuture<'static, Answered>>(max_in_flight);
    // User:ANONYMOUS until SASL authenticates it, or the client certificate's principal; the
    // host is the peer's address.
    let mut session = Session::on_listener(listener.name, peer);
    if let Some(principal) = listener.certificate_principal {
        session.principal = principal;
    }
    let session = Arc::new(session);
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let muted_until = Arc::new(Mutex::new(Instant::now()));
    let metrics = broker.clone();
    let _open = metrics.requests.connection_opened(listener.index);
    let reader = tokio::spawn(read_requests(
        frames,
        queue,
        broker,
        session,
        auth,
        slots,
        muted_until.clone(),
    ));

    let mut in_flight = FuturesOrdered::new();
    let mut reader_done = false;
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        if reader_done && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(answered) = in_flight.next(), if !in_flight.is_empty() => {
                // The answers already done behind this one go out in the same write: a
                // journal round completes many produce requests at once, and a write per
                // response cost a send and a wake-up of the client each.
                let mut answers = vec![answered];
                while answers.len() < MAX_COALESCED {
                    match in_flight.next().now_or_never() {
                        Some(Some(answered)) => answers.push(answered),
                        _ => break,
                    }
                }
                let written = write_answers(&answers, &mut write_half, idle, &muted_until).await;
                let now = std::time::Instant::now();
                for timing in answers.into_iter().filter_map(|a| a.timing) {
                    metrics.requests.record(&timing, now);
                }
                if let Err(reason) = written {
                    debug!(?peer, reason, "closing connection");
                    break;
                }
                idle_timer.as_mut().reset(Instant::now() + idle);
            },
            request = requests.recv(), if !reader_done => match request {
                Some(future) => {
                    // Every request the reader has queued joins at once: their handlers then
                    // run in one pass and the responses done together go out in one write
                    // (taken one per turn, each request cost a turn and a send of its own).
                    in_flight.push_back(future);
                    while let Ok(future) = requests.try_recv() {
                        in_flight.push_back(future);
                    }
                    idle_timer.as_mut().reset(Instant::now() + idle);
                }
                None => reader_done = true,
            },
            _ = &mut idle_timer, if in_flight.is_empty() => {
                debug!(?peer, "idle connection; closing");
                break;
            }
            else => break,
        }
    }
    reader.abort();
    let _ = write_half.shutdown().await;
}

async fn read_requests<R: FrameSource>(
    mut frames: FrameReader<R>,
    queue: mpsc::Sender<BoxFuture<'static, Answered>>,
    broker: Arc<Broker>,
    mut session: Arc<Session>,
    mut auth: Option<ConnectionAuth>,
    slots: Arc<Semaphore>,
    muted_until: Arc<Mutex<Instant>>,
) {
    let fetch_turn = Arc::new(Semaphore::new(1));
    loop {
        // A free slot first: a client that does not read its responses is not read either.
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let frame = match frames.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return,
            Err(reason) => {
                let held = Held {
                    _memory: Reservation::default(),
                    _slot: slot,
                    _fetch: None,
                };
                let _ = queue.send(answered(Outcome::Close(reason), held)).await;
                return;
            }
        };
        // A throttled client's next request waits out its throttle time.
        // Only a throttled connection waits (a timer per request would cost every request).
        let until = *muted_until.lock();
        if until > Instant::now() {
            tokio::time::sleep_until(until).await;
        }
        let api_key = match frame.body.get(..2) {
            Some(key) => i16::from_be_bytes([key[0], key[1]]),
            None => -1,
        };
        if let Some(auth) = auth.as_mut() {
            let admit = auth.admit(api_key);
            if !matches!(admit, Admit::Dispatch) {
                let held = Held {
                    _memory: frame.memory,
                    _slot: slot,
                    _fetch: None,
                };
                // After a failure the reader stops: the connection closes once the answer is
                // written, or after the failure delay.
                let (outcome, failed) = match admit {
                    Admit::Close(reason) => (Outcome::Close(reason), true),
                    _ => match auth.handle(&broker, frame.body).await {
                        (outcome, Event::Continue) => (outcome, false),
                        (outcome, Event::Authenticated(principal)) => {
                            session = Arc::new(session.with_principal(principal));
                            frames.set_max_frame(broker.config.socket_request_max_bytes);
                            (outcome, false)
                        }
                        (outcome, Event::Failed) => {
                            if queue.send(answered(outcome, held)).await.is_ok() {
                                close_after_failure_delay(&queue, &slots, &broker).await;
                            }
                            return;
                        }
                    },
                };
                if queue.send(answered(outcome, held)).await.is_err() || failed {
                    return;
                }
                continue;
            }
        }
        let Frame { body, memory } = frame;
        let handler = match handle_untrusted_frame(broker.clone(), session.clone(), body) {
            Ok(handler) => handler,
            Err(reason) => {
                // Refused: answered by closing, and nothing more is read.
                let held = Held {
                    _memory: memory,
                    _slot: slot,
                    _fetch: None,
                };
                let _ = queue.send(answered(Outcome::Close(reason), held)).await;
                return;
            }
        };
        let is_fetch = api_key == ApiKey::Fetch as i16;
        // Taken here, in request order, and held until the response is written: a second
        // Fetch is not read while the first one's response is unwritten.
        let fetch = match is_fetch {
            true => Some(
                fetch_turn
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed"),
            ),
            false => None,
        };
        let received = std::time::Instant::now();
        let answer = async move {
            let (outcome, timing) = timing::measure(api_key, received, handler).await;
            Answered {
                outcome,
                timing: Some(timing),
                _held: Held {
                    _memory: memory,
                    _slot: slot,
                    _fetch: fetch,
                },
            }
        };
        if queue.send(Box::pin(answer)).await.is_err() {
            return;
        }
    }
}

/// After a failed authentication's answer: the connection closes once
/// `connection_failed_authentication_delay_ms` has passed, reading nothing meanwhile. As in
/// Kafka, the answer goes out at once and the close waits (a client that reconnects when
/// closed retries no faster). Why not answer late and close at once: a client can then read
/// the answer and the end of the connection together, and kafka-python reported only the
/// closed connection, not the refusal, in about one attempt in three.
async fn close_after_failure_delay(
    queue: &mpsc::Sender<BoxFuture<'static, Answered>>,
    slots: &Arc<Semaphore>,
    broker: &Broker,
) {
    let slot = slots.clone().acquire_owned().await.expect("never closed");
    let delay = broker.sasl.failure_delay;
    let close = async move {
        tokio::time::sleep(delay).await;
        Answered {
            outcome: Outcome::Close("authentication failed"),
            timing: None,
            _held: Held {
                _memory: Reservation::default(),
                _slot: slot,
                _fetch: None,
            },
        }
    };
    let _ = queue.send(Box::pin(close)).await;
}

/// An outcome known at once (no API handler ran: no timing).
fn answered(outcome: Outcome, held: Held) -> BoxFuture<'static, Answered> {
    Box::pin(async move {
        Answered {
            outcome,
            timing: None,
            _held: held,
        }
    })
}

/// What the connection does with one frame off the socket: the pre-decode bounds check (the
/// walk is cheap: strings and record sets are skipped by length), done at once so that the
/// reader stops after a refused frame, then the API layer's handling, returned to be run.
/// Err is the reason to close the connection.
pub fn handle_untrusted_frame(
    broker: Arc<Broker>,
    session: Arc<Session>,
    frame: Bytes,
) -> Result<impl Future<Output = Outcome> + Send + 'static, &'static str> {
    match super::request_bounds::check_frame(&frame) {
        Err(refused) => Err(refused.reason()),
        Ok(()) => Ok(api::handle_frame(broker, session, frame)),
    }
}
