//! The HTTP listener (`metrics_listen`): `/metrics` (Prometheus text format), `/health`
//! (the process is up), `/ready` (registered, unfenced and serving), `/` (the console page)
//! and `/console.json` (what the page polls).
//!
//! It starts before the broker joins its cluster, so `/health` answers and `/ready` says 503
//! while a node waits for its quorum; `/metrics` and the console answer 503 until then.
//!
//! hyper 1 (HTTP/1 server only, with hyper-util's tokio glue): the smallest well-kept
//! server that parses HTTP properly; a framework (axum) would bring routing and tower layers
//! for five fixed GET paths.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::console::Console;
use super::exporter;
use crate::broker::Broker;

/// What the listener serves from: empty until the broker has joined its cluster.
#[derive(Default)]
pub struct HttpState {
    serving: OnceLock<(Arc<Broker>, Registry)>,
}

impl HttpState {
    /// The broker has registered and its Kafka listener is about to accept clients.
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let registry = exporter::registry(broker.clone());
        let _ = self.serving.set((broker, registry));
    }
}

/// Serves `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &request)) }
            });
            // A client that never finishes its request headers does not hold a task for ever.
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

fn route(state: &HttpState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let serving = state.serving.get();
    match (request.uri().path(), serving) {
        ("/health", _) => text(StatusCode::OK, "ok\n"),
        ("/ready", Some((broker, _))) if broker.is_ready() => text(StatusCode::OK, "ready\n"),
        ("/ready", _) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not registered with the cluster, fenced, or stopping\n",
        ),
        ("/metrics" | "/" | "/console.json", None) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: waiting to join the cluster\n",
        ),
        ("/metrics", Some((_, registry))) => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            exporter::render(registry),
        ),
        ("/", Some((broker, _))) => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Console::take(broker).html(),
        ),
        ("/console.json", Some((broker, _))) => respond(
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&Console::take(broker)).unwrap_or_default(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.to_string())
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
