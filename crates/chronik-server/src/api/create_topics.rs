//! CreateTopics (key 19): validate names, partition counts (or explicit replica assignments),
//! replication factors and configs; create unless validate_only.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::controller::NewTopic;
use crate::metadata::topic_config::{all_names, effective_value};
use crate::replica::ReplicaManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

/// config_source values of DescribeConfigs/CreateTopics.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(
    replicas: &ReplicaManager,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let cluster_create = authorizer.cluster(session, AclOperation::Create);
    let timeout = request_timeout(request.timeout_ms);
    let mut seen = std::collections::HashSet::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let first = seen.insert(t.name.clone());
        let result = create_one(
            replicas,
            controller,
            authorizer,
            session,
            t,
            first,
            cluster_create,
            request.validate_only,
            timeout,
            version,
        )
        .await;
        topics.push(result);
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// The time a metadata change may take: the request's timeout, or the controller's default.
pub fn request_timeout(timeout_ms: i32) -> std::time::Duration {
    if timeout_ms > 0 {
        std::time::Duration::from_millis(timeout_ms as u64)
    } else {
        crate::controller::DEFAULT_TIMEOUT
    }
}

#[allow(clippy::too_many_arguments)]
async fn create_one(
    replicas: &ReplicaManager,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    t: CreatableTopic,
    first: bool,
    cluster_create: bool,
    validate_only: bool,
    timeout: std::time::Duration,
    version: i16,
) -> CreatableTopicResult {
    // kafka-protocol defaults the message to ""; Kafka sends null on success (clients check).
    let result = CreatableTopicResult::default()
        .with_name(t.name.clone())
        .with_error_message(None)
        .with_num_partitions(-1)
        .with_replication_factor(-1);
    if !first {
        return result
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes("topic listed twice in one request")));
    }
    if !cluster_create && !authorizer.topic(session, AclOperation::Create, &t.name) {
        return result
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("not authorized to create this topic")));
    }
    let assignments = if t.assignments.is_empty() {
        None
    } else if t.num_partitions != -1 || t.replication_factor != -1 {
        return result
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(
                "give either replica assignments or partition count and replication factor",
            )));
    } else {
        let mut by_index: Vec<(i32, Vec<i32>)> = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        by_index.sort_by_key(|(p, _)| *p);
        if by_index
            .iter()
            .enumerate()
            .any(|(i, (p, _))| *p != i as i32)
        {
            return result
                .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                .with_error_message(Some(str_bytes(
                    "partitions must be numbered 0..n without gaps",
                )));
        }
        Some(by_index.into_iter().map(|(_, r)| r).collect())
    };
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        if let Some(value) = &c.value {
            configs.insert(c.name.to_string(), value.to_string());
        }
    }
    let new = NewTopic {
        name: t.name.to_string(),
        partitions: t.num_partitions,
        replication_factor: t.replication_factor,
        assignments,
        configs,
        validate_only,
    };
    match controller.create_topic(new, timeout).await {
        Ok(topic) => {
            let mut result = result
                .with_topic_id(topic.id)
                .with_num_partitions(topic.partition_count())
                .with_replication_factor(topic.replication_factor());
            if version >= 5 {
                let configs = all_names()
                    .map(|name| {
                        let (value, is_default) =
                            effective_value(&replicas.log_defaults(), &topic.configs, name);
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(name))
                            .with_value(Some(str_bytes(&value)))
                            .with_config_source(if is_default {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_TOPIC
                            })
                    })
                    .collect();
                result = result.with_configs(Some(configs));
            }
            result
        }
        Err(e) => result
            .with_error_code(e.code)
            .with_error_message(Some(str_bytes(&e.message))),
    }
}
