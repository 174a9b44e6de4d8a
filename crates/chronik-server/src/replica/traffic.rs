//! Traffic figures recorded on the produce and fetch paths, read by the metrics exporter.
//!
//! `PartitionTraffic` lives in its `Partition`, so recording is a relaxed `fetch_add` on
//! that partition's own counters: no allocation, no lookup by topic name, no lock beyond
//! what the request already holds. The exporter sums partitions into per-topic figures at
//! scrape time; a partition this broker stops hosting takes its counts with it (Prometheus
//! sees a counter reset, which `rate()` handles).
//!
//! `Waiting` counts requests parked until their acks or fetch data arrive (Kafka's purgatory
//! sizes); its guard also tells the request's timing how long it waited (the "remote" phase).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use super::FetchFrom;

#[derive(Debug, Default)]
pub struct PartitionTraffic {
    /// Records and bytes appended by producers (not by replication).
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Bytes read by consumers, and by followers fetching from this leader.
    pub bytes_out: AtomicU64,
    pub replication_bytes_out: AtomicU64,
}

impl PartitionTraffic {
    pub fn record_append(&self, messages: i64, bytes: usize) {
        self.messages_in
            .fetch_add(messages.max(0) as u64, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn record_read(&self, from: FetchFrom, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let counter = match from {
            FetchFrom::Consumer => &self.bytes_out,
            FetchFrom::Follower(_) => &self.replication_bytes_out,
        };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Requests waiting right now, by what they wait for.
#[derive(Debug, Default)]
pub struct Waiting {
    pub produce: AtomicI64,
    pub fetch: AtomicI64,
}

impl Waiting {
    /// Counts one waiting request until the guard drops.
    pub fn enter(counter: &AtomicI64) -> WaitGuard<'_> {
        counter.fetch_add(1, Ordering::Relaxed);
        WaitGuard {
            counter,
            since: Instant::now(),
        }
    }
}

pub struct WaitGuard<'a> {
    counter: &'a AtomicI64,
    since: Instant,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
        crate::observe::timing::add_remote(self.since.elapsed());
    }
}
