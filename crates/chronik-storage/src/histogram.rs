//! `Histogram`: a fixed-bucket histogram of atomics, for figures recorded on hot paths (the
//! journal's rounds here, request latencies in the broker) and read at a metrics scrape.
//!
//! Recording is a bucket search over a handful of static bounds and three relaxed
//! `fetch_add`s: no allocation, no lock. A scrape may see the count and the buckets from
//! slightly different moments; Prometheus tolerates that.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Histogram {
    /// Upper bounds of the buckets, ascending, in recorded units; +Inf is implied.
    bounds: &'static [u64],
    /// One per bound, plus the +Inf bucket. Not cumulative.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

/// Bounds in nanoseconds for latencies, 100 µs .. 10 s.
pub const LATENCY_NANOS: &[u64] = &[
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Bounds for counts (appends per journal round and the like).
pub const COUNTS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_duration(&self, elapsed: std::time::Duration) {
        self.record(elapsed.as_nanos().min(u64::MAX as u128) as u64);
    }

    /// (sum, count, buckets as (upper bound, count in that bucket alone), +Inf last), each
    /// bound and the sum times `scale` (1e-9 turns nanoseconds into the seconds Prometheus
    /// expects). prometheus-client's encoder makes the buckets cumulative.
    pub fn snapshot(&self, scale: f64) -> (f64, u64, Vec<(f64, u64)>) {
        let bounds = self.bounds.iter().map(|&b| b as f64 * scale);
        let buckets: Vec<(f64, u64)> = bounds
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter())
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        (
            self.sum.load(Ordering::Relaxed) as f64 * scale,
            count,
            buckets,
        )
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = Histogram::new(&[10, 100]);
        for v in [1, 10, 11, 100, 1000] {
            h.record(v);
        }
        let (sum, count, buckets) = h.snapshot(1.0);
        assert_eq!((sum, count), (1122.0, 5));
        assert_eq!(buckets, vec![(10.0, 2), (100.0, 2), (f64::INFINITY, 1)]);
    }
}
