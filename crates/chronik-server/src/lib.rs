//! Chronik: a Kafka-compatible broker.
//!
//! Layout, in the direction data flows:
//! - `network`: accepts connections, frames requests, writes responses in request order.
//! - `api`: one handler per Kafka API key, behind the single dispatch point `api::handle_frame`.
//! - `controller`: the only writer of cluster metadata: decides on the Raft leader, forwards
//!   from every other node; broker registration, heartbeats, fencing, replica placement.
//! - `quorum`: the metadata Raft (openraft): log store, state machine, controller RPC.
//! - `metadata`: records, the immutable image they fold into, its publisher, topic configs.
//! - `coordinator`: consumer groups and committed offsets, persisted in `__consumer_offsets`.
//! - `replica`: the partitions this broker hosts, produce/fetch through them, producer state.
//! - `chronik_storage` (its own crate): the segmented log on disk.
//! - `security`: ACL bindings (from the metadata image) and the authorizer every handler asks
//!   before it acts; users' SCRAM credentials (`security::scram`).
//! - `users`: the `chronik-server users add` command (credentials created before the start).
//! - `observe`: the HTTP listener: Prometheus metrics, health/readiness, the console page.
//! - `allocator`: keeps hostile array lengths from aborting the process.
//! - `quota`: client quota enforcement (rates and throttle times; the quotas are metadata).
//! - `cluster_status`: the `chronik-server cluster status` admin command.
//! - `dump_log`: the `chronik-server dump-log` command (a partition directory's batches, read-only).
//! - `broker`: wiring and the run loop; `config`: settings; `producer_ids`: id allocation;

pub mod allocator;
pub mod api;
pub mod broker;
pub mod cluster_status;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod dump_log;
pub mod metadata;
pub mod network;
pub mod observe;
pub mod producer_ids;
pub mod quorum;
pub mod quota;
pub mod reassign;
pub mod replica;
pub mod security;
pub mod users;
