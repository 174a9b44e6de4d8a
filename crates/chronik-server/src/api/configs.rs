//! DescribeConfigs (32), AlterConfigs (33) and IncrementalAlterConfigs (44) for topics and
//! brokers. Topic changes go through the controller, which validates them and has every
//! partition apply the new settings at once. BROKER resources (a broker id, or "" for the
//! cluster-wide default) list every broker config with its source, and the dynamic ones
//! (`metadata::broker_config`, KIP-226) change at runtime as metadata records.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::create_topics::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::str_bytes;
use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::controller::{ControllerCall, ControllerError};
use crate::metadata::broker_config;
use crate::metadata::topic_config::{all_names, effective_value};
use crate::metadata::MetadataView;
use crate::replica::ReplicaManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

/// Whether the session may `operation` (DESCRIBE_CONFIGS / ALTER_CONFIGS) the resource; the
/// refusal is TOPIC_ or CLUSTER_AUTHORIZATION_FAILED. Unknown resource types pass through to
/// the handler's own INVALID_REQUEST.
fn authorize(
    authorizer: &Authorizer,
    session: &Session,
    operation: AclOperation,
    resource_type: i8,
    name: &str,
) -> Result<(), ControllerError> {
    let (allowed, error) = match resource_type {
        RESOURCE_TOPIC => (
            authorizer.topic(session, operation, name),
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_BROKER => (
            authorizer.cluster(session, operation),
            ResponseError::ClusterAuthorizationFailed,
        ),
        _ => return Ok(()),
    };
    if allowed {
        Ok(())
    } else {
        Err(ControllerError {
            code: error.code(),
            message: format!("not authorized to {operation:?} this resource"),
        })
    }
}

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// config_type of DescribeConfigs v3+.
fn config_type(name: &str) -> i8 {
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    const LIST: i8 = 7;
    const BOOLEAN: i8 = 1;
    const DOUBLE: i8 = 6;
    match name {
        "cleanup.policy"
        | "follower.replication.throttled.replicas"
        | "leader.replication.throttled.replicas" => LIST,
        "message.timestamp.type" | "compression.type" | "message.format.version" => STRING,
        "max.message.bytes"
        | "min.insync.replicas"
        | "segment.bytes"
        | "num.partitions"
        | "index.interval.bytes"
        | "segment.index.bytes" => INT,
        "auto.create.topics.enable"
        | "message.downconversion.enable"
        | "preallocate"
        | "unclean.leader.election.enable" => BOOLEAN,
        "min.cleanable.dirty.ratio" => DOUBLE,
        _ => LONG,
    }
}

fn entry(
    name: &str,
    value: String,
    source: i8,
    read_only: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(&value)))
        .with_read_only(read_only)
        .with_config_source(source);
    if version >= 3 {
        result = result.with_config_type(config_type(name));
    }
    result
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
}

pub fn describe(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    config: &BrokerConfig,
    authorizer: &Authorizer,
    session: &Session,
    request: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            if let Err(e) = authorize(
                authorizer,
                session,
                AclOperation::DescribeConfigs,
                resource.resource_type,
                resource.resource_name.as_str(),
            ) {
                return result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message)));
            }
            match resource.resource_type {
                RESOURCE_TOPIC => match metadata.topic(resource.resource_name.as_str()) {
                    Some(topic) => result.with_configs(
                        all_names()
                            .filter(|name| wanted(&resource.configuration_keys, name))
                            .map(|name| {
                                let (value, is_default) =
                                    effective_value(&replicas.log_defaults(), &topic.configs, name);
                                let source = if is_default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                };
                                entry(name, value, source, false, version)
                            })
                            .collect(),
                    ),
                    None => result
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(str_bytes("unknown topic"))),
                },
                RESOURCE_BROKER => {
                    let image = metadata.image();
                    let name = resource.resource_name.as_str();
                    let listed: Vec<(String, String, i8, bool)> = if name.is_empty() {
                        // The cluster-wide default resource lists only what is set on it.
                        broker_config::current(&image, "")
                            .into_iter()
                            .map(|(k, v)| (k, v, broker_config::SOURCE_DYNAMIC_DEFAULT, false))
                            .collect()
                    } else {
                        match name.parse::<i32>() {
                            Ok(id) => broker_config::describe(config, &image, id),
                            Err(_) => {
                                return result
                                    .with_error_code(ResponseError::InvalidRequest.code())
                                    .with_error_message(Some(str_bytes(
                                        "a BROKER resource is named by a broker id or \"\"",
                                    )))
                            }
                        }
                    };
                    result.with_configs(
                        listed
                            .into_iter()
                            .filter(|(name, ..)| wanted(&resource.configuration_keys, name))
                            .map(|(name, value, source, read_only)| {
                                entry(&name, value, source, read_only, version)
                            })
                            .collect(),
                    )
                }
                _ => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes("unsupported resource type"))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// The value a broker config has without a dynamic override (for APPEND/SUBTRACT).
