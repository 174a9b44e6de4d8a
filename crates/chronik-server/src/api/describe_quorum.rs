//! DescribeQuorum (key 55): the metadata quorum's leader, epoch (Raft term), high watermark and
//! each voter's log end, as the leader reports it; any broker forwards the question there.
//! Needs DESCRIBE on the cluster, as in Kafka. The quorum's topic is `__cluster_metadata`,
//! partition 0, as Kafka names its metadata log. From v2 it also lists each voter's controller
//! listener (KIP-853's `Nodes`, listener name `CONTROLLER`) as this broker's configuration names
//! it: `chronik-server cluster status` finds every broker's controller listener there.

use std::time::Duration;

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::{Controller, ControllerCall, Decided};
use crate::security::{AclOperation, Authorizer, Session};

/// How long the leader may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Needs the controller (to reach the leader) and the authorizer.
pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    _request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let refused = |code: i16, message: &str| {
        let response = DescribeQuorumResponse::default().with_error_code(code);
        if version >= 2 {
            response.with_error_message(Some(str_bytes(message)))
        } else {
            response
        }
    };
    if !authorizer.cluster(session, AclOperation::Describe) {
        return refused(
            ResponseError::ClusterAuthorizationFailed.code(),
            "not authorized to describe the cluster",
        );
    }
    let info = match controller
        .call(ControllerCall::DescribeQuorum, TIMEOUT)
        .await
    {
        Ok(Decided::Quorum(info)) => info,
        Ok(_) => {
            return refused(
                ResponseError::UnknownServerError.code(),
                "unexpected answer",
            )
        }
        Err(e) => return refused(e.code, &e.message),
    };
    let voters = info
        .voters
        .iter()
        .map(|(id, end)| {
            ReplicaState::default()
                .with_replica_id(BrokerId(*id as i32))
                .with_log_end_offset(*end)
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        })
        .collect();
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(info.leader as i32))
        .with_leader_epoch(info.term as i32)
        .with_high_watermark(info.high_watermark)
        .with_current_voters(voters);
    let response = DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(str_bytes("__cluster_metadata")))
        .with_partitions(vec![partition])]);
    if version < 2 {
        return response;
    }
    response.with_nodes(voter_nodes(&controller.quorum().voters))
}

/// The voters' controller listeners, from `id → host:port` (an address without a parseable
/// port is left out rather than sent wrong).
fn voter_nodes(voters: &std::collections::BTreeMap<u64, String>) -> Vec<Node> {
    voters
        .iter()
        .filter_map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            let port: u16 = port.parse().ok()?;
            let listener = Listener::default()
                .with_name(str_bytes("CONTROLLER"))
                .with_host(str_bytes(
                    host.trim_start_matches('[').trim_end_matches(']'),
                ))
                .with_port(port);
            Some(
                Node::default()
                    .with_node_id(BrokerId(*id as i32))
                    .with_listeners(vec![listener]),
            )
        })
        .collect()
}
