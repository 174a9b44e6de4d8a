//! `chronik-bench`: a load generator for Kafka-compatible brokers, over librdkafka.
//!
//! Layout: `cli` (flags) → `config` (value parsing, cross-flag checks) → `runner`
//! (topic setup, one mode, validation, teardown) → the modes `produce`, `consume`,
//! `round_trip`, `metadata`. Figures are kept by `stats` (per-task histograms, merged
//! at the end) and `progress` (the live line and interval series), and printed by
//! `report`. Producing is `produce` (timeline, instances, merged outcome) → `sender`
//! (one thread per producer instance driving its tasks) with `delivery` (reports from
//! librdkafka's polling thread) and `slots` (messages in flight). `message` builds keys
//! and values, `payload` the checkable header, `clock` the send stamps; `validate` reads
//! a topic back against what was acknowledged; `client` holds the librdkafka settings.
//!
//! Exit status: 0 when the run is trustworthy; 1 when nothing was acknowledged or
//! consumed, when validation found acknowledged messages missing or corrupt, or (with
//! --validate) when any send failed; 2 for bad flags.

mod cli;
mod client;
mod client_log;
mod clock;
mod config;
mod consume;
mod delivery;
mod enqueue;
mod message;
mod metadata;
mod payload;
mod produce;
mod progress;
mod report;
mod round_trip;
mod runner;
mod sender;
mod slots;
mod stats;
mod validate;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let plan = match config::check(&args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(runner::run(args.clone(), plan)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.render());
    let mut status = if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if let Some(path) = &args.json_output {
        if let Err(e) = report.write_json(path) {
            eprintln!("error: {e:#}");
            status = ExitCode::FAILURE;
        }
    }
    if let Some(path) = &args.csv_output {
        if let Err(e) = report.write_csv(path) {
            eprintln!("error: {e:#}");
            status = ExitCode::FAILURE;
        }
    }
    status
}
