//! Producing: the run's timeline (`ProduceCtx`), the producer instances and their
//! threads (`spawn`), and the merged outcome (`join`). Closed loop keeps `--in-flight`
//! messages outstanding per task; open loop (`--rate-limit`) sends on a schedule and
//! counts latency from the scheduled send.
//!
//! Why shared producers: `-c` tasks share `--producer-instances` librdkafka producers
//! (default 1), task `id` on instance `id % instances`. One librdkafka producer is one
//! connection per broker plus its own threads, and it batches every task's messages per
//! partition — which is how applications use it. A producer per task would, at `-c 128`
//! on a small machine, run 128 connections and several hundred librdkafka threads, and
//! measure thread scheduling and tiny batches instead of the broker. More instances (more
//! connections) are available when one connection is the bottleneck.
//!
//! Each instance is a librdkafka producer whose polling thread queues delivery reports
//! (`delivery.rs`) and one sender thread that drives the instance's tasks and does their
//! accounting (`sender.rs`): per message one enqueue, one slot in a slab, no allocation,
//! no task wake-up. The per-message costs left are librdkafka's own.
//!
//! Open loop: each task sends at `start + k * c / rate`; a send's latency counts from
//! its *scheduled* time, so when the broker stalls the delay of every message that
//! should have gone out during the stall is counted (no coordinated omission).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hdrhistogram::Histogram;

use crate::cli::Args;
use crate::clock::Clock;
use crate::config::RunPlan;
use crate::delivery::Reports;
use crate::enqueue::Enqueuer;
use crate::message::{Filler, MessageBuilder};
use crate::payload::HEADER_LEN;
use crate::sender::{Instance, InstanceResult};
use crate::stats::{new_histogram, IntervalCell, Recorder, Totals};

/// In open loop a task keeps at most this many messages outstanding; past it, sends
/// wait (and their latency, counted from the schedule, grows).
const OPEN_LOOP_MAX_OUTSTANDING: u32 = 10_000;

/// What every producer instance shares.
pub struct ProduceCtx {
    pub topic: String,
    pub run_id: u32,
    pub message_size: usize,
    pub with_header: bool,
    pub args: Args,
    pub clock: Clock,
    pub run_start: Instant,
    pub measure_from: Instant,
    /// Stop sending at this instant (`None`: only the message count limits).
    pub send_until: Option<Instant>,
    /// Per-task send interval in open loop.
    pub pace: Option<Duration>,
    /// Keep the per-sequence ack record for validation.
    pub track_acks: bool,
}

impl ProduceCtx {
    /// The timeline of a producing run starting now: warm-up, then the measured window.
    pub fn new(args: &Args, plan: &RunPlan, run_id: u32) -> ProduceCtx {
        let clock = Clock::start();
        let run_start = Instant::now();
        let measure_from = run_start + plan.warmup;
        ProduceCtx {
            topic: args.topic.clone(),
            run_id,
            message_size: args.message_size,
            with_header: plan.with_header,
            args: args.clone(),
            clock,
            run_start,
            measure_from,
            send_until: plan.duration.map(|d| measure_from + d),
            pace: args
                .rate_limit
                .map(|r| Duration::from_secs_f64(f64::from(args.concurrency) / r)),
            track_acks: args.validate,
        }
    }
}

/// The instances' interval cells (for progress) and sender threads.
pub type Spawned = (Vec<Arc<IntervalCell>>, Vec<JoinHandle<InstanceResult>>);

/// Builds the producer instances and starts their sender threads.
pub fn spawn(ctx: Arc<ProduceCtx>, plan: &RunPlan) -> anyhow::Result<Spawned> {
    let args = &ctx.args;
    let instances = args.producer_instances.min(args.concurrency);
    let c = u64::from(args.concurrency);
    let cap = match ctx.pace {
        None => args.in_flight,
        Some(_) => OPEN_LOOP_MAX_OUTSTANDING.max(args.in_flight),
    };
    let body_len = if ctx.with_header {
        ctx.message_size - HEADER_LEN
    } else {
        ctx.message_size
    };
    let filler = Filler::new(args.payload_pattern, body_len);
    let mut cells = Vec::new();
    let mut handles = Vec::new();
    for inst in 0..instances {
        let producer = crate::client::producer(args, Reports::default())?;
        let out = Enqueuer::new(producer, &ctx.topic)?;
        let tasks = (inst..args.concurrency)
            .step_by(instances as usize)
            .map(|id| {
                let quota = match plan.message_count {
                    Some(n) => n / c + u64::from(u64::from(id) < n % c),
                    None => u64::MAX,
                };
                let builder = MessageBuilder::new(
                    ctx.run_id,
                    id,
                    ctx.message_size,
                    ctx.with_header,
                    filler.clone(),
                    args.key_pattern,
                );
                (id, quota, builder)
            })
            .collect();
        let (rec, cell) = Recorder::new(ctx.measure_from);
        cells.push(cell);
        let instance = Instance::new(ctx.clone(), out, tasks, cap, rec);
        let handle = std::thread::Builder::new()
            .name(format!("bench-sender-{inst}"))
            .spawn(move || instance.run())
            .context("starting a sender thread")?;
        handles.push(handle);
    }
    Ok((cells, handles))
}

/// Everything the producer tasks did, merged.
pub struct ProduceOutcome {
    pub totals: Totals,
    pub sent: u64,
    pub acked: u64,
    /// Per producer id: which sequences were acknowledged (with `track_acks`).
    pub acked_seqs: Vec<Vec<bool>>,
    pub first_error: Option<String>,
    /// Open loop: lateness of sends against their schedule.
    pub send_lag: Histogram<u64>,
    /// When the last acknowledgement was taken.
    pub finished_at: Instant,
}

/// Waits for the sender threads (off the async runtime) and merges what they did.
pub async fn join(handles: Vec<JoinHandle<InstanceResult>>) -> anyhow::Result<ProduceOutcome> {
    let results = tokio::task::spawn_blocking(move || {
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a sender thread panicked")))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await??;
    let mut out = ProduceOutcome {
        totals: Totals::default(),
        sent: 0,
        acked: 0,
        acked_seqs: Vec::new(),
        first_error: None,
        send_lag: new_histogram(),
        finished_at: Instant::now(),
    };
    let mut tasks = Vec::new();
    let mut finished_at = None;
    for r in results {
        out.totals.merge(&r.totals);
        out.send_lag
            .add(&r.send_lag)
            .expect("histograms share bounds");
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
        finished_at = finished_at.max(Some(r.finished_at));
        tasks.extend(r.tasks);
    }
    out.finished_at = finished_at.unwrap_or(out.finished_at);
    tasks.sort_by_key(|t| t.producer_id);
    for t in tasks {
        out.sent += t.sent;
        out.acked += t.acked;
        out.acked_seqs.push(t.acked_seqs);
    }
    Ok(out)
}
