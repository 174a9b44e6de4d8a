//! Dynamic broker configs (KIP-226): the broker settings that AlterConfigs and
//! IncrementalAlterConfigs may change at runtime, for one broker (resource name = its id) or as
//! the cluster-wide default (resource name ""). They are metadata records (`BrokerConfigs`);
//! the effective value of a setting is, in order: this broker's dynamic value, the dynamic
//! default, the static config (file, env, flags), the built-in default — the order Kafka's
//! DescribeConfigs reports as the config source.

use std::collections::BTreeMap;

use super::image::MetadataImage;
use super::topic_config::{validate, InvalidConfig};
use crate::config::{BrokerConfig, LogDefaults};

/// DescribeConfigs config_source values.
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
pub const SOURCE_STATIC: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// Broker configs that may change at runtime, with the topic config each one is the default of
/// (None: a broker setting of its own). `log.cleaner.threads` and `background.threads` are
/// accepted and described (one cleaner task serves every partition, the runtime sizes its own
/// pools), and so is `sasl.kerberos.min.time.before.relogin`, which Kafka lets tools change at
/// runtime though Chronik has no Kerberos.
pub const DYNAMIC: &[(&str, Option<&str>)] = &[
    ("background.threads", None),
    (
        "log.cleaner.delete.retention.ms",
        Some("delete.retention.ms"),
    ),
    ("log.cleaner.threads", None),
    ("log.cleanup.policy", Some("cleanup.policy")),
    ("log.message.timestamp.type", Some("message.timestamp.type")),
    ("log.retention.bytes", Some("retention.bytes")),
    ("log.retention.ms", Some("retention.ms")),
    ("log.roll.ms", Some("segment.ms")),
    ("log.segment.bytes", Some("segment.bytes")),
    ("message.max.bytes", Some("max.message.bytes")),
    ("min.insync.replicas", Some("min.insync.replicas")),
    ("num.partitions", None),
    ("sasl.kerberos.min.time.before.relogin", None),
    (
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
    ),
];