fn broker_static_value(
    metadata: &MetadataView,
    config: &BrokerConfig,
    name: &str,
) -> Option<String> {
    let image = metadata.image();
    let without_dynamic = crate::metadata::MetadataImage {
        broker_configs: Default::default(),
        ..(*image).clone()
    };
    broker_config::describe(config, &without_dynamic, config.node_id)
        .into_iter()
        .find(|(n, ..)| n == name)
        .map(|(_, value, ..)| value)
}

/// Applies a whole new set of overrides to one resource.
async fn apply(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    resource_type: i8,
    name: &str,
    configs: Result<BTreeMap<String, String>, ControllerError>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    authorize(
        authorizer,
        session,
        AclOperation::AlterConfigs,
        resource_type,
        name,
    )?;
    match resource_type {
        RESOURCE_TOPIC => {
            controller
                .set_topic_configs(name, configs?, validate_only)
                .await
        }
        RESOURCE_BROKER => {
            let call = ControllerCall::SetBrokerConfigs {
                resource: name.to_string(),
                configs: configs?,
                validate_only,
            };
            controller
                .call(call, crate::controller::DEFAULT_TIMEOUT)
                .await
                .map(|_| ())
        }
        _ => Err(ControllerError {
            code: ResponseError::InvalidRequest.code(),
            message: "unsupported resource type".into(),
        }),
    }
}

/// AlterConfigs replaces every override of the resource.
pub async fn alter(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let response = {
            let configs = resource
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let outcome = apply(
                controller,
                authorizer,
                session,
                resource.resource_type,
                resource.resource_name.as_str(),
                Ok(configs),
                request.validate_only,
            )
            .await;
            let response = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match outcome {
                Ok(()) => response.with_error_message(None),
                Err(e) => response
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        };
        responses.push(response);
    }
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs applies SET / DELETE / APPEND / SUBTRACT to the current overrides.
pub async fn incremental_alter(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    controller: &Controller,
    config: &BrokerConfig,
    authorizer: &Authorizer,
    session: &Session,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for resource in request.resources {
        let response = {
            let name = resource.resource_name.as_str();
            let base = match resource.resource_type {
                RESOURCE_TOPIC => metadata.topic(name).map(|t| t.configs.clone()),
                RESOURCE_BROKER => Some(broker_config::current(&metadata.image(), name)),
                _ => None,
            };
            let defaults = replicas.log_defaults();
            let configs = match base {
                Some(mut configs) => {
                    resource
                        .configs
                        .iter()
                        .try_for_each(|c| {
                            let key = c.name.to_string();
                            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                            // APPEND/SUBTRACT work on the effective value, as in Kafka.
                            let current = if resource.resource_type == RESOURCE_TOPIC {
                                effective_value(&defaults, &configs, &key).0
                            } else {
                                configs.get(&key).cloned().unwrap_or_else(|| {
                                    broker_static_value(metadata, config, &key).unwrap_or_default()
                                })
                            };
                            let mut list: Vec<String> = current
                                .split(',')
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect();
                            match c.config_operation {
                                0 => {
                                    configs.insert(key, value);
                                }
                                1 => {
                                    configs.remove(&key);
                                }
                                2 => {
                                    for v in value.split(',').map(str::trim) {
                                        if !list.iter().any(|x| x == v) {
                                            list.push(v.to_string());
                                        }
                                    }
                                    configs.insert(key, list.join(","));
                                }
                                3 => {
                                    let remove: Vec<&str> =
                                        value.split(',').map(str::trim).collect();
                                    list.retain(|x| !remove.contains(&x.as_str()));
                                    // Subtracting the last value is accepted (Kafka 4.x): the
                                    // override goes and the broker default applies again.
                                    if list.is_empty() {
                                        configs.remove(&key);
                                    } else {
                                        configs.insert(key, list.join(","));
                                    }
                                }
                                op => {
                                    return Err(ControllerError {
                                        code: ResponseError::InvalidRequest.code(),
                                        message: format!("unknown config operation {op}"),
                                    })
                                }
                            }
                            Ok(())
                        })
                        .map(|_| configs)
                }
                _ => Ok(BTreeMap::new()),
            };
            let outcome = apply(
                controller,
                authorizer,
                session,
                resource.resource_type,
                name,
                configs,
                request.validate_only,
            )
            .await;
            let response =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone());
            match outcome {
                Ok(()) => response.with_error_message(None),
                Err(e) => response
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        };
        responses.push(response);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
