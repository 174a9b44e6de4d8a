//! Metadata (key 3): from the metadata image: the live brokers, cluster id, this broker as the
//! controller clients should use (it forwards, KIP-590), and topics with their partitions, leaders, epochs, replicas and ISR. Unknown topics are auto-created when both the request and the broker allow it
//! (and the session may CREATE them). Listing all topics shows only those the session may
//! DESCRIBE; a named topic it may not describe gets TOPIC_AUTHORIZATION_FAILED.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::config::BrokerConfig;
use crate::controller::validate_topic_name;
use crate::controller::Controller;
use crate::metadata::MetadataView;
use crate::metadata::{MetadataImage, TopicImage};
use crate::replica::ReplicaManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, ResourceType, Session};

// Each service is passed on its own so the handler can be tested with just these; bundling
// them back into one struct is what this signature avoids.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    controller: &Controller,
    config: &BrokerConfig,
    authorizer: &Authorizer,
    session: &Session,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let describe = |name: &str| authorizer.topic(session, AclOperation::Describe, name);
    let include_topic_ops = request.include_topic_authorized_operations;
    let include_cluster_ops = request.include_cluster_authorized_operations;
    let all_topics = match &request.topics {
        // Null (v1+) means every topic; so does an empty list in v0.
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let mut topics = Vec::new();
    match request.topics {
        _ if all_topics => topics.extend(
            metadata
                .topics()
                .iter()
                .filter(|t| describe(&t.name))
                .map(|t| topic_response(metadata, replicas, config.node_id, t)),
        ),
        None => {}
        Some(requested) => {
            for t in &requested {
                topics.push(match &t.name {
                    Some(name) if !describe(name.as_str()) => unauthorized(Some(name.clone())),
                    Some(name) => {
                        let auto_create = (request.allow_auto_topic_creation || version < 4)
                            && metadata.topic(name.as_str()).is_none();
                        if auto_create
                            && !authorizer.cluster(session, AclOperation::Create)
                            && !authorizer.topic(session, AclOperation::Create, name.as_str())
                        {
                            unauthorized(Some(name.clone()))
                        } else {
                            lookup_by_name(
                                metadata,
                                replicas,
                                controller,
                                config.node_id,
                                name,
                                auto_create,
                            )
                            .await
                        }
                    }
                    None => match metadata.topic_by_id(t.topic_id) {
                        Some(topic) if !describe(&topic.name) => {
                            unauthorized(None).with_topic_id(t.topic_id)
                        }
                        Some(topic) => topic_response(metadata, replicas, config.node_id, &topic),
                        None => MetadataResponseTopic::default()
                            .with_error_code(ResponseError::UnknownTopicId.code())
                            .with_topic_id(t.topic_id),
                    },
                });
            }
        }
    }
    let topics = if include_topic_ops {
        topics
            .into_iter()
            .map(|t| with_topic_ops(authorizer, session, t))
            .collect()
    } else {
        topics
    };
    // Requests carry the cluster flag only in v8-v10 (decoded as false elsewhere), and only
    // those versions' responses have the field.
    let cluster_ops = if include_cluster_ops {
        authorizer.cluster_authorized_operations(session)
    } else {
        i32::MIN
    };
    let image = metadata.image();
    MetadataResponse::default()
        .with_brokers(live_brokers(&image, &session.listener))
        .with_cluster_id(Some(str_bytes(&image.cluster_id)))
        // KIP-590: any broker forwards admin requests to the controller, so clients are
        // pointed at this one (reachable, unlike a dead Raft leader); DescribeCluster names
        // the real controller.
        .with_controller_id(BrokerId(config.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// The Raft leader's id, or -1 while there is none.
pub fn controller_id(controller: &Controller) -> i32 {
    controller.quorum().leader().map_or(-1, |id| id as i32)
}

/// Every unfenced broker with the listener the client connected on, as it should see the
/// cluster (a broker without that listener is left out, as in Kafka).
pub fn live_brokers(image: &MetadataImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .live_brokers()
        .filter_map(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(str_bytes(host))
                    .with_port(port),
            )
        })
        .collect()
}

/// Fills in what the session may do with a topic it was allowed to describe (found or not);
/// an unauthorized topic keeps the "not provided" value, as in Kafka.
fn with_topic_ops(
    authorizer: &Authorizer,
    session: &Session,
    topic: MetadataResponseTopic,
) -> MetadataResponseTopic {
    if topic.error_code == ResponseError::TopicAuthorizationFailed.code() {
        return topic;
    }
    let Some(name) = topic.name.as_ref() else {
        return topic;
    };
    let ops = authorizer.authorized_operations(session, ResourceType::Topic, name.as_str());
    topic.with_topic_authorized_operations(ops)
}

fn unauthorized(name: Option<TopicName>) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
        .with_topic_id(Uuid::nil())
}

async fn lookup_by_name(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    controller: &Controller,
    node_id: i32,
    name: &TopicName,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    let found = if allow_auto_create {
        controller.get_or_auto_create(name.as_str()).await
    } else {
        metadata
            .topic(name.as_str())
            .ok_or_else(|| crate::controller::ControllerError {
                code: ResponseError::UnknownTopicOrPartition.code(),
                message: String::new(),
            })
    };
    match found {
        Ok(topic) => topic_response(metadata, replicas, node_id, &topic),
        Err(e) => {
            let code = if validate_topic_name(name.as_str()).is_err() {
                ResponseError::InvalidTopicException.code()
            } else {
                e.code
            };
            MetadataResponseTopic::default()
                .with_name(Some(name.clone()))
                .with_error_code(code)
                .with_topic_id(Uuid::nil())
        }
    }
}

/// `replicas` is this broker's (`me`): it tells which of its own replicas are offline.
fn topic_response(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    me: i32,
    topic: &TopicImage,
) -> MetadataResponseTopic {
    let image = metadata.image();
    let hosted = replicas;
    // Replicas on fenced brokers are offline (KIP-112), and so is this broker's replica of a
    // partition whose directory could not be opened (requests to it answer
    // KAFKA_STORAGE_ERROR). The field exists from v5; older versions drop it.
    let offline = |index: i32, assigned: &[i32]| -> Vec<BrokerId> {
        assigned
            .iter()
            .filter(|b| {
                image.brokers.get(b).is_none_or(|r| r.fenced)
                    || (**b == me
                        && hosted.partition(&topic.name, index).is_none()
                        && hosted.offline_partition(&topic.name, index).is_some())
            })
            .map(|b| BrokerId(*b))
            .collect()
    };
    let ids = |ids: &[i32]| ids.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let index = index as i32;
            let leader_alive = image.brokers.get(&p.leader).is_some_and(|b| !b.fenced);
            let partition = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(offline(index, &p.replicas));
            if leader_alive {
                partition
            } else {
                partition.with_error_code(ResponseError::LeaderNotAvailable.code())
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
