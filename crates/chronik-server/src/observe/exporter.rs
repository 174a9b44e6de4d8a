//! The Prometheus exporter: one `Registry` per broker (so brokers in one test process stay
//! apart) holding one collector that reads the broker's state at each scrape.
//!
//! Nothing here runs on the request path: the hot-path figures are atomics owned by the
//! layers that record them (`RequestMetrics`, `PartitionTraffic`, `Waiting`, the journal's
//! `JournalStats`, `ReplicationStats`); per-partition and per-group gauges are read from the
//! replica manager, the metadata image and the group coordinator when Prometheus asks.
//!
//! Names follow the JMX exporter's convention for Kafka's MBeans (`kafka_<domain>_<type>_
//! <name>`, lower case), so Kafka dashboards find them; docs/metrics.md maps each to its
//! Kafka JMX name. Latencies are histograms in seconds rather than Kafka's ms percentiles.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::broker::Broker;
use crate::replica::ReplicaRole;
use chronik_storage::histogram::Histogram;

/// A broker's registry, its collector registered.
pub fn registry(broker: Arc<Broker>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector(broker)));
    registry
}

/// The registry in Prometheus' text format (version 0.0.4), which `promtool` checks.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, registry);
    out
}

struct BrokerCollector(Arc<Broker>);

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BrokerCollector")
    }
}

type Fmt = Result<(), std::fmt::Error>;

/// A metric without labels.
fn single(enc: &mut DescriptorEncoder, name: &str, help: &str, kind: MetricType, v: i64) -> Fmt {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    if kind == MetricType::Counter {
        m.encode_counter::<NoLabelSet, u64, u64>(&(v.max(0) as u64), None)
    } else {
        m.encode_gauge(&v)
    }
}

/// A labelled metric family, one sample per row.
fn family<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, i64)>,
) -> Fmt {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let mut sample = m.encode_family(&labels)?;
        if kind == MetricType::Counter {
            sample.encode_counter::<NoLabelSet, u64, u64>(&(v.max(0) as u64), None)?;
        } else {
            sample.encode_gauge(&v)?;
        }
    }
    Ok(())
}

/// A labelled histogram family; `scale` turns recorded units into exported ones.
fn histograms<'h, L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    scale: f64,
    rows: impl IntoIterator<Item = (L, &'h Histogram)>,
) -> Fmt {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        let (sum, count, buckets) = h.snapshot(scale);
        m.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// A histogram without labels.
fn single_histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    scale: f64,
    h: &Histogram,
) -> Fmt {
    let (sum, count, buckets) = h.snapshot(scale);
    enc.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

/// `NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`, as Kafka names errors.
fn error_name(code: i16) -> String {
    let known = kafka_protocol::ResponseError::try_from_code(code).map(|e| format!("{e:?}"));
    let Some(camel) = known.filter(|name| name.chars().all(|c| c.is_ascii_alphanumeric())) else {
        return format!("UNKNOWN_{code}");
    };
    let mut name = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

const NANOS: f64 = 1e-9;

impl Collector for BrokerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let broker = &self.0;
        let enc = &mut enc;
        encode_requests(broker, enc)?;
        encode_partitions(broker, enc)?;
        encode_cluster(broker, enc)?;
        encode_groups(broker, enc)?;
        let journal = broker.replicas.journal().stats();
        single_histogram(
            enc,
            "kafka_log_logflushstats_logflush_seconds",
            "Journal fsync latency (one fsync per group-commit round)",
            NANOS,
            &journal.fsync,
        )?;
        single_histogram(
            enc,
            "chronik_journal_round_appends",
            "Appends made durable by one group-commit round",
            1.0,
            &journal.round_appends,
        )?;
        single_histogram(
            enc,
            "chronik_journal_round_bytes",
            "Bytes written by one group-commit round",
            1.0,
            &journal.round_bytes,
        )
    }
}

