//! Runs one mode end to end: topic setup, the mode itself, validation, teardown, and
//! the failures that make the process exit non-zero.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::cli::{Args, Mode};
use crate::client;
use crate::config::RunPlan;
use crate::produce::{self, ProduceCtx, ProduceOutcome};
use crate::progress::Progress;
use crate::report::{Report, Settings};

pub async fn run(args: Args, plan: RunPlan) -> Result<Report> {
    let run_id: u32 = rand::random();
    let mut notes = Vec::new();
    let needs_topic_admin =
        args.mode != Mode::Metadata && (args.create_topic || args.delete_topic_after);
    let admin = if needs_topic_admin {
        Some(client::admin(&args)?)
    } else {
        None
    };
    if let (Some(admin), true) = (&admin, args.create_topic) {
        let created =
            client::create_topic(admin, &args.topic, args.partitions, args.replication_factor)
                .await?;
        notes.push(if created {
            format!(
                "created topic {} ({} partitions, replication {})",
                args.topic, args.partitions, args.replication_factor
            )
        } else {
            format!("topic {} already existed and was reused", args.topic)
        });
    }

    let mut report = match args.mode {
        Mode::Produce => run_produce(&args, &plan, run_id).await?,
        Mode::Consume => crate::consume::run(&args, &plan, run_id).await?,
        Mode::RoundTrip => crate::round_trip::run(&args, &plan, run_id).await?,
        Mode::Metadata => crate::metadata::run(&args, &plan, run_id).await?,
    };
    notes.append(&mut report.notes);
    report.notes = notes;

    if let (Some(admin), true) = (&admin, args.delete_topic_after) {
        match client::delete_topic(admin, &args.topic).await {
            Ok(()) => report.notes.push(format!("deleted topic {}", args.topic)),
            Err(e) => report
                .notes
                .push(format!("could not delete topic {}: {e:#}", args.topic)),
        }
    }
    (report.client_warnings, report.client_warning_samples) = crate::client_log::snapshot();
    Ok(report)
}

async fn run_produce(args: &Args, plan: &RunPlan, run_id: u32) -> Result<Report> {
    let ctx = Arc::new(ProduceCtx::new(args, plan, run_id));
    let (cells, handles) = produce::spawn(ctx.clone(), plan)?;
    let progress = Progress::start(
        "acked",
        cells,
        Duration::from_secs(args.report_interval_secs),
        ctx.run_start,
        ctx.measure_from,
    );
    let out = produce::join(handles).await?;
    let rows = progress.finish().await;
    let measured = out
        .finished_at
        .saturating_duration_since(ctx.measure_from)
        .as_secs_f64();
    let mut report = Report::new(
        Settings::of(args, plan),
        run_id,
        "acknowledged",
        if args.rate_limit.is_some() {
            "scheduled send to acknowledgement (open loop)"
        } else {
            "send to acknowledgement (closed loop)"
        },
        &out.totals,
        measured,
        rows,
    );
    producer_verdict(&mut report, &out);
    if args.rate_limit.is_none() {
        report.notes.push(
            "closed loop: a stalled broker also stalls the sends, so percentiles undercount \
             stalls (coordinated omission); look at max and the interval series, or use \
             --rate-limit for latency under a fixed load"
                .into(),
        );
    }
    if args.validate {
        validate_into(&mut report, args, run_id, out.acked_seqs).await?;
    } else {
        report.notes.push(
            "not validated: figures count acknowledgements only (--validate reads them back)"
                .into(),
        );
    }
    Ok(report)
}

/// Records sent/acked counts and the failures every producing mode shares.
pub fn producer_verdict(report: &mut Report, out: &ProduceOutcome) {
    report.sent = Some(out.sent);
    report.acknowledged = Some(out.acked);
    report.first_error = out.first_error.clone();
    if !out.send_lag.is_empty() {
        report.other_latencies.push(crate::report::NamedLatency {
            name: "send lag".into(),
            latency: crate::stats::LatencySummary::of(&out.send_lag),
        });
        report.notes.push(
            "open loop: latency counts from the scheduled send; `send lag` is how late the \
             bench itself sent (timer wake-up, CPU contention)"
                .into(),
        );
    }
    if out.acked == 0 {
        report.failures.push("nothing was acknowledged".to_string());
    }
}

/// Reads the topic back and records the verdict; with --validate any error fails the run.
pub async fn validate_into(
    report: &mut Report,
    args: &Args,
    run_id: u32,
    acked_seqs: Vec<Vec<bool>>,
) -> Result<()> {
    let errors = report.errors + report.warmup_errors;
    if errors > 0 {
        report.failures.push(format!(
            "{errors} send(s) failed (--validate treats errors as failures)"
        ));
    }
    eprintln!(
        "validating: reading {} back from the beginning…",
        args.topic
    );
    let a = args.clone();
    let v = tokio::task::spawn_blocking(move || {
        crate::validate::read_back(&a, &a.topic, run_id, acked_seqs)
    })
    .await??;
    if !v.passed() {
        report.failures.push(format!(
            "validation failed: {} missing, {} corrupt, {} unexpected{}",
            v.missing,
            v.corrupt,
            v.unexpected,
            if v.timed_out {
                " (read-back timed out)"
            } else {
                ""
            }
        ));
    }
    report.validation = Some(v);
    Ok(())
}
