//! Consume mode: `-c` consumers read the topic from the beginning (or from the group's
//! committed position with `--consumer-group`).
//!
//! Without a group, the topic's partitions are dealt round-robin to the consumers, so
//! each message is read once. With a group, every consumer subscribes and the group
//! protocol splits the partitions. Messages that carry the bench header are checked
//! (length and checksum); a damaged one counts as an error and fails the run.
//!
//! The data already exists, so there is no send time: the latency recorded is how long
//! each `recv()` waited for its message.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::cli::Args;
use crate::client::{consumer_config, partitions_and_watermarks};
use crate::client_log::BenchContext;
use crate::config::RunPlan;
use crate::payload::{decode, DecodeError};
use crate::progress::Progress;
use crate::report::{Report, Settings};
use crate::stats::{Recorder, Totals};

/// With `--message-count` and no `--duration`, stop after this long without a message.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Content {
    checked: AtomicU64,
    corrupt: AtomicU64,
    foreign: AtomicU64,
}

pub async fn run(args: &Args, plan: &RunPlan, run_id: u32) -> Result<Report> {
    let mut notes = Vec::new();
    let c = args.concurrency as usize;
    let mut consumers = Vec::with_capacity(c);
    match &args.consumer_group {
        Some(group) => {
            for _ in 0..c {
                let consumer: StreamConsumer<BenchContext> = consumer_config(args, Some(group))
                    .create_with_context(BenchContext)
                    .context("creating a group consumer")?;
                consumer
                    .subscribe(&[&args.topic])
                    .context("subscribing to the topic")?;
                consumers.push(consumer);
            }
            notes.push(format!("{c} consumer(s) in group {group}"));
        }
        None => {
            let (partitions, _) = partitions_and_watermarks(args, &args.topic).await?;
            if c > partitions.len() {
                notes.push(format!(
                    "{} consumer(s) idle: the topic has only {} partition(s)",
                    c - partitions.len(),
                    partitions.len()
                ));
            }
            for i in 0..c.min(partitions.len()) {
                let mut tpl = TopicPartitionList::new();
                for p in partitions.iter().skip(i).step_by(c) {
                    tpl.add_partition_offset(&args.topic, *p, Offset::Beginning)?;
                }
                let consumer: StreamConsumer<BenchContext> = consumer_config(args, None)
                    .create_with_context(BenchContext)
                    .context("creating a consumer")?;
                consumer.assign(&tpl).context("assigning partitions")?;
                consumers.push(consumer);
            }
        }
    }

    let run_start = Instant::now();
    let measure_from = run_start + plan.warmup;
    let until = plan.duration.map(|d| measure_from + d);
    let quota = Arc::new(AtomicI64::new(
        plan.message_count.map_or(i64::MAX, |n| n as i64),
    ));
    let content = Arc::new(Content::default());
    // Set when the message count is reached, so consumers blocked on an exhausted
    // partition stop too instead of waiting for the idle timeout.
    let (done_tx, done_rx) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let mut cells = Vec::new();
    let mut handles = Vec::new();
    for consumer in consumers {
        let (rec, cell) = Recorder::new(measure_from);
        cells.push(cell);
        handles.push(tokio::spawn(consumer_task(
            consumer,
            rec,
            until,
            quota.clone(),
            content.clone(),
            (done_tx.clone(), done_rx.clone()),
        )));
    }
    let progress = Progress::start(
        "consumed",
        cells,
        Duration::from_secs(args.report_interval_secs),
        run_start,
        measure_from,
    );
    let mut totals = Totals::default();
    let mut first_error = None;
    let mut idle = false;
    let mut last_at: Option<Instant> = None;
    for h in handles {
        let end = h.await?;
        totals.merge(&end.totals);
        idle |= end.idle;
        last_at = last_at.max(end.last_at);
        if first_error.is_none() {
            first_error = end.first_error;
        }
    }
    // The measured window ends with the last message, not with the idle wait after it.
    let finished_at = last_at.unwrap_or_else(Instant::now);
    let rows = progress.finish().await;
    let measured = finished_at
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    let mut report = Report::new(
        Settings::of(args, plan),
        run_id,
        "consumed",
        "wait of each recv() for its message (no send time for existing data)",
        &totals,
        measured,
        rows,
    );
    report.first_error = first_error;
    report.notes = notes;
    let (checked, corrupt, foreign) = (
        content.checked.load(Ordering::Relaxed),
        content.corrupt.load(Ordering::Relaxed),
        content.foreign.load(Ordering::Relaxed),
    );
    report.notes.push(format!(
        "content: {checked} bench messages intact, {corrupt} corrupt, {foreign} without bench header"
    ));
    if idle {
        report.notes.push(format!(
            "stopped after {} s without a message",
            IDLE_TIMEOUT.as_secs()
        ));
    }
    if totals.measured.msgs + totals.warmup_msgs == 0 {
        report.failures.push("nothing was consumed".into());
    }
    if corrupt > 0 {
        report
            .failures
            .push(format!("{corrupt} consumed message(s) were corrupt"));
    }
    Ok(report)
}

/// How a consumer task ended.
struct TaskEnd {
    totals: Totals,
    first_error: Option<String>,
    /// Stopped for lack of messages.
    idle: bool,
    last_at: Option<Instant>,
}

async fn consumer_task(
    consumer: StreamConsumer<BenchContext>,
    mut rec: Recorder,
    until: Option<Instant>,
    quota: Arc<AtomicI64>,
    content: Arc<Content>,
    (done_tx, mut done_rx): (Arc<watch::Sender<bool>>, watch::Receiver<bool>),
) -> TaskEnd {
    let mut first_error = None;
    let mut idle = false;
    let mut last_at = None;
    loop {
        let now = Instant::now();
        if until.is_some_and(|u| now >= u) || *done_rx.borrow_and_update() {
            break;
        }
        let wait_until = until.unwrap_or(now + IDLE_TIMEOUT);
        let got = tokio::select! {
            got = tokio::time::timeout_at(wait_until.into(), consumer.recv()) => got,
            _ = done_rx.changed() => continue,
        };
        let done = Instant::now();
        match got {
            Err(_) => {
                idle = until.is_none();
                break;
            }
            Ok(Ok(m)) => {
                let left = quota.fetch_sub(1, Ordering::Relaxed);
                if left <= 0 {
                    break;
                }
                if left == 1 {
                    done_tx.send_replace(true);
                }
                last_at = Some(done);
                let value = m.payload().unwrap_or_default();
                match decode(value) {
                    Ok(_) => {
                        content.checked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(DecodeError::Foreign) => {
                        content.foreign.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(DecodeError::Corrupt) => {
                        content.corrupt.fetch_add(1, Ordering::Relaxed);
                        rec.record_error(done);
                        first_error.get_or_insert_with(|| {
                            format!(
                                "corrupt message at {}/{} offset {}",
                                m.topic(),
                                m.partition(),
                                m.offset()
                            )
                        });
                        continue;
                    }
                }
                rec.record_ok(done, done.duration_since(now), value.len() as u64);
            }
            Ok(Err(e)) => {
                rec.record_error(done);
                first_error.get_or_insert_with(|| format!("consume error: {e}"));
                // An error is returned at once; do not spin on a persistent one.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    TaskEnd {
        totals: rec.finish(),
        first_error,
        idle,
        last_at,
    }
}
