//! CreateTopics (key 19): validate names, partition counts (or explicit replica assignments),
//! replication factors and configs; create unless validate_only.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::controller::NewTopic;
use crate::metadata::topic_config::{all_names, effective_value};
use crate::security::{AclOperation, Session};

/// config_source values of DescribeConfigs/CreateTopics.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DEFAULT: i8 = 5;

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let cluster_create = broker.authorizer.cluster(session, AclOperation::Create);
    let mut seen = std::collections::HashSet::new();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if !seen.insert(t.name.clone()) {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("topic listed twice in one request")));
            }
            if !cluster_create
                && !broker
                    .authorizer
                    .topic(session, AclOperation::Create, &t.name)
            {
                return result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("not authorized to create this topic")));
            }
            let (partitions, replication_factor) = if t.assignments.is_empty() {
                (t.num_partitions, t.replication_factor)
            } else if t.num_partitions != -1 || t.replication_factor != -1 {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(
                        "give either replica assignments or partition count and replication factor",
                    )));
            } else {
                let assignments: Vec<(i32, Vec<i32>)> = t
                    .assignments
                    .iter()
                    .map(|a| {
                        (
                            a.partition_index,
                            a.broker_ids.iter().map(|b| b.0).collect(),
                        )
                    })
                    .collect();
                match broker.controller.check_replica_assignment(&assignments) {
                    Ok(shape) => shape,
                    Err(e) => {
                        return result
                            .with_error_code(e.code)
                            .with_error_message(Some(str_bytes(&e.message)))
                    }
                }
            };
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                if let Some(value) = &c.value {
                    configs.insert(c.name.to_string(), value.to_string());
                }
            }
            let created = broker.controller.create_topic(
                NewTopic {
                    name: t.name.as_str(),
                    partitions,
                    replication_factor,
                    configs,
                },
                request.validate_only,
            );
            match created {
                Ok(topic) => {
                    let mut result = result
                        .with_topic_id(topic.id)
                        .with_num_partitions(topic.partitions)
                        .with_replication_factor(topic.replication_factor);
                    if version >= 5 {
                        let configs = all_names()
                            .map(|name| {
                                let (value, is_default) =
                                    effective_value(&broker.config.log, &topic.configs, name);
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
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
