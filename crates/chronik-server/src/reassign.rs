//! `chronik-server reassign`: start, cancel or list partition reassignments (KIP-455) over the
//! Kafka protocol (AlterPartitionReassignments v1, ListPartitionReassignments v0), sent to any
//! broker (it forwards to the controller). A started move completes on its own once the new
//! replicas caught up; `--list` shows the moves still under way, as does `cluster status`.

use std::fmt::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::cluster_status::{connect, exchange};

/// What to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Move `topic`-`partition` to `replicas` (the first one preferred leader).
    Start {
        topic: String,
        partition: i32,
        replicas: Vec<i32>,
    },
    /// Cancel the move of `topic`-`partition` under way.
    Cancel { topic: String, partition: i32 },
    /// The moves under way.
    List,
}

/// How long the controller may take to commit the change.
const TIMEOUT_MS: i32 = 30_000;

fn error_name(code: i16) -> String {
    ResponseError::try_from_code(code).map_or_else(|| format!("error {code}"), |e| format!("{e:?}"))
}

/// Runs `action` against the broker at `bootstrap`; the report to print, or why it failed.
pub fn run(bootstrap: &str, action: Action) -> anyhow::Result<String> {
    let mut stream = connect(bootstrap, Duration::from_millis(TIMEOUT_MS as u64 + 10_000))?;
    let (topic, partition, replicas) = match action {
        Action::List => return ongoing(&mut stream),
        Action::Start {
            topic,
            partition,
            replicas,
        } => (topic, partition, Some(replicas)),
        Action::Cancel { topic, partition } => (topic, partition, None),
    };
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_allow_replication_factor_change(true)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas
                        .clone()
                        .map(|r| r.into_iter().map(BrokerId).collect()),
                )])]);
    let response: AlterPartitionReassignmentsResponse = exchange(
        &mut stream,
        ApiKey::AlterPartitionReassignments,
        1,
        &request,
    )
    .context("AlterPartitionReassignments")?;
    let result = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition);
    let (code, message) = match result {
        Some(p) => (p.error_code, p.error_message.clone()),
        None => (response.error_code, response.error_message.clone()),
    };
    if code != 0 {
        bail!(
            "{topic}-{partition}: {}{}",
            error_name(code),
            message.map_or(String::new(), |m| format!(": {m}"))
        );
    }
    Ok(match replicas {
        Some(r) => format!(
            "reassignment of {topic}-{partition} to {r:?} started (see --list until it is gone)\n"
        ),
        None => format!("reassignment of {topic}-{partition} cancelled\n"),
    })
}

/// The moves under way, one line each (also a section of `cluster status`).
pub(crate) fn ongoing(stream: &mut TcpStream) -> anyhow::Result<String> {
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(TIMEOUT_MS)
        .with_topics(None);
    let response: ListPartitionReassignmentsResponse =
        exchange(stream, ApiKey::ListPartitionReassignments, 0, &request)
            .context("ListPartitionReassignments")?;
    if response.error_code != 0 {
        bail!(
            "{}{}",
            error_name(response.error_code),
            response
                .error_message
                .map_or(String::new(), |m| format!(": {m}"))
        );
    }
    let mut out = String::new();
    let ids = |ids: &[BrokerId]| {
        ids.iter()
            .map(|b| b.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let ongoing: Vec<_> = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (&t.name, p)))
        .collect();
    if ongoing.is_empty() {
        writeln!(out, "no reassignment in progress")?;
        return Ok(out);
    }
    writeln!(
        out,
        "{:<40} {:>9}  {:<16} {:<10} removing",
        "topic", "partition", "replicas", "adding"
    )?;
    for (topic, p) in ongoing {
        writeln!(
            out,
            "{:<40} {:>9}  {:<16} {:<10} {}",
            topic.as_str(),
            p.partition_index,
            ids(&p.replicas),
            ids(&p.adding_replicas),
            ids(&p.removing_replicas)
        )?;
    }
    Ok(out)
}
