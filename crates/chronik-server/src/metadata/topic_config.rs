//! Topic-level configs: the names Kafka clients use, their validation, and how they turn into the
//! storage layer's `LogConfig` and the partition's `min.insync.replicas`.
//!
//! A topic stores only its overrides; the effective value of every other config is the broker
//! default from `LogDefaults`.
//!
//! Two kinds of names: the *enforced* configs (`ENFORCED`) change what the broker does; the
//! *compatibility* configs (`ACCEPTED`) are ones Kafka tooling commonly sets (compression.type,
//! message.format.version, flush.*, ...). They are validated, stored and described so that such
//! tools work, but Chronik does not act on them: batches are stored as the producer compressed
//! them, and flushing follows the broker's flush policy.

use std::collections::BTreeMap;

use chronik_storage::{CleanupPolicy, LogConfig, TimestampType};

use crate::config::LogDefaults;

/// Topic configs Chronik enforces.
pub const ENFORCED: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "message.timestamp.type",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Kafka topic configs accepted for compatibility, with their Kafka defaults; not acted on.
pub const ACCEPTED: &[(&str, &str)] = &[
    ("compression.type", "producer"),
    ("file.delete.delay.ms", "60000"),
    ("flush.messages", "9223372036854775807"),
    ("flush.ms", "9223372036854775807"),
    ("follower.replication.throttled.replicas", ""),
    ("leader.replication.throttled.replicas", ""),
    ("max.compaction.lag.ms", "9223372036854775807"),
    ("message.downconversion.enable", "true"),
    ("message.format.version", "3.0-IV1"),
    ("message.timestamp.after.max.ms", "9223372036854775807"),
    ("message.timestamp.before.max.ms", "9223372036854775807"),
    ("message.timestamp.difference.max.ms", "9223372036854775807"),
    ("min.cleanable.dirty.ratio", "0.5"),
    ("preallocate", "false"),
    ("segment.index.bytes", "10485760"),
    ("segment.jitter.ms", "0"),
];

/// Every topic config name Chronik knows, for DescribeConfigs and CreateTopics responses.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    ENFORCED
        .iter()
        .copied()
        .chain(ACCEPTED.iter().map(|(name, _)| *name))
}

/// Why a config name or value was refused (sent to the client as INVALID_CONFIG).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(pub String);

/// Checks one name/value pair.
pub fn validate(name: &str, value: &str) -> Result<(), InvalidConfig> {
    let long = |min: i64| -> Result<(), InvalidConfig> {
        match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            _ => Err(InvalidConfig(format!(
                "invalid value {value:?} for {name}: an integer >= {min} is required"
            ))),
        }
    };
    match name {
        "retention.ms" | "retention.bytes" => long(-1),
        "segment.bytes" => long(14).and_then(|_| int_range(name, value)),
        "max.message.bytes" => long(0).and_then(|_| int_range(name, value)),
        "min.insync.replicas" => long(1).and_then(|_| int_range(name, value)),
        "segment.ms" => long(1),
        "delete.retention.ms" | "min.compaction.lag.ms" => long(0),
        "cleanup.policy" => parse_cleanup_policy(value).map(|_| ()),
        "index.interval.bytes" => long(0).and_then(|_| int_range(name, value)),
        "segment.index.bytes" => long(4).and_then(|_| int_range(name, value)),
        "file.delete.delay.ms"
        | "flush.messages"
        | "flush.ms"
        | "max.compaction.lag.ms"
        | "message.timestamp.after.max.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.difference.max.ms"
        | "segment.jitter.ms" => long(0),
        "message.downconversion.enable" | "preallocate" | "unclean.leader.election.enable" => {
            match value {
                "true" | "false" => Ok(()),
                _ => Err(InvalidConfig(format!(
                    "invalid value {value:?} for {name}: true or false"
                ))),
            }
        }
        "compression.type" => match value {
            "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd" => Ok(()),
            _ => Err(InvalidConfig(format!(
                "invalid value {value:?} for compression.type: producer, uncompressed, gzip, snappy, lz4 or zstd"
            ))),
        },
        "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(InvalidConfig(format!(
                "invalid value {value:?} for min.cleanable.dirty.ratio: a number from 0 to 1"
            ))),
        },
        "message.format.version"
        | "follower.replication.throttled.replicas"
        | "leader.replication.throttled.replicas" => Ok(()),
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(InvalidConfig(format!(
                "invalid value {value:?} for message.timestamp.type: CreateTime or LogAppendTime"
            ))),
        },
        _ => Err(InvalidConfig(format!("unknown topic config {name:?}"))),
    }
}

