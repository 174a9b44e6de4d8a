//! DescribeCluster (key 60): from the metadata image, the unfenced brokers (v2 may ask for the
//! fenced ones too, flagged), the controller (the Raft leader) and the cluster id, and on request the
//! session's authorized operations on the cluster.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::metadata::MetadataView;
use crate::security::{Authorizer, Session};

/// Needs the published image, the authorizer and the controller's id (-1: none).
pub fn handle(
    metadata: &MetadataView,
    authorizer: &Authorizer,
    controller_id: i32,
    session: &Session,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    // Kafka requires no ACL to describe the cluster's brokers.
    let cluster_ops = if request.include_cluster_authorized_operations {
        authorizer.cluster_authorized_operations(session)
    } else {
        i32::MIN
    };
    let image = metadata.image();
    // Unfenced brokers; v2 can ask for the fenced ones too, flagged.
    let with_fenced = version >= 2 && request.include_fenced_brokers;
    let brokers = image
        .brokers
        .values()
        .filter(|b| with_fenced || !b.fenced)
        .filter_map(|b| {
            let (host, port) = b.endpoint(&session.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_is_fenced(version >= 2 && b.fenced),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(cluster_ops)
}
