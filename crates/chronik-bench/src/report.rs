//! The final report: what is printed on stdout and written to `--json-output` /
//! `--csv-output`, and the exit verdict.
//!
//! Throughput counts measured (post-warm-up) acknowledged or received messages only,
//! over the measured time: from the end of warm-up to the last acknowledgement.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{Args, Mode};
use crate::progress::IntervalRow;
use crate::stats::{LatencySummary, Totals};
use crate::validate::ValidationReport;

#[derive(Debug, Clone, serde::Serialize)]
pub struct NamedLatency {
    pub name: String,
    pub latency: LatencySummary,
}

/// The settings a reader needs to interpret the figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub mode: Mode,
    pub bootstrap_servers: String,
    pub topic: String,
    pub concurrency: u32,
    pub in_flight: u32,
    pub producer_instances: u32,
    pub message_size: usize,
    pub acks: crate::config::Acks,
    pub compression: crate::cli::Compression,
    pub linger_ms: u64,
    pub batch_size: u64,
    pub rate_limit: Option<f64>,
    pub message_count: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup_s: f64,
    pub validate: bool,
}

impl Settings {
    pub fn of(args: &Args, plan: &crate::config::RunPlan) -> Settings {
        Settings {
            mode: args.mode,
            bootstrap_servers: args.bootstrap_servers.clone(),
            topic: args.topic.clone(),
            concurrency: args.concurrency,
            in_flight: args.in_flight,
            producer_instances: args.producer_instances,
            message_size: args.message_size,
            acks: args.acks,
            compression: args.compression,
            linger_ms: args.linger_ms,
            batch_size: args.batch_size,
            rate_limit: args.rate_limit,
            message_count: args.message_count,
            duration_s: plan.duration.map(|d| d.as_secs_f64()),
            warmup_s: plan.warmup.as_secs_f64(),
            validate: args.validate,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub settings: Settings,
    pub run_id: String,
    /// What the `messages` figure counts, e.g. "acknowledged".
    pub counted: &'static str,
    /// What `latency` measures, e.g. "send to acknowledgement".
    pub latency_meaning: &'static str,
    pub measured_secs: f64,
    pub messages: u64,
    pub errors: u64,
    pub bytes: u64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency: LatencySummary,
    pub other_latencies: Vec<NamedLatency>,
    pub warmup_messages: u64,
    pub warmup_errors: u64,
    /// Producing modes: messages handed to librdkafka, and acknowledged (warm-up included).
    pub sent: Option<u64>,
    pub acknowledged: Option<u64>,
    pub first_error: Option<String>,
    pub validation: Option<ValidationReport>,
    pub intervals: Vec<IntervalRow>,
    pub notes: Vec<String>,
    /// Warnings and errors librdkafka reported during the run, and the first distinct ones.
    pub client_warnings: u64,
    pub client_warning_samples: Vec<String>,
    /// Why the run failed, if it did (the process then exits non-zero).
    pub failures: Vec<String>,
}

impl Report {
    /// Fills the figures derived from `totals` over `measured_secs`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        run_id: u32,
        counted: &'static str,
        latency_meaning: &'static str,
        totals: &Totals,
        measured_secs: f64,
        intervals: Vec<IntervalRow>,
    ) -> Report {
        let secs = measured_secs.max(1e-9);
        let m = &totals.measured;
        Report {
            settings,
            run_id: format!("{run_id:08x}"),
            counted,
            latency_meaning,
            measured_secs,
            messages: m.msgs,
            errors: m.errors,
            bytes: m.bytes,
            msgs_per_sec: m.msgs as f64 / secs,
            mb_per_sec: m.bytes as f64 / secs / 1e6,
            latency: LatencySummary::of(&m.hist),
            other_latencies: Vec::new(),
            warmup_messages: totals.warmup_msgs,
            warmup_errors: totals.warmup_errors,
            sent: None,
            acknowledged: None,
            first_error: None,
            validation: None,
            intervals,
            notes: Vec::new(),
            client_warnings: 0,
            client_warning_samples: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The human-readable report for stdout.
    pub fn render(&self) -> String {
        let s = &self.settings;
        let mut o = String::new();
        let _ = writeln!(o, "== chronik-bench {:?} (run {}) ==", s.mode, self.run_id);
        let _ = writeln!(
            o,
            "topic {} @ {}  concurrency {}  in-flight {}  size {} B  acks {}  compression {}",
            s.topic,
            s.bootstrap_servers,
            s.concurrency,
            s.in_flight,
            s.message_size,
            s.acks.as_librdkafka(),
            s.compression.as_librdkafka(),
        );
        let _ = writeln!(
            o,
            "measured      {:.2} s (after {:.1} s warm-up)",
            self.measured_secs, s.warmup_s
        );
        let _ = writeln!(o, "messages      {} {}", self.messages, self.counted);
        let _ = writeln!(o, "errors        {}", self.errors);
        let _ = writeln!(o, "bytes         {}", self.bytes);
        let _ = writeln!(
            o,
            "throughput    {:.1} msg/s  {:.3} MB/s",
            self.msgs_per_sec, self.mb_per_sec
        );
        if let (Some(sent), Some(acked)) = (self.sent, self.acknowledged) {
            let _ = writeln!(
                o,
                "sent/acked    {sent} / {acked} (warm-up included; {} acked and {} errors in warm-up)",
                self.warmup_messages, self.warmup_errors
            );
        }
        let mut lat = |name: &str, l: &LatencySummary| {
            let _ = writeln!(
                o,
                "{name:<13} p50 {} µs  p90 {} µs  p99 {} µs  p99.9 {} µs  max {} µs  (n={})",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.count
            );
        };
        lat("latency", &self.latency);
        for n in &self.other_latencies {
            lat(&n.name, &n.latency);
        }
        let _ = writeln!(o, "              (latency = {})", self.latency_meaning);
        if let Some(v) = &self.validation {
            let _ = writeln!(
                o,
                "validation    {}: acknowledged {} read {} matched {} missing {} corrupt {} \
                 duplicates {} unacked-present {} unexpected {} foreign {} read-errors {}{} ({:.1} s)",
                if v.passed() { "PASSED" } else { "FAILED" },
                v.acknowledged,
                v.read,
                v.matched,
                v.missing,
                v.corrupt,
                v.duplicates,
                v.unacked_present,
                v.unexpected,
                v.foreign,
                v.read_errors,
                if v.timed_out { " TIMED OUT" } else { "" },
                v.read_secs,
            );
            if !v.first_missing.is_empty() {
                let _ = writeln!(
                    o,
                    "              first missing (producer, seq): {:?}",
                    v.first_missing
                );
            }
        }
        let stalls = self
            .intervals
            .iter()
            .filter(|r| !r.warmup && r.msgs == 0)
            .count();
        if stalls > 0 {
            let _ = writeln!(
                o,
                "stalls        {stalls} interval(s) with nothing {}",
                self.counted
            );
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(o, "first error   {e}");
        }
        if self.client_warnings > 0 {
            let _ = writeln!(
                o,
                "librdkafka    {} warning(s)/error(s), first distinct ones:",
                self.client_warnings
            );
            for w in &self.client_warning_samples {
                let _ = writeln!(o, "              {w}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(o, "note          {n}");
        }
        for f in &self.failures {
            let _ = writeln!(o, "FAILED        {f}");
        }
        o
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    pub fn write_csv(&self, path: &Path) -> Result<()> {
        std::fs::write(path, intervals_csv(&self.intervals))
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The interval series as CSV, one row per interval.
pub fn intervals_csv(rows: &[IntervalRow]) -> String {
    let mut o = String::from("elapsed_s,msgs,bytes,errors,msgs_per_s,mb_per_s,p99_us,warmup\n");
    for r in rows {
        let _ = writeln!(
            o,
            "{:.3},{},{},{},{:.1},{:.4},{},{}",
            r.elapsed_s, r.msgs, r.bytes, r.errors, r.msgs_per_s, r.mb_per_s, r.p99_us, r.warmup
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_row_per_interval_including_stalls() {
        let row = |t: f64, msgs: u64| IntervalRow {
            elapsed_s: t,
            msgs,
            bytes: msgs * 10,
            errors: 0,
            msgs_per_s: msgs as f64,
            mb_per_s: 0.0,
            p99_us: 5,
            warmup: false,
        };
        let csv = intervals_csv(&[row(1.0, 10), row(2.0, 0), row(3.0, 7)]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("elapsed_s,msgs"));
        assert!(lines[2].starts_with("2.000,0,0,0,"));
    }
}