fn int_range(name: &str, value: &str) -> Result<(), InvalidConfig> {
    value
        .trim()
        .parse::<i32>()
        .map(|_| ())
        .map_err(|_| InvalidConfig(format!("value {value:?} for {name} does not fit in an int")))
}

fn parse_cleanup_policy(value: &str) -> Result<CleanupPolicy, InvalidConfig> {
    let mut delete = false;
    let mut compact = false;
    for part in value.split(',').map(str::trim) {
        match part {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => {
                return Err(InvalidConfig(format!(
                    "invalid cleanup.policy {value:?}: a list of delete and compact is required"
                )))
            }
        }
    }
    Ok(match (delete, compact) {
        (_, false) => CleanupPolicy::Delete,
        (false, true) => CleanupPolicy::Compact,
        (true, true) => CleanupPolicy::CompactAndDelete,
    })
}

/// Validates a whole set of overrides.
pub fn validate_all<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), InvalidConfig> {
    configs
        .into_iter()
        .try_for_each(|(name, value)| validate(name, value))
}

/// The effective value of `name` for a topic, and whether it is the broker default.
pub fn effective_value(
    defaults: &LogDefaults,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> (String, bool) {
    if let Some(v) = overrides.get(name) {
        return (v.clone(), false);
    }
    let default = match name {
        "cleanup.policy" => defaults.cleanup_policy.clone(),
        "delete.retention.ms" => defaults.delete_retention_ms.to_string(),
        "max.message.bytes" => defaults.max_message_bytes.to_string(),
        "message.timestamp.type" => defaults.message_timestamp_type.clone(),
        "min.compaction.lag.ms" => "0".to_string(),
        "min.insync.replicas" => defaults.min_insync_replicas.to_string(),
        "retention.bytes" => defaults.retention_bytes.to_string(),
        "retention.ms" => defaults.retention_ms.to_string(),
        "segment.bytes" => defaults.segment_bytes.to_string(),
        "segment.ms" => defaults.segment_ms.to_string(),
        "index.interval.bytes" => "4096".to_string(),
        "unclean.leader.election.enable" => defaults.unclean_leader_election_enable.to_string(),
        other => ACCEPTED
            .iter()
            .find(|(name, _)| *name == other)
            .map(|(_, default)| default.to_string())
            .unwrap_or_default(),
    };
    (default, true)
}

/// The settings a partition enforces, derived from defaults plus overrides.
#[derive(Clone, Debug)]
pub struct PartitionSettings {
    pub log: LogConfig,
    pub min_insync_replicas: i32,
}

/// Resolves the effective settings. Values were validated when stored, so a value that fails to
/// parse here (only possible with a hand-edited metadata file) falls back to the default.
pub fn resolve(defaults: &LogDefaults, overrides: &BTreeMap<String, String>) -> PartitionSettings {
    let get = |name: &str| effective_value(defaults, overrides, name).0;
    let num = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
    let log = LogConfig {
        segment_bytes: num("segment.bytes", defaults.segment_bytes as i64).max(14) as u64,
        segment_ms: num("segment.ms", defaults.segment_ms),
        retention_ms: num("retention.ms", defaults.retention_ms),
        retention_bytes: num("retention.bytes", defaults.retention_bytes),
        cleanup_policy: parse_cleanup_policy(&get("cleanup.policy"))
            .unwrap_or(CleanupPolicy::Delete),
        delete_retention_ms: num("delete.retention.ms", defaults.delete_retention_ms),
        max_message_bytes: num("max.message.bytes", defaults.max_message_bytes as i64) as i32,
        timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        min_compaction_lag_ms: num("min.compaction.lag.ms", 0),
        index_interval_bytes: num("index.interval.bytes", 4096) as u32,
    };
    PartitionSettings {
        log,
        min_insync_replicas: num("min.insync.replicas", defaults.min_insync_replicas as i64) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names_and_values() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("segment.bytes", "99999999999").is_err());
        assert!(validate("no.such.config", "1").is_err());
    }

    #[test]
    fn overrides_win_over_defaults() {
        let defaults = LogDefaults::default();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "1234".to_string());
        overrides.insert("cleanup.policy".to_string(), "compact".to_string());
        let settings = resolve(&defaults, &overrides);
        assert_eq!(settings.log.retention_ms, 1234);
        assert_eq!(settings.log.cleanup_policy, CleanupPolicy::Compact);
        assert_eq!(settings.log.segment_bytes, defaults.segment_bytes);
        assert_eq!(
            effective_value(&defaults, &overrides, "retention.ms"),
            ("1234".into(), false)
        );
    }
}
