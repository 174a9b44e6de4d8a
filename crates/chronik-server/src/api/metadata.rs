//! Metadata (key 3): brokers, cluster id, controller, and topics with their partitions, leaders
//! and replicas. Unknown topics are auto-created when both the request and the broker allow it
//! (and the session may CREATE them). Listing all topics shows only those the session may
//! DESCRIBE; a named topic it may not describe gets TOPIC_AUTHORIZATION_FAILED.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::Controller;
use crate::metadata::TopicMetadata;
use crate::security::{AclOperation, ResourceType, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let describe = |name: &str| {
        broker
            .authorizer
            .topic(session, AclOperation::Describe, name)
    };
    let include_topic_ops = request.include_topic_authorized_operations;
    let include_cluster_ops = request.include_cluster_authorized_operations;
    let all_topics = match &request.topics {
        // Null (v1+) means every topic; so does an empty list in v0.
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let topics = match request.topics {
        _ if all_topics => broker
            .metadata
            .topics()
            .iter()
            .filter(|t| describe(&t.name))
            .map(|t| topic_response(broker, t))
            .collect(),
        None => Vec::new(),
        Some(requested) => requested
            .iter()
            .map(|t| match &t.name {
                Some(name) if !describe(name.as_str()) => unauthorized(Some(name.clone())),
                Some(name) => {
                    let auto_create = (request.allow_auto_topic_creation || version < 4)
                        && broker.metadata.topic(name.as_str()).is_none();
                    if auto_create
                        && !broker.authorizer.cluster(session, AclOperation::Create)
                        && !broker
                            .authorizer
                            .topic(session, AclOperation::Create, name.as_str())
                    {
                        unauthorized(Some(name.clone()))
                    } else {
                        lookup_by_name(broker, name, auto_create)
                    }
                }
                None => match broker.metadata.topic_by_id(t.topic_id) {
                    Some(topic) if !describe(&topic.name) => {
                        unauthorized(None).with_topic_id(t.topic_id)
                    }
                    Some(topic) => topic_response(broker, &topic),
                    None => MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(t.topic_id),
                },
            })
            .collect(),
    };
    let topics = if include_topic_ops {
        topics
            .into_iter()
            .map(|t| with_topic_ops(broker, session, t))
            .collect()
    } else {
        topics
    };
    // Requests carry the cluster flag only in v8-v10 (decoded as false elsewhere), and only
    // those versions' responses have the field.
    let cluster_ops = if include_cluster_ops {
        broker.authorizer.cluster_authorized_operations(session)
    } else {
        i32::MIN
    };
    MetadataResponse::default()
        .with_brokers(vec![self_broker(broker)])
        .with_cluster_id(Some(str_bytes(&broker.metadata.cluster_id())))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// Fills in what the session may do with a topic it was allowed to describe (found or not);
/// an unauthorized topic keeps the "not provided" value, as in Kafka.
fn with_topic_ops(
    broker: &Broker,
    session: &Session,
    topic: MetadataResponseTopic,
) -> MetadataResponseTopic {
    if topic.error_code == ResponseError::TopicAuthorizationFailed.code() {
        return topic;
    }
    let Some(name) = topic.name.as_ref() else {
        return topic;
    };
    let ops = broker
        .authorizer
        .authorized_operations(session, ResourceType::Topic, name.as_str());
    topic.with_topic_authorized_operations(ops)
}

fn unauthorized(name: Option<TopicName>) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name)
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
        .with_topic_id(Uuid::nil())
}

fn lookup_by_name(
    broker: &Broker,
    name: &TopicName,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    let found = if allow_auto_create {
        broker.controller.get_or_auto_create(name.as_str())
    } else {
        broker
            .metadata
            .topic(name.as_str())
            .ok_or_else(|| crate::controller::ControllerError {
                code: ResponseError::UnknownTopicOrPartition.code(),
                message: String::new(),
            })
    };
    match found {
        Ok(topic) => topic_response(broker, &topic),
        Err(e) => {
            let code = if Controller::validate_topic_name(name.as_str()).is_err() {
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

pub fn self_broker(broker: &Broker) -> MetadataResponseBroker {
    let (host, port) = broker.advertised.clone();
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker.config.node_id))
        .with_host(str_bytes(&host))
        .with_port(port)
}

fn topic_response(broker: &Broker, topic: &TopicMetadata) -> MetadataResponseTopic {
    let node = BrokerId(broker.config.node_id);
    let partitions = (0..topic.partitions)
        .map(|index| {
            let hosted = broker.replicas.partition(&topic.name, index);
            let epoch = hosted.as_ref().map(|p| p.leader_epoch()).unwrap_or(0);
            // Its directory could not be opened: listed as usual, its replica marked offline
            // (the field exists from v5; older versions drop it), and requests to it answer
            // KAFKA_STORAGE_ERROR.
            let offline = hosted.is_none()
                && broker
                    .replicas
                    .offline_partition(&topic.name, index)
                    .is_some();
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(epoch)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
                .with_offline_replicas(if offline { vec![node] } else { Vec::new() })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
