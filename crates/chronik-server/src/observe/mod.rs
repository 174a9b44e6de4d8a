//! Seeing inside a running broker: Prometheus metrics, health and readiness, and the console
//! page, served over HTTP on `metrics_listen`.
//!
//! - `http`: the HTTP listener and its routes.
//! - `exporter`: the per-broker Prometheus registry, read from the broker at scrape time.
//! - `console`: the console page and its JSON snapshot.
//! - `requests`: per-API request counts, errors and phase latencies; connections.
//! - `timing`: a request's phases (queue, local, remote, response send), taken by the
//!   connection, with the remote phase added from the replica layer's waits.
//!
//! The hot-path hooks are atomics owned by the layers that record them; this module only
//! reads them. Kafka's JMX names for each metric: docs/metrics.md.

pub mod console;
pub mod exporter;
pub mod http;
pub mod requests;
pub mod timing;