/// Checks one dynamic broker config.
pub fn validate_dynamic(name: &str, value: &str) -> Result<(), InvalidConfig> {
    match DYNAMIC.iter().find(|(n, _)| *n == name) {
        Some((_, Some(topic_name))) => {
            validate(topic_name, value).map_err(|e| InvalidConfig(format!("{name}: {e}")))
        }
        Some((_, None)) => match value.trim().parse::<i32>() {
            Ok(v) if v >= 1 => Ok(()),
            _ => Err(InvalidConfig(format!(
                "invalid value {value:?} for {name}: an integer >= 1 is required"
            ))),
        },
        None => Err(InvalidConfig(format!(
            "{name} cannot be changed at runtime (dynamic broker configs: {})",
            DYNAMIC
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The dynamic value of `name` for broker `node_id` and its source, if one is set.
pub fn dynamic_value<'a>(
    image: &'a MetadataImage,
    node_id: i32,
    name: &str,
) -> Option<(&'a str, i8)> {
    let own = image
        .broker_configs
        .get(&node_id.to_string())
        .and_then(|c| c.get(name))
        .map(|v| (v.as_str(), SOURCE_DYNAMIC_BROKER));
    own.or_else(|| {
        image
            .broker_configs
            .get("")
            .and_then(|c| c.get(name))
            .map(|v| (v.as_str(), SOURCE_DYNAMIC_DEFAULT))
    })
}

/// The topic-config defaults in force on broker `node_id`: the static ones with the dynamic
/// values laid over them.
pub fn effective_log_defaults(
    config: &BrokerConfig,
    image: &MetadataImage,
    node_id: i32,
) -> LogDefaults {
    let mut d = config.log.clone();
    let get = |name: &str| dynamic_value(image, node_id, name).map(|(v, _)| v.to_string());
    let parse = |name: &str| get(name).and_then(|v| v.trim().parse::<i64>().ok());
    if let Some(v) = parse("log.retention.ms") {
        d.retention_ms = v;
    }
    if let Some(v) = parse("log.retention.bytes") {
        d.retention_bytes = v;
    }
    if let Some(v) = parse("log.segment.bytes") {
        d.segment_bytes = v as u64;
    }
    if let Some(v) = parse("log.roll.ms") {
        d.segment_ms = v;
    }
    if let Some(v) = parse("log.cleaner.delete.retention.ms") {
        d.delete_retention_ms = v;
    }
    if let Some(v) = parse("message.max.bytes") {
        d.max_message_bytes = v as i32;
    }
    if let Some(v) = parse("min.insync.replicas") {
        d.min_insync_replicas = v as i32;
    }
    if let Some(v) = get("log.cleanup.policy") {
        d.cleanup_policy = v;
    }
    if let Some(v) = get("log.message.timestamp.type") {
        d.message_timestamp_type = v;
    }
    if let Some(v) = get("unclean.leader.election.enable") {
        d.unclean_leader_election_enable = v == "true";
    }
    d
}

/// Partitions of new topics that do not say, on broker `node_id`.
pub fn effective_num_partitions(config: &BrokerConfig, image: &MetadataImage, node_id: i32) -> i32 {
    dynamic_value(image, node_id, "num.partitions")
        .and_then(|(v, _)| v.trim().parse().ok())
        .unwrap_or(config.num_partitions)
}

/// Every broker config DescribeConfigs lists for broker `node_id`: (name, value, source,
/// read-only). Its advertised listener is the address it registered with.
pub fn describe(
    config: &BrokerConfig,
    image: &MetadataImage,
    node_id: i32,
) -> Vec<(String, String, i8, bool)> {
    let own = config.listener_configs().unwrap_or_default();
    let advertised = match image.brokers.get(&node_id) {
        Some(b) if !b.listeners.is_empty() => b
            .listeners
            .iter()
            .map(|e| format!("{}://{}:{}", e.name, e.host, e.port))
            .collect::<Vec<_>>(),
        Some(b) => vec![format!("PLAINTEXT://{}:{}", b.host, b.port)],
        None => own
            .iter()
            .map(|l| format!("{}://{}:{}", l.name, l.advertised.0, l.advertised.1))
            .collect(),
    }
    .join(",");
    let defaults = BrokerConfig::default();
    let static_log = &config.log;
    let statics: Vec<(&str, String, String)> = vec![
        ("background.threads", "10".into(), "10".into()),
        ("advertised.listeners", advertised, String::new()),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            defaults.auto_create_topics.to_string(),
        ),
        (
            "broker.id",
            config.node_id.to_string(),
            defaults.node_id.to_string(),
        ),
        (
            "connections.max.reauth.ms",
            config.connections_max_reauth_ms.to_string(),
            defaults.connections_max_reauth_ms.to_string(),
        ),
        (
            "controller.quorum.voters",
            config.controller_quorum_voters.clone().unwrap_or_default(),
            String::new(),
        ),
        (
            "default.replication.factor",
            config.default_replication_factor.to_string(),
            defaults.default_replication_factor.to_string(),
        ),
        (
            "inter.broker.listener.name",
            config
                .inter_broker_listener()
                .map(|l| l.name)
                .unwrap_or_default(),
            String::new(),
        ),
        (
            "listeners",
            own.iter()
                .map(|l| format!("{}://{}", l.name, l.bind))
                .collect::<Vec<_>>()
                .join(","),
            String::new(),
        ),
        (
            "log.cleaner.delete.retention.ms",
            static_log.delete_retention_ms.to_string(),
            defaults.log.delete_retention_ms.to_string(),
        ),
        ("log.cleaner.threads", "1".into(), "1".into()),
        (
            "log.cleanup.policy",
            static_log.cleanup_policy.clone(),
            defaults.log.cleanup_policy.clone(),
        ),
        (
            "log.dirs",
            config.data_dir.display().to_string(),
            String::new(),
        ),
        (
            "log.message.timestamp.type",
            static_log.message_timestamp_type.clone(),
            defaults.log.message_timestamp_type.clone(),
        ),
        (
            "log.retention.bytes",
            static_log.retention_bytes.to_string(),
            defaults.log.retention_bytes.to_string(),
        ),
        (
            "log.retention.ms",
            static_log.retention_ms.to_string(),
            defaults.log.retention_ms.to_string(),
        ),
        (
            "log.roll.ms",
            static_log.segment_ms.to_string(),
            defaults.log.segment_ms.to_string(),
        ),
        (
            "log.segment.bytes",
            static_log.segment_bytes.to_string(),
            defaults.log.segment_bytes.to_string(),
        ),
        (
            "message.max.bytes",
            static_log.max_message_bytes.to_string(),
            defaults.log.max_message_bytes.to_string(),
        ),
        (
            "min.insync.replicas",
            static_log.min_insync_replicas.to_string(),
            defaults.log.min_insync_replicas.to_string(),
        ),
        (
            "node.id",
            config.node_id.to_string(),
            defaults.node_id.to_string(),
        ),
        (
            "num.partitions",
            config.num_partitions.to_string(),
            defaults.num_partitions.to_string(),
        ),
        (
            "offsets.topic.num.partitions",
            config.offsets_topic_num_partitions.to_string(),
            defaults.offsets_topic_num_partitions.to_string(),
        ),
        (
            "sasl.enabled.mechanisms",
            config.sasl_enabled_mechanisms.clone(),
            defaults.sasl_enabled_mechanisms.clone(),
        ),
        (
            "sasl.kerberos.min.time.before.relogin",
            "60000".into(),
            "60000".into(),
        ),
        (
            "socket.request.max.bytes",
            config.socket_request_max_bytes.to_string(),
            defaults.socket_request_max_bytes.to_string(),
        ),
        (
            "unclean.leader.election.enable",
            static_log.unclean_leader_election_enable.to_string(),
            defaults.log.unclean_leader_election_enable.to_string(),
        ),
    ];
    statics
        .into_iter()
        .map(|(name, value, default)| {
            let dynamic = DYNAMIC.iter().any(|(n, _)| *n == name);
            match dynamic_value(image, node_id, name) {
                Some((v, source)) => (name.to_string(), v.to_string(), source, false),
                None => {
                    let source = if value == default {
                        SOURCE_DEFAULT
                    } else {
                        SOURCE_STATIC
                    };
                    (name.to_string(), value, source, !dynamic)
                }
            }
        })
        .collect()
}

/// The dynamic configs set on `resource` ("" or a broker id).
pub fn current(image: &MetadataImage, resource: &str) -> BTreeMap<String, String> {
    image
        .broker_configs
        .get(resource)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::{MetadataBatch, MetadataRecord};

    fn with(image: &MetadataImage, resource: &str, pairs: &[(&str, &str)]) -> MetadataImage {
        let configs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        image.apply(
            image.applied_index + 1,
            &MetadataBatch::new(vec![MetadataRecord::BrokerConfigs {
                resource: resource.into(),
                configs,
            }]),
        )
    }

    #[test]
    fn broker_value_beats_default_beats_static() {
        let config = BrokerConfig::default();
        let image = with(
            &MetadataImage::default(),
            "",
            &[("log.retention.ms", "5000"), ("num.partitions", "4")],
        );
        let image = with(&image, "2", &[("log.retention.ms", "7000")]);
        assert_eq!(
            effective_log_defaults(&config, &image, 1).retention_ms,
            5000
        );
        assert_eq!(
            effective_log_defaults(&config, &image, 2).retention_ms,
            7000
        );
        assert_eq!(effective_num_partitions(&config, &image, 1), 4);
        let described = describe(&config, &image, 2);
        let find = |n: &str| described.iter().find(|d| d.0 == n).unwrap().clone();
        assert_eq!(find("log.retention.ms").1, "7000");
        assert_eq!(find("log.retention.ms").2, SOURCE_DYNAMIC_BROKER);
        assert_eq!(find("num.partitions").2, SOURCE_DYNAMIC_DEFAULT);
        assert_eq!(find("message.max.bytes").2, SOURCE_DEFAULT);
        assert!(find("listeners").3, "read-only");
        assert!(!find("message.max.bytes").3);
        assert!(described.iter().any(|d| d.0 == "log.dirs"));
    }

    #[test]
    fn only_dynamic_names_with_valid_values_are_accepted() {
        assert!(validate_dynamic("log.retention.ms", "1000").is_ok());
        assert!(validate_dynamic("log.cleanup.policy", "compact").is_ok());
        assert!(validate_dynamic("log.cleanup.policy", "shred").is_err());
        assert!(validate_dynamic("num.partitions", "0").is_err());
        assert!(validate_dynamic("listeners", "PLAINTEXT://x:1").is_err());
    }
}
