//! `chronik-server cluster status --bootstrap-server HOST:PORT`: what one broker knows of the
//! cluster, over the Kafka protocol (DescribeCluster v2 for the controller and every broker
//! with its fenced flag, Metadata v12 for each partition's leader, epoch, replicas and ISR).
//! Any broker answers from its metadata image, so any one will do. Each broker's epoch and
//! whether it is alive, fenced or shutting down come from the controller (the `Brokers` RPC).
//!
//! Then replication as the brokers themselves see it: DescribeQuorum v2 names every voter's
//! controller listener (every broker is a voter), and each broker answers `ReplicaStatus` there
//! (the controller RPC, `quorum/rpc.rs`) from its replica manager. Two more sections follow,
//! one line per partition and one per broker, as `key=value` words:
//!
//! ```text
//! replication:
//!   topic=t partition=0 leader=1 epoch=0 replicas=1,2,3 isr=1,2,3 hw=10 ends=1:10,2:10,3:10 own=1:10,2:10,3:10 state=ok
//! replication counters:
//!   broker=1 uptime_ms=61000 leader_elections=0 became_leader=1 isr_shrinks=0 isr_expands=0 truncations=0 log_restarts=0 hosted=3 leading=1
//! ```
//!
//! A partition's leader, epoch, ISR, high watermark and `ends` (each replica's log end as the
//! leader knows it, -1 before its first fetch under this epoch) are the leader's answer; `own`
//! is each replica's log end by its own answer (`-` when it did not answer or does not host
//! it). `state` is `ok`, `under-replicated` (ISR smaller than the replicas), `offline` (no
//! leader) or `leader-unknown` (the leader did not answer as leader). Counters are each
//! broker's since it started, for the partitions it hosts (`ReplicationCounters`); a broker
//! that does not answer shows `broker=N unreachable error=...`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumRequest,
    DescribeQuorumResponse, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::metadata::BrokerRegistration;
use crate::quorum::rpc::{RpcRequest, RpcResponse, MAX_FRAME};
use crate::replica::{PartitionStatus, ReplicaRole, ReplicaStatus};

/// How long the bootstrap broker may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long each broker may take to connect and answer `ReplicaStatus`: a node cut off (or
/// frozen) shows as unreachable without holding the report up long.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// One request and its response on `stream`.
pub(crate) fn exchange<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> anyhow::Result<Resp> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("chronik-cluster-status")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, key.request_header_version(version))?;
    request.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    stream.write_all(&buf)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(0..64 << 20).contains(&size) {
        bail!("bad response size {size}");
    }
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body)?;
    let mut frame = Bytes::from(body);
    ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    Resp::decode(&mut frame, version)
}

