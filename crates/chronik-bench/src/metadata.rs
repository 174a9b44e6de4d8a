//! Metadata mode: each of `-c` workers loops create topic → Metadata until the topic is
//! visible with all its partitions → delete topic, through the admin API.
//!
//! The headline latency is one whole cycle; create, metadata (create → visible) and
//! delete are reported separately. A cycle with any failed step counts as an error.
//! Topic names are `<topic>-meta-<run id>-<worker>-<n>`, so runs never collide.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::AdminClient;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::cli::Args;
use crate::client::{self, consumer_config, REQUEST_TIMEOUT};
use crate::client_log::BenchContext;
use crate::config::RunPlan;
use crate::progress::Progress;
use crate::report::{NamedLatency, Report, Settings};
use crate::stats::{LatencySummary, Recorder, Totals};

/// How long a created topic may take to show up in Metadata responses.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);

struct Shared {
    admin: AdminClient<BenchContext>,
    meta: Arc<BaseConsumer<BenchContext>>,
    prefix: String,
    partitions: i32,
    replication: i32,
    until: Option<Instant>,
    quota: AtomicI64,
}

struct WorkerResult {
    cycle: Totals,
    create: Totals,
    metadata: Totals,
    delete: Totals,
    first_error: Option<String>,
}

pub async fn run(args: &Args, plan: &RunPlan, run_id: u32) -> Result<Report> {
    let run_start = Instant::now();
    let measure_from = run_start + plan.warmup;
    let shared = Arc::new(Shared {
        admin: client::admin(args)?,
        meta: Arc::new(
            consumer_config(args, None)
                .create_with_context(BenchContext)
                .context("creating the metadata client")?,
        ),
        prefix: format!("{}-meta-{run_id:08x}", args.topic),
        partitions: args.partitions,
        replication: args.replication_factor,
        until: plan.duration.map(|d| measure_from + d),
        quota: AtomicI64::new(plan.message_count.map_or(i64::MAX, |n| n as i64)),
    });
    let mut cells = Vec::new();
    let mut handles = Vec::new();
    for worker in 0..args.concurrency {
        let (rec, cell) = Recorder::new(measure_from);
        cells.push(cell);
        handles.push(tokio::spawn(worker_loop(
            shared.clone(),
            worker,
            rec,
            measure_from,
        )));
    }
    let progress = Progress::start(
        "cycles",
        cells,
        Duration::from_secs(args.report_interval_secs),
        run_start,
        measure_from,
    );
    let mut all = WorkerResult {
        cycle: Totals::default(),
        create: Totals::default(),
        metadata: Totals::default(),
        delete: Totals::default(),
        first_error: None,
    };
    for h in handles {
        let r = h.await?;
        all.cycle.merge(&r.cycle);
        all.create.merge(&r.create);
        all.metadata.merge(&r.metadata);
        all.delete.merge(&r.delete);
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
    }
    let finished = Instant::now();
    let rows = progress.finish().await;
    let mut report = Report::new(
        Settings::of(args, plan),
        run_id,
        "create/metadata/delete cycles",
        "one create → visible in Metadata → delete cycle",
        &all.cycle,
        finished
            .saturating_duration_since(measure_from)
            .as_secs_f64(),
        rows,
    );
    for (name, t) in [
        ("create", &all.create),
        ("metadata", &all.metadata),
        ("delete", &all.delete),
    ] {
        report.other_latencies.push(NamedLatency {
            name: name.into(),
            latency: LatencySummary::of(&t.measured.hist),
        });
    }
    report.first_error = all.first_error;
    if all.cycle.measured.msgs + all.cycle.warmup_msgs == 0 {
        report.failures.push("no cycle completed".into());
    }
    Ok(report)
}

async fn worker_loop(
    shared: Arc<Shared>,
    worker: u32,
    mut cycle: Recorder,
    measure_from: Instant,
) -> WorkerResult {
    let (mut create, _) = Recorder::new(measure_from);
    let (mut metadata, _) = Recorder::new(measure_from);
    let (mut delete, _) = Recorder::new(measure_from);
    let mut first_error = None;
    for n in 0u64.. {
        if shared.until.is_some_and(|u| Instant::now() >= u)
            || shared.quota.fetch_sub(1, Ordering::Relaxed) <= 0
        {
            break;
        }
        let name = format!("{}-{worker}-{n}", shared.prefix);
        let start = Instant::now();
        let result = one_cycle(&shared, &name, &mut create, &mut metadata, &mut delete).await;
        let now = Instant::now();
        match result {
            Ok(()) => cycle.record_ok(now, now.duration_since(start), 0),
            Err(e) => {
                cycle.record_error(now);
                first_error.get_or_insert_with(|| format!("{e:#}"));
                // Do not hammer a broker that refuses: one failed cycle per 100 ms at most.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    WorkerResult {
        cycle: cycle.finish(),
        create: create.finish(),
        metadata: metadata.finish(),
        delete: delete.finish(),
        first_error,
    }
}

async fn one_cycle(
    shared: &Shared,
    name: &str,
    create: &mut Recorder,
    metadata: &mut Recorder,
    delete: &mut Recorder,
) -> Result<()> {
    let t0 = Instant::now();
    match client::create_topic(&shared.admin, name, shared.partitions, shared.replication).await {
        Ok(true) => create.record_ok(Instant::now(), t0.elapsed(), 0),
        Ok(false) => {
            create.record_error(Instant::now());
            bail!("CreateTopics {name}: topic already existed");
        }
        Err(e) => {
            create.record_error(Instant::now());
            return Err(e);
        }
    }

    let t1 = Instant::now();
    let visible = wait_visible(shared, name).await;
    match &visible {
        Ok(()) => metadata.record_ok(Instant::now(), t1.elapsed(), 0),
        Err(_) => metadata.record_error(Instant::now()),
    }

    let t2 = Instant::now();
    match client::delete_topic(&shared.admin, name).await {
        Ok(()) => delete.record_ok(Instant::now(), t2.elapsed(), 0),
        Err(e) => {
            delete.record_error(Instant::now());
            return Err(visible.err().unwrap_or(e));
        }
    }
    visible
}

/// Sends Metadata requests until `name` is listed with all its partitions.
async fn wait_visible(shared: &Shared, name: &str) -> Result<()> {
    let deadline = Instant::now() + VISIBLE_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        let meta = shared.meta.clone();
        let topic = name.to_string();
        let parts = tokio::task::spawn_blocking(move || {
            let md = meta.fetch_metadata(Some(&topic), REQUEST_TIMEOUT)?;
            Ok::<_, rdkafka::error::KafkaError>(
                md.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().len()),
            )
        })
        .await?;
        match parts {
            Ok(Some(n)) if n == shared.partitions as usize => return Ok(()),
            Ok(Some(n)) => last = format!("listed with {n} partitions"),
            Ok(None) => last = "not listed".into(),
            Err(e) => last = format!("Metadata request failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!(
        "topic {name} created but not visible with {} partitions after {:?}: {last}",
        shared.partitions,
        VISIBLE_TIMEOUT
    )
}
