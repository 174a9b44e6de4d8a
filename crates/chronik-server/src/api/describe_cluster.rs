//! DescribeCluster (key 60): the brokers, the controller and the cluster id, and on request
//! the session's authorized operations on the cluster.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::broker::Broker;
use crate::security::Session;

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = broker.advertised.clone();
    // Kafka requires no ACL to describe the cluster's brokers.
    let cluster_ops = if request.include_cluster_authorized_operations {
        broker.authorizer.cluster_authorized_operations(session)
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&broker.metadata.cluster_id()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(broker.config.node_id))
            .with_host(str_bytes(&host))
            .with_port(port)])
        .with_cluster_authorized_operations(cluster_ops)
}