/// The first broker of the comma-separated `bootstrap` list that accepts a connection, with
/// `read_timeout` for its answers.
pub(crate) fn connect(bootstrap: &str, read_timeout: Duration) -> anyhow::Result<TcpStream> {
    let mut last = None;
    for address in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match TcpStream::connect(address) {
            Ok(stream) => {
                stream.set_read_timeout(Some(read_timeout))?;
                return Ok(stream);
            }
            Err(e) => {
                last = Some(anyhow::Error::new(e).context(format!("connecting to {address}")))
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no broker address in {bootstrap:?}")))
}

/// The status report of the cluster as the first reachable broker of `bootstrap` sees it.
pub fn report(bootstrap: &str) -> anyhow::Result<String> {
    let mut stream = connect(bootstrap, TIMEOUT)?;
    let cluster: DescribeClusterResponse = exchange(
        &mut stream,
        ApiKey::DescribeCluster,
        2,
        &DescribeClusterRequest::default().with_include_fenced_brokers(true),
    )
    .context("DescribeCluster")?;
    let metadata: MetadataResponse = exchange(
        &mut stream,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    )
    .context("Metadata")?;
    let mut out = String::new();
    writeln!(out, "cluster id: {}", cluster.cluster_id)?;
    let controller = cluster.controller_id.0;
    if controller < 0 {
        writeln!(out, "controller: none (no quorum)")?;
    } else {
        writeln!(out, "controller: {controller}")?;
    }
    let listeners = controller_listeners(&mut stream);
    // Epochs and the shutting-down state are not in DescribeCluster: the metadata image has
    // them. Asked of the controller first, then of any voter that answers (the controller may
    // be the node that just stopped); without an answer the fenced flag still tells alive
    // from fenced.
    let registrations: BTreeMap<i32, BrokerRegistration> = match &listeners {
        Ok(listeners) => {
            let mut controller_first = listeners.get(&controller).into_iter().chain(
                listeners
                    .iter()
                    .filter(|(id, _)| **id != controller)
                    .map(|(_, addr)| addr),
            );
            controller_first
                .find_map(|addr| match rpc(addr, &RpcRequest::Brokers) {
                    Ok(RpcResponse::Brokers(brokers)) => Some(brokers),
                    _ => None,
                })
                .unwrap_or_default()
        }
        Err(_) => Vec::new(),
    }
    .into_iter()
    .map(|b| (b.id, b))
    .collect();
    writeln!(out, "brokers:")?;
    for b in &cluster.brokers {
        let registration = registrations.get(&b.broker_id.0);
        let state = match registration {
            Some(r) if r.in_controlled_shutdown => "shutting down",
            _ if b.is_fenced => "fenced",
            _ => "alive",
        };
        let epoch = registration.map_or("?".to_string(), |r| r.epoch.to_string());
        writeln!(
            out,
            "  {:>4}  {}:{}  {state}  epoch={epoch}",
            b.broker_id.0, b.host, b.port
        )?;
    }
    writeln!(out, "partitions:")?;
    writeln!(
        out,
        "  {:<40} {:>9} {:>6} {:>12}  {:<16} isr",
        "topic", "partition", "leader", "leader epoch", "replicas"
    )?;
    let mut topics: Vec<_> = metadata.topics.iter().collect();
    topics.sort_by_key(|t| t.name.as_ref().map(|n| n.to_string()));
    for t in topics {
        let name = t.name.as_ref().map_or("?".to_string(), |n| n.to_string());
        for p in &t.partitions {
            let ids = |ids: &[kafka_protocol::messages::BrokerId]| {
                ids.iter()
                    .map(|b| b.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            writeln!(
                out,
                "  {:<40} {:>9} {:>6} {:>12}  {:<16} {}",
                name,
                p.partition_index,
                p.leader_id.0,
                p.leader_epoch,
                ids(&p.replica_nodes),
                ids(&p.isr_nodes)
            )?;
        }
    }
    let partitions: Vec<(String, i32, i32)> = metadata
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.as_ref().map_or("?".to_string(), |n| n.to_string());
            t.partitions
                .iter()
                .map(move |p| (name.clone(), p.partition_index, p.leader_id.0))
        })
        .collect();
    let brokers: Vec<i32> = cluster.brokers.iter().map(|b| b.broker_id.0).collect();
    match listeners {
        Ok(listeners) => {
            // All at once: an unreachable broker costs its timeout once, not once per broker.
            let statuses = std::thread::scope(|scope| {
                let asks: Vec<_> = brokers
                    .iter()
                    .map(|&id| {
                        let addr = listeners.get(&id);
                        let ask = scope.spawn(move || match addr {
                            Some(addr) => replica_status(addr),
                            None => Err(anyhow::anyhow!("no controller listener known")),
                        });
                        (id, ask)
                    })
                    .collect();
                asks.into_iter()
                    .map(|(id, ask)| {
                        let answer = ask
                            .join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("asking it panicked")));
                        (id, answer)
                    })
                    .collect()
            });
            write_replication(&mut out, &partitions, &statuses)?;
        }
        Err(e) => writeln!(out, "replication: unavailable (DescribeQuorum: {e:#})")?,
    }
    writeln!(out, "reassignments:")?;
    match crate::reassign::ongoing(&mut stream) {
        Ok(list) => list.lines().try_for_each(|l| writeln!(out, "  {l}"))?,
        Err(e) => writeln!(out, "  unavailable: {e:#}")?,
    }
    Ok(out)
}

