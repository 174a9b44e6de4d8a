//! Producer tasks: closed loop (`--in-flight` outstanding per task) or open loop
//! (`--rate-limit`), latency from send (or scheduled send) to acknowledgement.
//!
//! Why shared producers: `-c` tasks share `--producer-instances` librdkafka producers
//! (default 1), picked round-robin. One librdkafka producer is one connection per
//! broker plus its own threads, and it batches every task's messages per partition —
//! which is how applications use it. A producer per task would, at `-c 128` on a small
//! machine, run 128 connections and several hundred librdkafka threads, and measure
//! thread scheduling and tiny batches instead of the broker. More instances (more
//! connections) are available when one connection is the bottleneck.
//!
//! Open loop: each task sends at `start + k * c / rate`; a send's latency counts from
//! its *scheduled* time, so when the broker stalls the delay of every message that
//! should have gone out during the stall is counted (no coordinated omission).

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::task::JoinHandle;

use crate::cli::Args;
use crate::client_log::BenchContext;
use crate::config::RunPlan;
use crate::payload::{unix_nanos, MessageBuilder};
use crate::stats::{new_histogram, IntervalCell, Recorder, Totals};
use hdrhistogram::Histogram;

/// In open loop a task keeps at most this many messages outstanding; past it, sends
/// wait (and their latency, counted from the schedule, grows).
const OPEN_LOOP_MAX_OUTSTANDING: usize = 10_000;

/// What every producer task shares.
pub struct ProduceCtx {
    pub topic: String,
    pub run_id: u32,
    pub message_size: usize,
    pub with_header: bool,
    pub args: Args,
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
        let run_start = Instant::now();
        let measure_from = run_start + plan.warmup;
        ProduceCtx {
            topic: args.topic.clone(),
            run_id,
            message_size: args.message_size,
            with_header: plan.with_header,
            args: args.clone(),
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

/// What one producer task hands back.
pub struct ProducerResult {
    pub producer_id: u32,
    pub totals: Totals,
    /// Sequences sent (acked or not).
    pub sent: u64,
    /// Sequences acknowledged, warm-up included.
    pub acked: u64,
    /// `acked_seqs[seq]`: whether `seq` was acknowledged (only with `track_acks`).
    pub acked_seqs: Vec<bool>,
    pub first_error: Option<String>,
    /// Open loop: how late each measured send left against its schedule (µs). This
    /// lateness (the bench's own timer and scheduling) is part of the open-loop latency.
    pub send_lag: Histogram<u64>,
}

struct Pending {
    fut: DeliveryFuture,
    started: Instant,
    seq: u64,
    bytes: u64,
}

/// The producer tasks' interval cells (for progress) and handles.
pub type Spawned = (Vec<Arc<IntervalCell>>, Vec<JoinHandle<ProducerResult>>);

/// Builds the shared producers and spawns the `-c` tasks. Returns their interval
/// cells (for progress) and handles.
pub fn spawn(ctx: Arc<ProduceCtx>, plan: &RunPlan) -> anyhow::Result<Spawned> {
    let instances = ctx.args.producer_instances.min(ctx.args.concurrency);
    let producers: Vec<FutureProducer<BenchContext>> = (0..instances)
        .map(|_| crate::client::producer(&ctx.args))
        .collect::<anyhow::Result<_>>()?;
    let c = u64::from(ctx.args.concurrency);
    let mut cells = Vec::new();
    let mut handles = Vec::new();
    for id in 0..ctx.args.concurrency {
        let quota = match plan.message_count {
            Some(n) => n / c + u64::from(u64::from(id) < n % c),
            None => u64::MAX,
        };
        let (rec, cell) = Recorder::new(ctx.measure_from);
        cells.push(cell);
        let producer = producers[id as usize % producers.len()].clone();
        handles.push(tokio::spawn(producer_task(
            ctx.clone(),
            producer,
            id,
            quota,
            rec,
        )));
    }
    Ok((cells, handles))
}

/// Waits for whichever outstanding delivery completes first.
async fn next_delivery(
    pending: &mut Vec<Pending>,
) -> (
    Pending,
    Result<rdkafka::producer::future_producer::OwnedDeliveryResult, String>,
) {
    poll_fn(|cx| {
        for i in 0..pending.len() {
            if let Poll::Ready(out) = std::pin::Pin::new(&mut pending[i].fut).poll(cx) {
                let p = pending.swap_remove(i);
                return Poll::Ready((p, out.map_err(|_| "delivery report dropped".to_string())));
            }
        }
        Poll::Pending
    })
    .await
}

use std::future::Future as _;

async fn producer_task(
    ctx: Arc<ProduceCtx>,
    producer: FutureProducer<BenchContext>,
    id: u32,
    quota: u64,
    mut rec: Recorder,
) -> ProducerResult {
    let args = &ctx.args;
    let mut builder = MessageBuilder::new(
        ctx.run_id,
        id,
        ctx.message_size,
        ctx.with_header,
        args.payload_pattern,
        args.key_pattern,
    );
    let cap = match ctx.pace {
        None => args.in_flight as usize,
        Some(_) => OPEN_LOOP_MAX_OUTSTANDING.max(args.in_flight as usize),
    };
    let mut pending: Vec<Pending> = Vec::with_capacity(cap.min(1024));
    let mut result = ProducerResult {
        producer_id: id,
        totals: Totals::default(),
        sent: 0,
        acked: 0,
        acked_seqs: Vec::new(),
        first_error: None,
        send_lag: new_histogram(),
    };
    // Stagger tasks across one interval so open-loop sends do not come in bursts.
    let mut next_at = match ctx.pace {
        Some(p) => ctx.run_start + p.mul_f64(f64::from(id) / f64::from(args.concurrency)),
        None => ctx.run_start,
    };
    // The time the current (not yet enqueued) message's latency counts from.
    let mut current_start: Option<Instant> = None;

    loop {
        let now = Instant::now();
        let may_send = result.sent < quota && ctx.send_until.is_none_or(|d| now < d);
        if !may_send && pending.is_empty() {
            break;
        }
        let due = match ctx.pace {
            None => true,
            Some(_) => now >= next_at,
        };
        if may_send && pending.len() < cap && due {
            let started = *current_start.get_or_insert(match ctx.pace {
                None => now,
                Some(_) => next_at,
            });
            // The wall-clock send time, back-dated to the schedule in open loop.
            let wall = unix_nanos().saturating_sub(now.duration_since(started).as_nanos() as u64);
            let seq = result.sent;
            let (key, value) = builder.build(seq, wall);
            let bytes = value.len() as u64;
            let record = FutureRecord::to(&ctx.topic).key(key).payload(value);
            match producer.send_result(record) {
                Ok(fut) => {
                    if ctx.pace.is_some() && now >= ctx.measure_from {
                        let lag = now.duration_since(started).as_micros() as u64;
                        result.send_lag.saturating_record(lag.max(1));
                    }
                    pending.push(Pending {
                        fut,
                        started,
                        seq,
                        bytes,
                    });
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's queue is full: wait for a delivery, then retry this
                    // same message; its latency keeps counting from `started`.
                    if pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        let (p, out) = next_delivery(&mut pending).await;
                        complete(&mut rec, &mut result, &ctx, p, out);
                    }
                    continue;
                }
                Err((e, _)) => {
                    rec.record_error(Instant::now());
                    result
                        .first_error
                        .get_or_insert_with(|| format!("enqueue failed: {e}"));
                }
            }
            if ctx.track_acks {
                result.acked_seqs.push(false);
            }
            result.sent += 1;
            current_start = None;
            if let Some(p) = ctx.pace {
                next_at += p;
            }
            continue;
        }

        // Nothing to send right now: wait for a delivery, or for the next scheduled
        // send (open loop) / the end of the sending window.
        let mut wake: Option<Instant> = None;
        if may_send && pending.len() < cap {
            wake = Some(next_at);
        }
        if may_send {
            if let Some(d) = ctx.send_until {
                wake = Some(wake.map_or(d, |w| w.min(d)));
            }
        }
        if pending.is_empty() {
            match wake {
                Some(w) => tokio::time::sleep_until(w.into()).await,
                None => break,
            }
            continue;
        }
        let sleep_until = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            (p, out) = next_delivery(&mut pending) => complete(&mut rec, &mut result, &ctx, p, out),
            _ = tokio::time::sleep_until(sleep_until.into()), if wake.is_some() => {}
        }
    }
    result.totals = rec.finish();
    result
}

