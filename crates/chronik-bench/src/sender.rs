//! One producer instance's sender thread: drives every producer task that shares the
//! instance, and keeps all of their accounting.
//!
//! Tasks are state, not threads: a task is its next sequence, its outstanding count and
//! its message builder. The thread sends whichever task is due first (closed loop: the
//! one that got a permit back longest ago; open loop: the earliest scheduled send), so
//! `-c 128 --in-flight 1` costs one thread and no wake-up per message, and
//! `--in-flight 100000` runs as one tight loop around librdkafka's enqueue.
//!
//! Delivery reports arrive through `Reports` (stamped by librdkafka's polling thread);
//! this thread records each one into its `Recorder`, marks the sequence acknowledged and
//! gives the task its permit back. Nothing here is shared, so nothing is locked per
//! message except the report queue. The thread ends when no task may send any more and
//! every message it sent has been reported.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;

use crate::delivery::{Acked, Failed};
use crate::enqueue::Enqueuer;
use crate::message::MessageBuilder;
use crate::produce::ProduceCtx;
use crate::slots::{InFlight, Slots};
use crate::stats::{new_histogram, Recorder, Totals};

/// Sends between two looks at the delivery reports.
const BURST: u32 = 64;
/// Longest sleep without a reason to wake (a safety net; reports wake the thread).
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// After librdkafka refused a message (its queue is full), wait this long for a report
/// before trying again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);

/// What one producer task did.
pub struct TaskResult {
    pub producer_id: u32,
    /// Sequences sent (acked or not).
    pub sent: u64,
    /// Sequences acknowledged, warm-up included.
    pub acked: u64,
    /// `acked_seqs[seq]`: whether `seq` was acknowledged (only with `track_acks`).
    pub acked_seqs: Vec<bool>,
}

/// What one instance's thread hands back.
pub struct InstanceResult {
    pub tasks: Vec<TaskResult>,
    pub totals: Totals,
    pub first_error: Option<String>,
    /// Open loop: how late each measured send left against its schedule (µs).
    pub send_lag: Histogram<u64>,
    /// When the last delivery report was taken.
    pub finished_at: Instant,
}

struct Task {
    builder: MessageBuilder,
    result: TaskResult,
    quota: u64,
    outstanding: u32,
    /// Open loop: when the next message is scheduled (`None` in closed loop).
    next_at: Option<Instant>,
    /// Closed loop: the first attempt of a message librdkafka refused (queue full); its
    /// retry's latency counts from there.
    retry_from: Option<Instant>,
    /// At its outstanding cap: back in the ready queue when a report returns a permit.
    blocked: bool,
}

pub struct Instance {
    ctx: Arc<ProduceCtx>,
    out: Enqueuer,
    tasks: Vec<Task>,
    /// Tasks that may send, keyed by when their next message is due.
    ready: BinaryHeap<Reverse<(Instant, usize)>>,
    in_flight: Slots,
    /// Most messages outstanding per task.
    cap: u32,
    /// False once the sending window has closed (`--duration`).
    window_open: bool,
    rec: Recorder,
    send_lag: Histogram<u64>,
    first_error: Option<String>,
    acked: Vec<Acked>,
    failed: Vec<Failed>,
}

