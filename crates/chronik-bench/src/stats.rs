//! Per-task counters and latency histograms, and how they are merged.
//!
//! Concurrency: each task owns a `Recorder`. Its run totals (`Totals`) are plain fields
//! that only the task touches, returned when the task ends and merged then. For the
//! live progress line each task also has an `IntervalCell`: a mutex that only that task
//! and the reporter ever take — the reporter once per interval, to swap the contents
//! out. No sample goes through a lock shared between tasks, and none is ever dropped:
//! every `record_*` call lands in both the totals and the current interval. A `Batch`
//! holds the cell's lock across several samples (a producer's batch of delivery
//! reports), so the lock is taken once per batch rather than once per sample.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, 1 µs … 1 hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// Counts and latencies of one interval, or of one task's whole run.
#[derive(Debug, Clone)]
pub struct Counts {
    pub msgs: u64,
    pub bytes: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            msgs: 0,
            bytes: 0,
            errors: 0,
            hist: new_histogram(),
        }
    }
}

impl Counts {
    fn record_ok(&mut self, latency: Duration, bytes: u64) {
        self.msgs += 1;
        self.bytes += bytes;
        self.hist.saturating_record(micros(latency));
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Counts) {
        self.msgs += other.msgs;
        self.bytes += other.bytes;
        self.errors += other.errors;
        self.hist
            .add(&other.hist)
            .expect("histograms share bounds, so adding cannot fail");
    }
}

/// What a task hands back when it ends.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Measured (after warm-up).
    pub measured: Counts,
    /// Acknowledged / received during warm-up: not in the figures.
    pub warmup_msgs: u64,
    pub warmup_errors: u64,
}

impl Totals {
    pub fn merge(&mut self, other: &Totals) {
        self.measured.merge(&other.measured);
        self.warmup_msgs += other.warmup_msgs;
        self.warmup_errors += other.warmup_errors;
    }
}

/// The per-interval half of a task's figures, shared with the reporter only.
#[derive(Debug, Default)]
pub struct IntervalCell(Mutex<Counts>);

impl IntervalCell {
    /// Takes this interval's figures and leaves an empty interval behind.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One task's recorder.
pub struct Recorder {
    totals: Totals,
    interval: Arc<IntervalCell>,
    measure_from: Instant,
}

impl Recorder {
    /// Samples completing before `measure_from` count as warm-up.
    pub fn new(measure_from: Instant) -> (Recorder, Arc<IntervalCell>) {
        let interval = Arc::new(IntervalCell::default());
        let recorder = Recorder {
            totals: Totals::default(),
            interval: interval.clone(),
            measure_from,
        };
        (recorder, interval)
    }

    /// An acknowledged / received message, completed at `now`.
    pub fn record_ok(&mut self, now: Instant, latency: Duration, bytes: u64) {
        self.batch().record_ok(now, latency, bytes);
    }

    /// A failed send / receive, seen at `now`.
    pub fn record_error(&mut self, now: Instant) {
        self.batch().record_error(now);
    }

    /// Records several samples under one lock of the interval cell.
    pub fn batch(&mut self) -> Batch<'_> {
        Batch {
            interval: self.interval.0.lock().unwrap_or_else(|e| e.into_inner()),
            totals: &mut self.totals,
            measure_from: self.measure_from,
        }
    }

    pub fn finish(self) -> Totals {
        self.totals
    }
}

/// A `Recorder` with its interval cell locked; samples go to both, as one by one.
pub struct Batch<'a> {
    interval: MutexGuard<'a, Counts>,
    totals: &'a mut Totals,
    measure_from: Instant,
}

impl Batch<'_> {
    /// An acknowledged / received message, completed at `now`.
    pub fn record_ok(&mut self, now: Instant, latency: Duration, bytes: u64) {
        if now >= self.measure_from {
            self.totals.measured.record_ok(latency, bytes);
        } else {
            self.totals.warmup_msgs += 1;
        }
        self.interval.record_ok(latency, bytes);
    }

    /// A failed send / receive, seen at `now`.
    pub fn record_error(&mut self, now: Instant) {
        if now >= self.measure_from {
            self.totals.measured.errors += 1;
        } else {
            self.totals.warmup_errors += 1;
        }
        self.interval.errors += 1;
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_every_sample() {
        let start = Instant::now();
        let mut all = Totals::default();
        let mut cells = Vec::new();
        for task in 0..8u64 {
            let (mut r, cell) = Recorder::new(start);
            for i in 0..1000u64 {
                r.record_ok(start, Duration::from_micros(task * 1000 + i + 1), 10);
            }
            r.record_error(start);
            cells.push(cell);
            all.merge(&r.finish());
        }
        assert_eq!(all.measured.msgs, 8000);
        assert_eq!(all.measured.bytes, 80_000);
        assert_eq!(all.measured.errors, 8);
        assert_eq!(all.measured.hist.len(), 8000);
        let s = LatencySummary::of(&all.measured.hist);
        assert_eq!(s.count, 8000);
        assert!((3990..=4010).contains(&s.p50_us), "{s:?}");
        assert!((7990..=8010).contains(&s.max_us), "{s:?}");

        // The interval cells saw the same samples, and are empty once taken.
        let mut interval = Counts::default();
        for c in &cells {
            interval.merge(&c.take());
        }
        assert_eq!(interval.msgs, 8000);
        assert_eq!(interval.errors, 8);
        assert_eq!(interval.hist.len(), 8000);
        assert_eq!(cells[0].take().msgs, 0);
    }

    #[test]
    fn a_batch_records_like_single_calls() {
        let start = Instant::now();
        let (mut r, cell) = Recorder::new(start + Duration::from_secs(1));
        {
            let mut b = r.batch();
            b.record_ok(start, Duration::from_micros(5), 3);
            b.record_ok(start + Duration::from_secs(2), Duration::from_micros(7), 3);
            b.record_error(start + Duration::from_secs(2));
        }
        r.record_ok(start + Duration::from_secs(2), Duration::from_micros(9), 3);
        let c = cell.take();
        assert_eq!((c.msgs, c.bytes, c.errors, c.hist.len()), (3, 9, 1, 3));
        let t = r.finish();
        assert_eq!(
            (t.measured.msgs, t.measured.errors, t.warmup_msgs),
            (2, 1, 1)
        );
        assert_eq!(t.measured.hist.len(), 2);
    }

    #[test]
    fn warmup_is_kept_apart() {
        let start = Instant::now();
        let (mut r, cell) = Recorder::new(start + Duration::from_secs(3600));
        r.record_ok(start, Duration::from_millis(1), 5);
        r.record_error(start);
        let t = r.finish();
        assert_eq!(t.measured.msgs, 0);
        assert_eq!(t.warmup_msgs, 1);
        assert_eq!(t.warmup_errors, 1);
        assert_eq!(cell.take().msgs, 1);
    }

    #[test]
    fn huge_and_tiny_latencies_are_recorded() {
        let start = Instant::now();
        let (mut r, _cell) = Recorder::new(start);
        r.record_ok(start, Duration::ZERO, 1);
        r.record_ok(start, Duration::from_secs(100_000), 1);
        let t = r.finish();
        assert_eq!(t.measured.hist.len(), 2);
    }
}