fn encode_requests(broker: &Broker, enc: &mut DescriptorEncoder) -> Fmt {
    use std::sync::atomic::Ordering::Relaxed;
    let requests = &broker.requests;
    family(
        enc,
        "kafka_server_socketservermetrics_connections",
        "Open client connections",
        MetricType::Gauge,
        requests
            .listeners
            .iter()
            .map(|l| ([("listener", l.name.as_str())], l.open.load(Relaxed))),
    )?;
    family(
        enc,
        "kafka_server_socketservermetrics_connection_creation",
        "Client connections accepted",
        MetricType::Counter,
        requests.listeners.iter().map(|l| {
            (
                [("listener", l.name.as_str())],
                l.created.load(Relaxed) as i64,
            )
        }),
    )?;
    let used: Vec<(String, &super::requests::ApiMetrics)> = requests
        .used()
        .map(|(key, m)| (format!("{key:?}"), m))
        .collect();
    family(
        enc,
        "kafka_network_requestmetrics_requests",
        "Requests answered, by API",
        MetricType::Counter,
        used.iter().map(|(name, m)| {
            (
                [("request", name.as_str())],
                m.requests.load(Relaxed) as i64,
            )
        }),
    )?;
    let errors: Vec<([(&str, String); 2], i64)> = used
        .iter()
        .flat_map(|(name, m)| {
            m.errors().map(move |(code, n)| {
                (
                    [("request", name.clone()), ("error", error_name(code))],
                    n as i64,
                )
            })
        })
        .collect();
    family(
        enc,
        "kafka_network_requestmetrics_errors",
        "Error codes in responses (partition-level for Produce and Fetch), by API and error",
        MetricType::Counter,
        errors,
    )?;
    type Phase = fn(&super::requests::ApiMetrics) -> &Histogram;
    let phases: [(&str, &str, Phase); 5] = [
        (
            "kafka_network_requestmetrics_requestqueuetime_seconds",
            "Time from reading a request to starting its handler",
            |m| &m.queue,
        ),
        (
            "kafka_network_requestmetrics_localtime_seconds",
            "Time handling a request, less its remote time",
            |m| &m.local,
        ),
        (
            "kafka_network_requestmetrics_remotetime_seconds",
            "Time waiting for acks (journal fsync, followers) or for fetch data",
            |m| &m.remote,
        ),
        (
            "kafka_network_requestmetrics_responsesendtime_seconds",
            "Time from the handler's answer until its response is written (in order)",
            |m| &m.send,
        ),
        (
            "kafka_network_requestmetrics_totaltime_seconds",
            "Time from reading a request to writing its response",
            |m| &m.total,
        ),
    ];
    for (name, help, phase) in phases {
        histograms(
            enc,
            name,
            help,
            NANOS,
            used.iter()
                .map(|(api, m)| ([("request", api.as_str())], phase(m))),
        )?;
    }
    let waiting = &broker.replicas.waiting;
    family(
        enc,
        "kafka_server_delayedoperationpurgatory_purgatorysize",
        "Requests waiting for acks (Produce) or data (Fetch)",
        MetricType::Gauge,
        [
            (
                [("delayed_operation", "Produce")],
                waiting.produce.load(Relaxed),
            ),
            (
                [("delayed_operation", "Fetch")],
                waiting.fetch.load(Relaxed),
            ),
        ],
    )
}