/// Each voter's controller listener, host:port by node id, from DescribeQuorum v2.
fn controller_listeners(stream: &mut TcpStream) -> anyhow::Result<BTreeMap<i32, String>> {
    let quorum: DescribeQuorumResponse = exchange(
        stream,
        ApiKey::DescribeQuorum,
        2,
        &DescribeQuorumRequest::default(),
    )?;
    if quorum.error_code != 0 {
        bail!(
            "error {}: {}",
            quorum.error_code,
            quorum.error_message.as_deref().unwrap_or("")
        );
    }
    Ok(quorum
        .nodes
        .iter()
        .filter_map(|n| {
            let l = n.listeners.first()?;
            let host = if l.host.contains(':') {
                format!("[{}]", l.host)
            } else {
                l.host.to_string()
            };
            Some((n.node_id.0, format!("{host}:{}", l.port)))
        })
        .collect())
}

/// Asks the broker whose controller listener is `addr` for its `ReplicaStatus`.
pub fn replica_status(addr: &str) -> anyhow::Result<ReplicaStatus> {
    match rpc(addr, &RpcRequest::ReplicaStatus)? {
        RpcResponse::ReplicaStatus(status) => Ok(status),
        _ => bail!("unexpected answer to ReplicaStatus"),
    }
}

/// One controller-RPC question to the node whose controller listener is `addr`.
fn rpc(addr: &str, request: &RpcRequest) -> anyhow::Result<RpcResponse> {
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&target, STATUS_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    // Per read, so a slow trickle could take longer; the broker answers in one write.
    stream.set_read_timeout(Some(STATUS_TIMEOUT))?;
    stream.set_write_timeout(Some(STATUS_TIMEOUT))?;
    let json = serde_json::to_vec(request)?;
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&json);
    stream.write_all(&frame)?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        bail!("response frame of {len} bytes");
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

