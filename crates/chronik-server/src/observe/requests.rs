//! `RequestMetrics`: per API key, requests, errors by code and the phase histograms; and the
//! connection count. Everything is allocated once at start, indexed by API key and error
//! code, so recording is a few relaxed atomic adds: no allocation, no lock, no map lookup.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use chronik_storage::histogram::{Histogram, LATENCY_NANOS};
use kafka_protocol::messages::{ApiKey, ResponseKind};

use super::timing::RequestTiming;

/// API keys are below this (Kafka 4.1 tops out below 100).
const API_KEYS: usize = 128;
/// Error codes -1..=ERROR_CODES-2 are counted one by one (Kafka's go up to about 130).
const ERROR_CODES: usize = 160;

pub struct RequestMetrics {
    /// Open client connections, and those accepted since start, per listener (in the order of
    /// the configuration, which connections name by index).
    pub listeners: Box<[ListenerConnections]>,
    per_api: Box<[Option<ApiMetrics>]>,
}

pub struct ListenerConnections {
    pub name: String,
    pub open: AtomicI64,
    pub created: AtomicU64,
}

pub struct ApiMetrics {
    pub requests: AtomicU64,
    /// Indexed by error code + 1; code 0 (NONE) is not counted.
    errors: Box<[AtomicU64]>,
    pub queue: Histogram,
    pub local: Histogram,
    pub remote: Histogram,
    /// From the handler's end until the response is written: the response queue (waiting for
    /// earlier responses of the connection, which go out in order) and the send.
    pub send: Histogram,
    pub total: Histogram,
}

impl ApiMetrics {
    fn new() -> ApiMetrics {
        ApiMetrics {
            requests: AtomicU64::new(0),
            errors: (0..ERROR_CODES).map(|_| AtomicU64::new(0)).collect(),
            queue: Histogram::new(LATENCY_NANOS),
            local: Histogram::new(LATENCY_NANOS),
            remote: Histogram::new(LATENCY_NANOS),
            send: Histogram::new(LATENCY_NANOS),
            total: Histogram::new(LATENCY_NANOS),
        }
    }

    /// (error code, count) for every code seen.
    pub fn errors(&self) -> impl Iterator<Item = (i16, u64)> + '_ {
        self.errors.iter().enumerate().filter_map(|(i, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then_some((i as i16 - 1, n))
        })
    }
}

/// One PLAINTEXT listener (what tests of the API layer need).
impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics::for_listeners(["PLAINTEXT".to_string()])
    }
}

impl RequestMetrics {
    pub fn for_listeners(names: impl IntoIterator<Item = String>) -> Self {
        let per_api = (0..API_KEYS)
            .map(|key| {
                ApiKey::try_from(key as i16)
                    .ok()
                    .and_then(crate::api::supported_versions)
                    .map(|_| ApiMetrics::new())
            })
            .collect();
        let listeners = names
            .into_iter()
            .map(|name| ListenerConnections {
                name,
                open: AtomicI64::new(0),
                created: AtomicU64::new(0),
            })
            .collect();
        RequestMetrics { listeners, per_api }
    }
}

impl RequestMetrics {
    fn api(&self, api_key: i16) -> Option<&ApiMetrics> {
        self.per_api.get(api_key as usize).and_then(Option::as_ref)
    }

    /// Every implemented API key that was asked at least once.
    pub fn used(&self) -> impl Iterator<Item = (ApiKey, &ApiMetrics)> {
        self.per_api.iter().enumerate().filter_map(|(key, m)| {
            let m = m.as_ref()?;
            if m.requests.load(Ordering::Relaxed) == 0 {
                return None;
            }
            Some((ApiKey::try_from(key as i16).ok()?, m))
        })
    }

    /// A request's phases, once its response was written (`sent`) or, with no response
    /// (acks=0), when its handler returned.
    pub fn record(&self, timing: &RequestTiming, sent: Instant) {
        let Some(m) = self.api(timing.api_key) else {
            return;
        };
        m.requests.fetch_add(1, Ordering::Relaxed);
        let handling = timing.handled.saturating_duration_since(timing.started);
        m.queue
            .record_duration(timing.started.saturating_duration_since(timing.received));
        m.local
            .record_duration(handling.saturating_sub(timing.remote));
        m.remote.record_duration(timing.remote);
        m.send
            .record_duration(sent.saturating_duration_since(timing.handled));
        m.total
            .record_duration(sent.saturating_duration_since(timing.received));
    }

    fn error(&self, m: &ApiMetrics, code: i16) {
        if code != 0 {
            let slot = (code as i32 + 1).clamp(0, ERROR_CODES as i32 - 1) as usize;
            m.errors[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts the error codes in a response: every partition's for Produce and Fetch, the
    /// top-level one for the APIs that have one.
    pub fn count_errors(&self, api_key: ApiKey, response: &ResponseKind) {
        let Some(m) = self.api(api_key as i16) else {
            return;
        };
        let code = match response {
            ResponseKind::Produce(r) => {
                for t in &r.responses {
                    for p in &t.partition_responses {
                        self.error(m, p.error_code);
                    }
                }
                return;
            }
            ResponseKind::Fetch(r) => {
                for t in &r.responses {
                    for p in &t.partitions {
                        self.error(m, p.error_code);
                    }
                }
                r.error_code
            }
            ResponseKind::ApiVersions(r) => r.error_code,
            ResponseKind::JoinGroup(r) => r.error_code,
            ResponseKind::SyncGroup(r) => r.error_code,
            ResponseKind::Heartbeat(r) => r.error_code,
            ResponseKind::LeaveGroup(r) => r.error_code,
            ResponseKind::ListGroups(r) => r.error_code,
            ResponseKind::InitProducerId(r) => r.error_code,
            ResponseKind::DescribeCluster(r) => r.error_code,
            ResponseKind::DescribeQuorum(r) => r.error_code,
            ResponseKind::FindCoordinator(r) => r.error_code,
            ResponseKind::OffsetFetch(r) => r.error_code,
            ResponseKind::DescribeLogDirs(r) => r.error_code,
            _ => 0,
        };
        self.error(m, code);
    }

    /// Counts an open connection of listener `index` until the guard drops.
    pub fn connection_opened(&self, index: usize) -> ConnectionGuard<'_> {
        let listener = &self.listeners[index];
        listener.open.fetch_add(1, Ordering::Relaxed);
        listener.created.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(&listener.open)
    }
}

pub struct ConnectionGuard<'a>(&'a AtomicI64);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
