//! Command-line flags of `chronik-bench`, exactly as scripts call them.
//!
//! This file only declares flags and their enums. Parsing of values that clap cannot
//! check alone (durations, acks) lives in `config.rs`, together with the checks that
//! span several flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config::{parse_acks, parse_duration, Acks};

/// A load generator for Kafka-compatible brokers, over librdkafka.
///
/// Every figure it prints counts acknowledged messages only; with `--validate` it reads
/// the topic back and checks that each acknowledged message arrived intact.
#[derive(Debug, Clone, Parser)]
#[command(name = "chronik-bench", version, about, long_about = None)]
pub struct Args {
    /// Brokers to bootstrap from (host:port[,host:port...]).
    #[arg(
        short = 'b',
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "localhost:9092"
    )]
    pub bootstrap_servers: String,

    /// Topic to produce to / consume from.
    #[arg(short = 't', long, default_value = "chronik-bench")]
    pub topic: String,

    /// Concurrent producer tasks (produce, round-trip), consumers (consume) or
    /// admin workers (metadata).
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,

    /// Size of each message value in bytes.
    #[arg(short = 's', long, default_value_t = 256)]
    pub message_size: usize,

    /// How long to measure (e.g. 500ms, 15s, 2m, 1h). Default 10s unless
    /// --message-count is given, in which case there is no time limit.
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Warm-up before measuring (same suffixes as --duration). Warm-up messages are
    /// not in the figures but are still validated.
    #[arg(short = 'w', long, value_parser = parse_duration, default_value = "0s")]
    pub warmup_duration: Duration,

    /// What to measure.
    #[arg(short = 'm', long, value_enum, default_value_t = Mode::Produce)]
    pub mode: Mode,

    /// Producer acks: 0, 1, -1 or all.
    #[arg(long, value_parser = parse_acks, default_value = "1", allow_hyphen_values = true)]
    pub acks: Acks,

    /// Producer compression codec.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,

    /// Producer linger.ms (how long librdkafka waits to fill a batch).
    #[arg(long, default_value_t = 0)]
    pub linger_ms: u64,

    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: u64,

    /// Partitions when creating the topic (--create-topic, metadata mode).
    #[arg(short = 'p', long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub partitions: i32,

    /// Replication factor when creating the topic.
    #[arg(short = 'r', long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=100))]
    pub replication_factor: i32,

    /// Create the topic first (an existing topic is reused, and said so).
    #[arg(long)]
    pub create_topic: bool,

    /// Delete the topic when done (after validation).
    #[arg(long)]
    pub delete_topic_after: bool,

    /// Total messages to send (produce, round-trip, warm-up included) or to read
    /// (consume); total operations in metadata mode.
    #[arg(short = 'n', long)]
    pub message_count: Option<u64>,

    /// Aggregate send rate in msg/s. Switches producers to open loop: sends are
    /// scheduled at fixed intervals and latency counts from the scheduled time.
    #[arg(long)]
    pub rate_limit: Option<f64>,

    /// Messages each producer task keeps outstanding (closed loop).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub in_flight: u32,

    /// How long librdkafka keeps trying to deliver a message before failing it
    /// (message.timeout.ms).
    #[arg(long, default_value_t = 30_000)]
    pub message_timeout_ms: u64,

    /// librdkafka producer instances shared by the producer tasks (see produce.rs).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub producer_instances: u32,

    /// Message keys.
    #[arg(long, value_enum, default_value_t = KeyPattern::Random)]
    pub key_pattern: KeyPattern,

    /// Message value filler after the bench header.
    #[arg(long, value_enum, default_value_t = PayloadPattern::Random)]
    pub payload_pattern: PayloadPattern,

    /// Consume mode: join this group (subscribe) instead of assigning all partitions.
    #[arg(long)]
    pub consumer_group: Option<String>,

    /// Seconds between progress lines (and rows of the interval series).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub report_interval_secs: u64,

    /// Write the full report (totals, latencies, interval series) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json_output: Option<PathBuf>,

    /// Write the interval series as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv_output: Option<PathBuf>,

    /// After producing, read the topic back from the beginning and check that every
    /// acknowledged message arrived exactly once with intact content.
    #[arg(long)]
    pub validate: bool,

    /// How long validation may take to read everything back before giving up.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub validate_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Producers only; latency = send → ack.
    Produce,
    /// Consumers only; reads what is already in the topic.
    Consume,
    /// Producers and a consumer; latency = send → arrival at the consumer.
    RoundTrip,
    /// Topic create / metadata / delete through the admin API.
    Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// librdkafka's `compression.type` value.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyPattern {
    /// A random 16-hex-digit key per message (spreads over partitions).
    Random,
    /// `<task>-<sequence>`.
    Sequential,
    /// The same key for every message (one partition).
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadPattern {
    /// Fresh random bytes per message (incompressible).
    Random,
    /// Zero bytes (maximally compressible).
    Zeros,
    /// Repeated English-like text (compresses like logs do).
    Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("chronik-bench").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.mode, Mode::Produce);
        assert_eq!(a.concurrency, 1);
        assert_eq!(a.in_flight, 1);
        assert_eq!(a.acks, Acks::Leader);
        assert_eq!(a.duration, None);
        assert_eq!(a.warmup_duration, Duration::ZERO);
    }

    #[test]
    fn founding_scenario_flags() {
        let a = parse(&[
            "-b",
            "127.0.0.1:9999",
            "-t",
            "t1",
            "-c",
            "128",
            "-s",
            "256",
            "-d",
            "15s",
            "-w",
            "2s",
            "-m",
            "produce",
            "--acks",
            "all",
            "--compression",
            "zstd",
            "--linger-ms",
            "5",
            "--batch-size",
            "65536",
            "-p",
            "3",
            "-r",
            "1",
            "--create-topic",
            "--delete-topic-after",
            "--key-pattern",
            "sequential",
            "--payload-pattern",
            "text",
            "--report-interval-secs",
            "2",
            "--json-output",
            "/tmp/x.json",
            "--csv-output",
            "/tmp/x.csv",
            "--validate",
            "--in-flight",
            "4",
        ])
        .unwrap();
        assert_eq!(a.bootstrap_servers, "127.0.0.1:9999");
        assert_eq!(a.concurrency, 128);
        assert_eq!(a.duration, Some(Duration::from_secs(15)));
        assert_eq!(a.warmup_duration, Duration::from_secs(2));
        assert_eq!(a.acks, Acks::All);
        assert_eq!(a.compression, Compression::Zstd);
        assert_eq!(a.partitions, 3);
        assert!(a.create_topic && a.delete_topic_after && a.validate);
        assert_eq!(a.key_pattern, KeyPattern::Sequential);
        assert_eq!(a.payload_pattern, PayloadPattern::Text);
        assert_eq!(a.in_flight, 4);
    }

    #[test]
    fn acks_minus_one_is_all() {
        assert_eq!(parse(&["--acks", "-1"]).unwrap().acks, Acks::All);
        assert_eq!(parse(&["--acks=-1"]).unwrap().acks, Acks::All);
        assert_eq!(parse(&["--acks", "0"]).unwrap().acks, Acks::None);
    }

    #[test]
    fn other_modes() {
        for (s, m) in [
            ("consume", Mode::Consume),
            ("round-trip", Mode::RoundTrip),
            ("metadata", Mode::Metadata),
        ] {
            assert_eq!(parse(&["-m", s]).unwrap().mode, m);
        }
        let a = parse(&["--rate-limit", "1000", "-n", "50", "--consumer-group", "g"]).unwrap();
        assert_eq!(a.rate_limit, Some(1000.0));
        assert_eq!(a.message_count, Some(50));
        assert_eq!(a.consumer_group.as_deref(), Some("g"));
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse(&["-m", "bogus"]).is_err());
        assert!(parse(&["--acks", "2"]).is_err());
        assert!(parse(&["--compression", "brotli"]).is_err());
        assert!(parse(&["-d", "ten"]).is_err());
        assert!(parse(&["-c", "0"]).is_err());
        assert!(parse(&["--no-such-flag"]).is_err());
    }
}
