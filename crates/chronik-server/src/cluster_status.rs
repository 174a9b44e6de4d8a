//! `chronik-server cluster status --bootstrap-server HOST:PORT`: what one broker knows of the
//! cluster, over the Kafka protocol (DescribeCluster v2 for the controller and every broker
//! with its fenced flag, Metadata v12 for each partition's leader, epoch, replicas and ISR).
//! Any broker answers from its metadata image, so any one will do.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

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

/// The status report of the cluster as `bootstrap` sees it.
pub fn report(bootstrap: &str) -> anyhow::Result<String> {
    let mut stream =
        TcpStream::connect(bootstrap).with_context(|| format!("connecting to {bootstrap}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
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
    writeln!(out, "brokers:")?;
    for b in &cluster.brokers {
        let state = if b.is_fenced { "fenced" } else { "alive" };
        writeln!(
            out,
            "  {:>4}  {}:{}  {state}",
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
    Ok(out)
}