/// The replication sections: one line per partition of `partitions` (topic, index, leader as
/// the metadata has it), then one per broker of `statuses`.
fn write_replication(
    out: &mut String,
    partitions: &[(String, i32, i32)],
    statuses: &BTreeMap<i32, anyhow::Result<ReplicaStatus>>,
) -> std::fmt::Result {
    let hosted = |broker: i32, topic: &str, index: i32| -> Option<&PartitionStatus> {
        let status = statuses.get(&broker)?.as_ref().ok()?;
        status
            .partitions
            .iter()
            .find(|p| p.topic == topic && p.partition == index)
    };
    let ids = |ids: &[i32]| {
        ids.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let ends = |ends: &mut dyn Iterator<Item = (i32, Option<i64>)>| {
        ends.map(|(r, end)| match end {
            Some(end) => format!("{r}:{end}"),
            None => format!("{r}:-"),
        })
        .collect::<Vec<_>>()
        .join(",")
    };
    let mut sorted: Vec<_> = partitions.iter().collect();
    sorted.sort();
    writeln!(out, "replication:")?;
    for (topic, index, metadata_leader) in sorted {
        let leader_view =
            hosted(*metadata_leader, topic, *index).filter(|p| p.role == ReplicaRole::Leader);
        let Some(p) = leader_view else {
            let state = if *metadata_leader < 0 {
                "offline"
            } else {
                "leader-unknown"
            };
            writeln!(
                out,
                "  topic={topic} partition={index} leader={metadata_leader} epoch=- replicas=- \
                 isr=- hw=- ends=- own=- state={state}"
            )?;
            continue;
        };
        let leader_ends = ends(&mut p.replicas.iter().map(|&r| {
            let end = p.replica_ends.iter().find(|(id, _)| *id == r).map(|e| e.1);
            (r, end)
        }));
        let own = ends(
            &mut p
                .replicas
                .iter()
                .map(|&r| (r, hosted(r, topic, *index).map(|own| own.log_end_offset))),
        );
        let state = if p.isr.len() < p.replicas.len() {
            "under-replicated"
        } else {
            "ok"
        };
        writeln!(
            out,
            "  topic={topic} partition={index} leader={} epoch={} replicas={} isr={} hw={} \
             ends={leader_ends} own={own} state={state}",
            p.leader,
            p.leader_epoch,
            ids(&p.replicas),
            ids(&p.isr),
            p.high_watermark,
        )?;
    }
    writeln!(out, "replication counters:")?;
    for (broker, status) in statuses {
        match status {
            Ok(s) => {
                let c = &s.counters;
                let leading = s
                    .partitions
                    .iter()
                    .filter(|p| p.role == ReplicaRole::Leader)
                    .count();
                writeln!(
                    out,
                    "  broker={broker} uptime_ms={} leader_elections={} became_leader={} \
                     isr_shrinks={} isr_expands={} truncations={} log_restarts={} hosted={} \
                     leading={leading}",
                    c.uptime_ms,
                    c.leader_elections,
                    c.became_leader,
                    c.isr_shrinks,
                    c.isr_expands,
                    c.truncations,
                    c.log_restarts,
                    s.partitions.len(),
                )?;
            }
            Err(e) => {
                let error = format!("{e:#}").replace(char::is_whitespace, "_");
                writeln!(out, "  broker={broker} unreachable error={error}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::ReplicationCounters;

    fn status(topic: &str, role: ReplicaRole, isr: &[i32], end: i64) -> PartitionStatus {
        PartitionStatus {
            topic: topic.into(),
            partition: 0,
            role,
            leader: 1,
            leader_epoch: 2,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            high_watermark: 5,
            log_start_offset: 0,
            log_end_offset: end,
            replica_ends: if role == ReplicaRole::Leader {
                vec![(1, end), (2, 5), (3, -1)]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn one_line_per_partition_and_per_broker() {
        let leader = ReplicaStatus {
            broker: 1,
            counters: ReplicationCounters {
                uptime_ms: 7,
                became_leader: 2,
                ..Default::default()
            },
            partitions: vec![
                status("a", ReplicaRole::Leader, &[1, 2, 3], 6),
                status("b", ReplicaRole::Leader, &[1, 2], 6),
            ],
        };
        let follower = ReplicaStatus {
            broker: 2,
            counters: ReplicationCounters::default(),
            partitions: vec![status("a", ReplicaRole::Follower, &[1, 2, 3], 5)],
        };
        let statuses = BTreeMap::from([
            (1, Ok(leader)),
            (2, Ok(follower)),
            (3, Err(anyhow::anyhow!("cannot connect"))),
        ]);
        let partitions = [
            ("b".to_string(), 0, 1),
            ("a".to_string(), 0, 1),
            ("c".to_string(), 0, -1),
            ("d".to_string(), 0, 3),
        ];
        let mut out = String::new();
        write_replication(&mut out, &partitions, &statuses).unwrap();
        let expected = "\
replication:
  topic=a partition=0 leader=1 epoch=2 replicas=1,2,3 isr=1,2,3 hw=5 ends=1:6,2:5,3:-1 own=1:6,2:5,3:- state=ok
  topic=b partition=0 leader=1 epoch=2 replicas=1,2,3 isr=1,2 hw=5 ends=1:6,2:5,3:-1 own=1:6,2:-,3:- state=under-replicated
  topic=c partition=0 leader=-1 epoch=- replicas=- isr=- hw=- ends=- own=- state=offline
  topic=d partition=0 leader=3 epoch=- replicas=- isr=- hw=- ends=- own=- state=leader-unknown
replication counters:
  broker=1 uptime_ms=7 leader_elections=0 became_leader=2 isr_shrinks=0 isr_expands=0 truncations=0 log_restarts=0 hosted=2 leading=2
  broker=2 uptime_ms=0 leader_elections=0 became_leader=0 isr_shrinks=0 isr_expands=0 truncations=0 log_restarts=0 hosted=1 leading=0
  broker=3 unreachable error=cannot_connect
";
        assert_eq!(out, expected);
    }
}