fn encode_partitions(broker: &Broker, enc: &mut DescriptorEncoder) -> Fmt {
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering::Relaxed;
    let mut partitions = broker.replicas.all_partitions();
    partitions.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
    // Per topic: messages in, bytes in, bytes out, replication bytes out.
    let mut topics: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for p in &partitions {
        let t = topics.entry(p.topic.as_str()).or_default();
        let traffic = &p.traffic;
        t[0] += traffic.messages_in.load(Relaxed);
        t[1] += traffic.bytes_in.load(Relaxed);
        t[2] += traffic.bytes_out.load(Relaxed);
        t[3] += traffic.replication_bytes_out.load(Relaxed);
    }
    let per_topic = [
        (
            "kafka_server_brokertopicmetrics_messagesin",
            "Records appended by producers",
        ),
        (
            "kafka_server_brokertopicmetrics_bytesin",
            "Bytes appended by producers",
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout",
            "Bytes fetched by consumers",
        ),
        (
            "kafka_server_brokertopicmetrics_replicationbytesout",
            "Bytes fetched by followers from this leader",
        ),
    ];
    for (i, (name, help)) in per_topic.into_iter().enumerate() {
        family(
            enc,
            name,
            help,
            MetricType::Counter,
            topics
                .iter()
                .map(|(topic, v)| ([("topic", *topic)], v[i] as i64)),
        )?;
        // Kafka's broker-wide figure is the same MBean without a topic.
        single(
            enc,
            &format!("{name}_all"),
            help,
            MetricType::Counter,
            topics.values().map(|v| v[i] as i64).sum(),
        )?;
    }
    let statuses: Vec<_> = partitions.iter().map(|p| (p, p.status())).collect();
    let labels = |topic: &str, partition: i32| {
        [
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
        ]
    };
    type Offset = fn(&crate::replica::PartitionStatus) -> i64;
    let gauges: [(&str, &str, Offset); 3] = [
        ("kafka_log_log_logendoffset", "Log end offset", |s| {
            s.log_end_offset
        }),
        ("kafka_log_log_logstartoffset", "Log start offset", |s| {
            s.log_start_offset
        }),
        (
            "kafka_cluster_partition_highwatermark",
            "High watermark",
            |s| s.high_watermark,
        ),
    ];
    for (name, help, value) in gauges {
        family(
            enc,
            name,
            help,
            MetricType::Gauge,
            statuses
                .iter()
                .map(|(p, s)| (labels(&p.topic, p.index), value(s))),
        )?;
    }
    family(
        enc,
        "kafka_log_log_size",
        "Bytes of the partition's log on disk",
        MetricType::Gauge,
        partitions
            .iter()
            .map(|p| (labels(&p.topic, p.index), p.size_bytes() as i64)),
    )?;
    let led: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| s.role == ReplicaRole::Leader)
        .collect();
    let under_replicated = |s: &crate::replica::PartitionStatus| s.isr.len() < s.replicas.len();
    family(
        enc,
        "kafka_cluster_partition_underreplicated",
        "1 when a partition led here has fewer in-sync replicas than replicas",
        MetricType::Gauge,
        led.iter()
            .map(|(p, s)| (labels(&p.topic, p.index), under_replicated(s) as i64)),
    )?;
    let counts = [
        (
            "kafka_server_replicamanager_partitioncount",
            "Partitions hosted here",
            partitions.len(),
        ),
        (
            "kafka_server_replicamanager_leadercount",
            "Partitions led here",
            led.len(),
        ),
        (
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions led here whose ISR is smaller than their replica set",
            led.iter().filter(|(_, s)| under_replicated(s)).count(),
        ),
        (
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions led here whose ISR is below min.insync.replicas",
            led.iter()
                .filter(|(p, s)| (s.isr.len() as i32) < p.min_insync_replicas())
                .count(),
        ),
        (
            "kafka_server_replicamanager_offlinereplicacount",
            "Partitions assigned here whose directory could not be opened",
            broker.replicas.offline_count(),
        ),
    ];
    for (name, help, v) in counts {
        single(enc, name, help, MetricType::Gauge, v as i64)?;
    }
    let counters = broker.replicas.stats().counters();
    for (name, help, v) in [
        (
            "kafka_server_replicamanager_isrshrinks",
            "ISR shrinks of partitions led here",
            counters.isr_shrinks,
        ),
        (
            "kafka_server_replicamanager_isrexpands",
            "ISR expansions of partitions led here",
            counters.isr_expands,
        ),
        (
            "kafka_controller_controllerstats_leaderelections",
            "New leader epochs applied to partitions hosted here",
            counters.leader_elections,
        ),
        (
            "chronik_replica_truncations",
            "Divergent log tails cut by followers here",
            counters.truncations,
        ),
    ] {
        single(enc, name, help, MetricType::Counter, v as i64)?;
    }
    Ok(())
}

