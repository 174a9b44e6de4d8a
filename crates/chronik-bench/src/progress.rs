//! The live progress line on stderr and the per-interval series kept for the outputs.
//!
//! A background task wakes every `--report-interval-secs`, takes each task's
//! `IntervalCell` and writes one row, so an interval in which nothing was acknowledged
//! shows up as a 0, not as a gap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::stats::{Counts, IntervalCell};

/// One row of the interval series.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IntervalRow {
    /// Seconds since the run started (warm-up included) at the end of the interval.
    pub elapsed_s: f64,
    pub msgs: u64,
    pub bytes: u64,
    pub errors: u64,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    pub p99_us: u64,
    /// The interval ended before measuring began.
    pub warmup: bool,
}

/// Handle to the running reporter.
pub struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<IntervalRow>>,
}

impl Progress {
    /// Starts reporting on `cells`; `label` names what is counted (e.g. "acked").
    pub fn start(
        label: &'static str,
        cells: Vec<Arc<IntervalCell>>,
        every: Duration,
        run_start: Instant,
        measure_from: Instant,
    ) -> Progress {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut rows = Vec::new();
            let mut last = run_start;
            let mut ticker = tokio::time::interval_at((run_start + every).into(), every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let last_one = tokio::select! {
                    _ = ticker.tick() => false,
                    _ = &mut stopped => true,
                };
                let now = Instant::now();
                let mut sum = Counts::default();
                for cell in &cells {
                    sum.merge(&cell.take());
                }
                let secs = now.duration_since(last).as_secs_f64().max(1e-9);
                let row = IntervalRow {
                    elapsed_s: now.duration_since(run_start).as_secs_f64(),
                    msgs: sum.msgs,
                    bytes: sum.bytes,
                    errors: sum.errors,
                    msgs_per_s: sum.msgs as f64 / secs,
                    mb_per_s: sum.bytes as f64 / secs / 1e6,
                    p99_us: if sum.hist.is_empty() {
                        0
                    } else {
                        sum.hist.value_at_quantile(0.99)
                    },
                    warmup: now <= measure_from,
                };
                // A final partial interval with nothing in it adds no information.
                if !(last_one && row.msgs == 0 && row.errors == 0) {
                    eprintln!(
                        "[{:>7.1}s]{} {label} {:>10.0} msg/s {:>8.2} MB/s  errors {:>6}  p99 {:>9} µs",
                        row.elapsed_s,
                        if row.warmup { " warmup" } else { "" },
                        row.msgs_per_s,
                        row.mb_per_s,
                        row.errors,
                        row.p99_us,
                    );
                    rows.push(row);
                }
                last = now;
                if last_one {
                    return rows;
                }
            }
        });
        Progress { stop, task }
    }

    /// Stops the reporter (after a last partial interval) and returns the series.
    pub async fn finish(self) -> Vec<IntervalRow> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}
