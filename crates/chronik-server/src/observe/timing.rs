//! How long a request spent in each of Kafka's phases (RequestMetrics): queued before its
//! handler ran, handled locally, waiting "remotely" (acks from the journal or followers, or a
//! fetch's long-poll), and its response waiting for its turn and being written.
//!
//! The connection times the queue and send phases itself. The remote phase is only known deep
//! in the replica layer, so the connection runs the handler inside a task-local cell
//! (`measure`) that `add_remote` adds to: no allocation, nothing shared across connections.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static REMOTE: Cell<Duration>;
}

/// Adds a wait to the current request's remote phase (outside a request: nothing).
pub fn add_remote(waited: Duration) {
    let _ = REMOTE.try_with(|remote| remote.set(remote.get() + waited));
}

/// One request's phases, taken by the connection.
#[derive(Clone, Copy, Debug)]
pub struct RequestTiming {
    pub api_key: i16,
    /// When its frame had been read off the socket.
    pub received: Instant,
    /// When its handler started.
    pub started: Instant,
    /// When its handler returned.
    pub handled: Instant,
    /// Of the handler's time, how long it waited for acks or data.
    pub remote: Duration,
}

/// Runs a request's handler, timing it.
pub async fn measure<T>(
    api_key: i16,
    received: Instant,
    handler: impl Future<Output = T>,
) -> (T, RequestTiming) {
    let started = Instant::now();
    REMOTE
        .scope(Cell::new(Duration::ZERO), async move {
            let out = handler.await;
            let timing = RequestTiming {
                api_key,
                received,
                started,
                handled: Instant::now(),
                remote: REMOTE.with(Cell::get),
            };
            (out, timing)
        })
        .await
}
