//! Value parsers for flags clap cannot check alone, and the checks that span flags.
//!
//! `check` turns parsed `Args` into a `RunPlan` (the settled run length and limits) or a
//! clear error, before any connection is made.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{Args, Mode};
use crate::payload::HEADER_LEN;

/// The duration used when neither `--duration` nor `--message-count` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Producer acknowledgement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acks {
    /// acks=0: "acknowledged" only means librdkafka sent it.
    None,
    /// acks=1: the leader wrote it.
    Leader,
    /// acks=all (-1): the in-sync replicas have it.
    All,
}

impl Acks {
    /// librdkafka's `acks` value.
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// Parses `0`, `1`, `-1` or `all`.
pub fn parse_acks(s: &str) -> Result<Acks, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "-1" | "all" => Ok(Acks::All),
        other => Err(format!("invalid acks `{other}`: expected 0, 1, -1 or all")),
    }
}

/// Parses `250ms`, `15s`, `2m`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration `{s}`: expected a number with an optional ms/s/m/h suffix, e.g. 15s"
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: `{num}` is not a number"))?;
    let secs_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "invalid duration `{s}`: unknown unit `{other}` (use ms, s, m or h)"
            ))
        }
    };
    let secs = value * secs_per_unit;
    if !secs.is_finite() || secs > 366.0 * 24.0 * 3600.0 {
        return Err(format!("invalid duration `{s}`: too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The settled shape of a run, derived from `Args` once.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// Measuring time after warm-up; `None` means "until --message-count is reached".
    pub duration: Option<Duration>,
    pub warmup: Duration,
    pub message_count: Option<u64>,
    /// Whether payloads carry the bench header (validation, round-trip timestamps).
    pub with_header: bool,
}

/// Checks flag combinations and settles the run length.
pub fn check(args: &Args) -> Result<RunPlan> {
    let producing = matches!(args.mode, Mode::Produce | Mode::RoundTrip);
    if args.validate && !producing {
        bail!("--validate checks what this run produced: use it with -m produce or -m round-trip");
    }
    // Round-trip reads its timestamp from the header; validation its id and checksum.
    // Produce mode always writes it when it fits, so a later consume can check content.
    let with_header = producing && args.message_size >= HEADER_LEN;
    if (args.validate || args.mode == Mode::RoundTrip) && !with_header {
        bail!(
            "--message-size {} is too small: {} needs at least {HEADER_LEN} bytes for the \
             bench header (run id, producer id, sequence, timestamp, checksum)",
            args.message_size,
            if args.validate {
                "--validate"
            } else {
                "-m round-trip"
            },
        );
    }
    if args.message_size > 100 * 1024 * 1024 {
        bail!("--message-size {} is above 100 MiB", args.message_size);
    }
    if let Some(rate) = args.rate_limit {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate-limit must be a positive number of messages per second");
        }
        if !producing {
            bail!("--rate-limit paces producers: use it with -m produce or -m round-trip");
        }
    }
    if args.message_count == Some(0) {
        bail!("--message-count must be at least 1");
    }
    if args.consumer_group.is_some() && args.mode != Mode::Consume {
        bail!("--consumer-group applies to -m consume only");
    }
    if args.duration == Some(Duration::ZERO) {
        bail!("--duration must be above zero");
    }
    if args.topic.is_empty() {
        bail!("--topic must not be empty");
    }
    let duration = match (args.duration, args.message_count) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_DURATION),
    };
    Ok(RunPlan {
        duration,
        warmup: args.warmup_duration,
        message_count: args.message_count,
        with_header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "s", "ten", "5x", "1.2.3s", "-1s", "99999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn acks() {
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert_eq!(parse_acks("ALL"), Ok(Acks::All));
        assert!(parse_acks("2").is_err());
    }

    fn plan(args: &[&str]) -> Result<RunPlan> {
        check(
            &Args::try_parse_from(std::iter::once("chronik-bench").chain(args.iter().copied()))
                .unwrap(),
        )
    }

    #[test]
    fn run_length() {
        assert_eq!(plan(&[]).unwrap().duration, Some(DEFAULT_DURATION));
        assert_eq!(plan(&["-n", "10"]).unwrap().duration, None);
        assert_eq!(
            plan(&["-n", "10", "-d", "3s"]).unwrap().duration,
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn combos() {
        let err = plan(&["--validate", "-s", "8"]).unwrap_err().to_string();
        assert!(err.contains("too small"), "{err}");
        assert!(plan(&["-m", "round-trip", "-s", "8"]).is_err());
        assert!(plan(&["-m", "consume", "--validate"]).is_err());
        assert!(plan(&["-m", "consume", "--rate-limit", "10"]).is_err());
        assert!(plan(&["--rate-limit", "0"]).is_err());
        assert!(plan(&["-n", "0"]).is_err());
        assert!(plan(&["-d", "0s"]).is_err());
        assert!(plan(&["--consumer-group", "g"]).is_err());
        assert!(plan(&["--validate", "-s", "64"]).unwrap().with_header);
        assert!(!plan(&["-s", "8"]).unwrap().with_header);
    }
}