impl Instance {
    /// `tasks`: (producer id, quota, builder) of each task this instance drives.
    pub fn new(
        ctx: Arc<ProduceCtx>,
        out: Enqueuer,
        tasks: Vec<(u32, u64, MessageBuilder)>,
        cap: u32,
        rec: Recorder,
    ) -> Instance {
        let c = f64::from(ctx.args.concurrency);
        let mut ready = BinaryHeap::new();
        let tasks: Vec<Task> = tasks
            .into_iter()
            .enumerate()
            .map(|(i, (id, quota, builder))| {
                // Stagger tasks across one interval so open-loop sends do not come in bursts.
                let next_at = ctx
                    .pace
                    .map(|p| ctx.run_start + p.mul_f64(f64::from(id) / c));
                if quota > 0 {
                    ready.push(Reverse((next_at.unwrap_or(ctx.run_start), i)));
                }
                Task {
                    builder,
                    result: TaskResult {
                        producer_id: id,
                        sent: 0,
                        acked: 0,
                        acked_seqs: Vec::new(),
                    },
                    quota,
                    outstanding: 0,
                    next_at,
                    retry_from: None,
                    blocked: false,
                }
            })
            .collect();
        Instance {
            ctx,
            out,
            tasks,
            ready,
            in_flight: Slots::default(),
            cap,
            window_open: true,
            rec,
            send_lag: new_histogram(),
            first_error: None,
            acked: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// Runs until every task is done and every message reported.
    pub fn run(mut self) -> InstanceResult {
        let mut now = Instant::now();
        loop {
            self.take_reports();
            let mut sent = 0;
            let mut queue_full = false;
            while sent < BURST {
                if self.ctx.send_until.is_some_and(|d| now >= d) {
                    self.window_open = false;
                    self.ready.clear();
                }
                match self.ready.peek() {
                    Some(Reverse((due, _))) if *due <= now => {}
                    _ => break,
                }
                if self.send_next(now).is_err() {
                    queue_full = true;
                    break;
                }
                sent += 1;
                now = Instant::now();
            }
            if sent > 0 && !queue_full {
                continue;
            }
            if self.ready.is_empty() && self.in_flight.len() == 0 {
                break;
            }
            // Nothing due: sleep until a report arrives, or the next scheduled send, or
            // the end of the sending window.
            let mut until = now
                + if queue_full {
                    QUEUE_FULL_BACKOFF
                } else {
                    MAX_SLEEP
                };
            if let Some(Reverse((due, _))) = self.ready.peek() {
                until = until.min(*due);
                if let Some(d) = self.ctx.send_until {
                    until = until.min(d);
                }
            }
            if until > now {
                self.out.producer().context().wait(until);
            }
            now = Instant::now();
        }
        let finished_at = Instant::now();
        InstanceResult {
            tasks: self.tasks.into_iter().map(|t| t.result).collect(),
            totals: self.rec.finish(),
            first_error: self.first_error,
            send_lag: self.send_lag,
            finished_at,
        }
    }

    /// Sends the first ready task's next message; `Err` if librdkafka's queue is full
    /// (the task stays first in line, its message not sent).
    fn send_next(&mut self, now: Instant) -> Result<(), ()> {
        let Reverse((due, i)) = self.ready.pop().expect("a ready task");
        let ctx = &*self.ctx;
        let task = &mut self.tasks[i];
        let started = task.next_at.or(task.retry_from).unwrap_or(now);
        let seq = task.result.sent;
        let (key, value) = task.builder.build(seq, ctx.clock.unix_ns(started));
        let slot = self.in_flight.insert(InFlight {
            task: i as u32,
            seq,
            started,
        });
        // CreateTime from our clock read, which spares librdkafka one of its own.
        let create_ms = (ctx.clock.unix_ns(now) / 1_000_000) as i64;
        match self.out.send(key, value, slot, create_ms) {
            Ok(()) => {
                task.outstanding += 1;
                if ctx.pace.is_some() && now >= ctx.measure_from {
                    let lag = now.saturating_duration_since(started).as_micros() as u64;
                    self.send_lag.saturating_record(lag.max(1));
                }
            }
            Err(RDKafkaErrorCode::QueueFull) => {
                self.in_flight.remove(slot);
                task.retry_from = Some(started);
                self.ready.push(Reverse((due, i)));
                return Err(());
            }
            Err(code) => {
                self.in_flight.remove(slot);
                self.rec.record_error(now);
                self.first_error.get_or_insert_with(|| {
                    format!("enqueue failed: {}", KafkaError::MessageProduction(code))
                });
            }
        }
        task.retry_from = None;
        if ctx.track_acks {
            task.result.acked_seqs.push(false);
        }
        task.result.sent += 1;
        if let (Some(at), Some(p)) = (&mut task.next_at, ctx.pace) {
            *at += p;
        }
        if task.result.sent < task.quota {
            if task.outstanding < self.cap {
                let key = task.next_at.unwrap_or(now);
                self.ready.push(Reverse((key, i)));
            } else {
                task.blocked = true;
            }
        }
        Ok(())
    }

    /// Records every queued delivery report and returns the permits.
    fn take_reports(&mut self) {
        self.out
            .producer()
            .context()
            .take(&mut self.acked, &mut self.failed);
        let bytes = self.ctx.message_size as u64;
        let mut batch = self.rec.batch();
        for a in self.acked.drain(..) {
            let m = self.in_flight.remove(a.slot);
            batch.record_ok(a.at, a.at.saturating_duration_since(m.started), bytes);
            let task = &mut self.tasks[m.task as usize];
            task.result.acked += 1;
            if self.ctx.track_acks {
                task.result.acked_seqs[m.seq as usize] = true;
            }
            permit_returned(task, &mut self.ready, self.window_open, m.task, a.at);
        }
        for f in self.failed.drain(..) {
            let m = self.in_flight.remove(f.slot);
            batch.record_error(f.at);
            self.first_error
                .get_or_insert_with(|| format!("delivery failed: {}", f.error));
            let task = &mut self.tasks[m.task as usize];
            permit_returned(task, &mut self.ready, self.window_open, m.task, f.at);
        }
    }
}

/// A report for one of task `i`'s messages came back: one more message may be
/// outstanding, so a task waiting at its cap is ready again (closed loop: from `at`;
/// open loop: its schedule says when).
fn permit_returned(
    task: &mut Task,
    ready: &mut BinaryHeap<Reverse<(Instant, usize)>>,
    window_open: bool,
    i: u32,
    at: Instant,
) {
    task.outstanding -= 1;
    if task.blocked && window_open {
        task.blocked = false;
        let key = task.next_at.unwrap_or(at);
        ready.push(Reverse((key, i as usize)));
    }
}