fn complete(
    rec: &mut Recorder,
    result: &mut ProducerResult,
    ctx: &ProduceCtx,
    p: Pending,
    out: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, String>,
) {
    let now = Instant::now();
    match out {
        Ok(Ok(_delivery)) => {
            rec.record_ok(now, now.duration_since(p.started), p.bytes);
            result.acked += 1;
            if ctx.track_acks {
                result.acked_seqs[p.seq as usize] = true;
            }
        }
        Ok(Err((e, _))) => {
            rec.record_error(now);
            result
                .first_error
                .get_or_insert_with(|| format!("delivery failed: {e}"));
        }
        Err(e) => {
            rec.record_error(now);
            result.first_error.get_or_insert(e);
        }
    }
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
    /// When the last task finished (the last acknowledgement arrived).
    pub finished_at: Instant,
}

pub async fn join(handles: Vec<JoinHandle<ProducerResult>>) -> anyhow::Result<ProduceOutcome> {
    let mut out = ProduceOutcome {
        totals: Totals::default(),
        sent: 0,
        acked: 0,
        acked_seqs: Vec::new(),
        first_error: None,
        send_lag: new_histogram(),
        finished_at: Instant::now(),
    };
    let mut results = Vec::with_capacity(handles.len());
    for h in handles {
        results.push(h.await?);
    }
    out.finished_at = Instant::now();
    results.sort_by_key(|r| r.producer_id);
    for r in results {
        out.totals.merge(&r.totals);
        out.sent += r.sent;
        out.acked += r.acked;
        out.send_lag
            .add(&r.send_lag)
            .expect("histograms share bounds");
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
        out.acked_seqs.push(r.acked_seqs);
    }
    Ok(out)
}
