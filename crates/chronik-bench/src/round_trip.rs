//! Round-trip mode: producers stamp each message with its (scheduled) send time, one
//! consumer reads the topic from the current end and measures send → arrival.
//!
//! The consumer is assigned every partition at the high watermark taken before the
//! first send, so it sees exactly this run's messages (others are counted as foreign).
//! When the producers are done it keeps reading until as many messages as were
//! acknowledged have arrived, or `--validate-timeout` passes; fewer arrivals than
//! acknowledgements fail the run. Sender and receiver are in this process and stamp
//! and read through the same `Clock`, so send → arrival is a monotonic difference.

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
use crate::clock::Clock;
use crate::config::RunPlan;
use crate::payload::{decode, DecodeError};
use crate::produce::{self, ProduceCtx};
use crate::progress::Progress;
use crate::report::{NamedLatency, Report, Settings};
use crate::runner::{producer_verdict, validate_into};
use crate::stats::{LatencySummary, Recorder, Totals};

/// When to stop: once `target` of our messages arrived, or at `deadline`.
type StopAt = Option<(u64, Instant)>;

struct Arrivals {
    totals: Totals,
    ours: u64,
    foreign: u64,
    corrupt: u64,
    last_arrival: Option<Instant>,
    timed_out: bool,
    first_error: Option<String>,
}

pub async fn run(args: &Args, plan: &RunPlan, run_id: u32) -> Result<Report> {
    let (partitions, marks) = partitions_and_watermarks(args, &args.topic).await?;
    let mut tpl = TopicPartitionList::new();
    for (p, (_, high)) in partitions.iter().zip(&marks) {
        tpl.add_partition_offset(&args.topic, *p, Offset::Offset(*high))?;
    }
    let consumer: StreamConsumer<BenchContext> = consumer_config(args, None)
        .create_with_context(BenchContext)
        .context("creating the round-trip consumer")?;
    consumer.assign(&tpl).context("assigning partitions")?;

    let ctx = Arc::new(ProduceCtx::new(args, plan, run_id));
    let (rec, cell) = Recorder::new(ctx.measure_from);
    let (stop_tx, stop_rx) = watch::channel::<StopAt>(None);
    let receiver = tokio::spawn(receive(consumer, rec, run_id, ctx.clock, stop_rx));
    let (_producer_cells, handles) = produce::spawn(ctx.clone(), plan)?;
    let progress = Progress::start(
        "arrived",
        vec![cell],
        Duration::from_secs(args.report_interval_secs),
        ctx.run_start,
        ctx.measure_from,
    );
    let out = produce::join(handles).await?;
    stop_tx.send_replace(Some((out.acked, Instant::now() + args.validate_timeout)));
    let got = receiver.await?;
    let rows = progress.finish().await;
    drop(stop_tx);

    let end = got.last_arrival.unwrap_or(out.finished_at);
    let measured = end
        .saturating_duration_since(ctx.measure_from)
        .as_secs_f64();
    let mut report = Report::new(
        Settings::of(args, plan),
        run_id,
        "arrived at the consumer",
        "send (scheduled send with --rate-limit) to arrival at the consumer",
        &got.totals,
        measured,
        rows,
    );
    report.other_latencies.push(NamedLatency {
        name: "ack latency".into(),
        latency: LatencySummary::of(&out.totals.measured.hist),
    });
    producer_verdict(&mut report, &out);
    report.first_error = report.first_error.take().or(got.first_error);
    report.notes.push(format!(
        "consumer: {} of this run's messages arrived for {} acknowledged; {} foreign, {} corrupt",
        got.ours, out.acked, got.foreign, got.corrupt
    ));
    if got.ours < out.acked {
        report.failures.push(format!(
            "{} acknowledged message(s) never reached the consumer{}",
            out.acked - got.ours,
            if got.timed_out {
                " (gave up after --validate-timeout)"
            } else {
                ""
            }
        ));
    }
    if got.corrupt > 0 {
        report
            .failures
            .push(format!("{} message(s) arrived corrupt", got.corrupt));
    }
    if args.validate {
        validate_into(&mut report, args, run_id, out.acked_seqs).await?;
    }
    Ok(report)
}

async fn receive(
    consumer: StreamConsumer<BenchContext>,
    mut rec: Recorder,
    run_id: u32,
    clock: Clock,
    mut stop: watch::Receiver<StopAt>,
) -> Arrivals {
    let mut a = Arrivals {
        totals: Totals::default(),
        ours: 0,
        foreign: 0,
        corrupt: 0,
        last_arrival: None,
        timed_out: false,
        first_error: None,
    };
    loop {
        let stop_at = *stop.borrow_and_update();
        let deadline = match stop_at {
            Some((target, _)) if a.ours >= target => break,
            Some((_, deadline)) if Instant::now() >= deadline => {
                a.timed_out = true;
                break;
            }
            Some((_, deadline)) => Some(deadline),
            None => None,
        };
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            m = consumer.recv() => {
                let now = Instant::now();
                match m {
                    Ok(m) => match decode(m.payload().unwrap_or_default()) {
                        Ok(h) if h.run_id == run_id => {
                            let lat = clock.since(h.send_time_ns, now);
                            rec.record_ok(now, lat, m.payload_len() as u64);
                            a.ours += 1;
                            a.last_arrival = Some(now);
                        }
                        Ok(_) | Err(DecodeError::Foreign) => a.foreign += 1,
                        Err(DecodeError::Corrupt) => {
                            a.corrupt += 1;
                            rec.record_error(now);
                        }
                    },
                    Err(e) => {
                        rec.record_error(now);
                        a.first_error.get_or_insert_with(|| format!("consume error: {e}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            _ = stop.changed() => {}
            _ = tokio::time::sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() => {}
        }
    }
    a.totals = rec.finish();
    a
}