fn encode_cluster(broker: &Broker, enc: &mut DescriptorEncoder) -> Fmt {
    let image = broker.metadata.image();
    let offline = image
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.leader < 0)
        .count();
    let fenced = image.brokers.values().filter(|b| b.fenced).count();
    let quorum = broker.controller.quorum();
    let raft = quorum.raft.metrics().borrow().clone();
    let rows = [
        (
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the metadata quorum's leader (the active controller)",
            quorum.is_leader() as i64,
        ),
        (
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader, in this broker's metadata image",
            offline as i64,
        ),
        (
            "kafka_controller_kafkacontroller_activebrokercount",
            "Registered, unfenced brokers",
            (image.brokers.len() - fenced) as i64,
        ),
        (
            "kafka_controller_kafkacontroller_fencedbrokercount",
            "Registered, fenced brokers",
            fenced as i64,
        ),
        (
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster",
            image.topics.len() as i64,
        ),
        (
            "kafka_server_raftmetrics_current_epoch",
            "Raft term of the metadata quorum",
            raft.current_term as i64,
        ),
        (
            "kafka_server_raftmetrics_log_end_offset",
            "Index of the last entry in this node's metadata log",
            raft.last_log_index.map_or(-1, |i| i as i64),
        ),
        (
            "kafka_server_raftmetrics_high_watermark",
            "Index of the last committed metadata entry applied here",
            raft.last_applied.map_or(-1, |l| l.index as i64),
        ),
        (
            "kafka_server_raftmetrics_current_leader",
            "Node id of the Raft leader (-1: none known)",
            raft.current_leader.map_or(-1, |l| l as i64),
        ),
    ];
    for (name, help, v) in rows {
        single(enc, name, help, MetricType::Gauge, v)?;
    }
    Ok(())
}

fn encode_groups(broker: &Broker, enc: &mut DescriptorEncoder) -> Fmt {
    let mut by_state: std::collections::BTreeMap<&str, i64> = [
        "Empty",
        "PreparingRebalance",
        "CompletingRebalance",
        "Stable",
    ]
    .into_iter()
    .map(|s| (s, 0))
    .collect();
    for g in broker.groups.list_groups() {
        *by_state.entry(g.state).or_default() += 1;
    }
    family(
        enc,
        "kafka_coordinator_group_groupmetadatamanager_numgroups",
        "Consumer groups coordinated here, by state",
        MetricType::Gauge,
        by_state.into_iter().map(|(s, n)| ([("state", s)], n)),
    )?;
    let lags = broker.groups.consumer_lag();
    let labels = |l: &crate::coordinator::PartitionLag| {
        [
            ("group", l.group.clone()),
            ("topic", l.topic.clone()),
            ("partition", l.partition.to_string()),
        ]
    };
    family(
        enc,
        "kafka_consumergroup_current_offset",
        "Committed offset per group and partition",
        MetricType::Gauge,
        lags.iter().map(|l| (labels(l), l.committed)),
    )?;
    family(
        enc,
        "kafka_consumergroup_lag",
        "High watermark minus committed offset, per group and partition (-1: unknown here)",
        MetricType::Gauge,
        lags.iter().map(|l| (labels(l), l.lag)),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn errors_are_named_as_kafka_names_them() {
        assert_eq!(super::error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(super::error_name(7), "REQUEST_TIMED_OUT");
        assert_eq!(super::error_name(9999), "UNKNOWN_9999");
    }
}
