//! The controller: the one place that changes cluster metadata (topics, partition counts,
//! configs). It validates a change, records it in the `MetadataStore`, then has the
//! `ReplicaManager` reconcile local partitions from the new metadata.
//!
//! On a single node the store is a local file; the Raft metadata quorum will replace the store's
//! persistence, not this interface. Errors carry the Kafka error code and a message for the client.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::metadata::topic_config::validate_all;
use crate::metadata::{MetadataStore, TopicMetadata};
use crate::replica::ReplicaManager;

/// A refused metadata change: Kafka error code and message.
#[derive(Debug, Clone)]
pub struct ControllerError {
    pub code: i16,
    pub message: String,
}

impl ControllerError {
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ControllerError {
            code: error.code(),
            message: message.into(),
        }
    }

    fn storage(e: impl std::fmt::Display) -> Self {
        ControllerError::new(ResponseError::KafkaStorageError, e.to_string())
    }
}

fn unknown_topic(name: &str) -> ControllerError {
    ControllerError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("unknown topic {name:?}"),
    )
}

/// Name of the internal topic that stores consumer group offsets and metadata.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// What a new topic should look like.
pub struct NewTopic<'a> {
    pub name: &'a str,
    /// -1 takes the broker default.
    pub partitions: i32,
    /// -1 takes the broker default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

pub struct Controller {
    config: Arc<BrokerConfig>,
    metadata: Arc<MetadataStore>,
    replicas: Arc<ReplicaManager>,
}

impl Controller {
    pub fn new(
        config: Arc<BrokerConfig>,
        metadata: Arc<MetadataStore>,
        replicas: Arc<ReplicaManager>,
    ) -> Self {
        Controller {
            config,
            metadata,
            replicas,
        }
    }

    /// Brings local partitions in line with metadata at start. A partition that cannot be
    /// opened goes offline (the replica manager logs it and answers KAFKA_STORAGE_ERROR for it);
    /// it does not keep the broker from serving every other partition.
    pub fn reconcile_all(&self) {
        for topic in self.metadata.topics() {
            let _ = self.replicas.reconcile_topic(&topic);
        }
    }

    /// Checks a topic name the way Kafka does.
    pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
        let legal = !name.is_empty()
            && name.len() <= 249
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
        if legal {
            Ok(())
        } else {
            Err(ControllerError::new(
                ResponseError::InvalidTopicException,
                format!("topic name {name:?} is illegal: up to 249 of [a-zA-Z0-9._-], not . or .."),
            ))
        }
    }

    /// Validates a topic creation and, unless `validate_only`, performs it.
    pub fn create_topic(
        &self,
        new: NewTopic<'_>,
        validate_only: bool,
    ) -> Result<TopicMetadata, ControllerError> {
        Self::validate_topic_name(new.name)?;
        if self.metadata.topic(new.name).is_some() {
            return Err(ControllerError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {:?} already exists", new.name),
            ));
        }
        let partitions = match new.partitions {
            -1 => self.config.num_partitions,
            n if n >= 1 => n,
            n => {
                return Err(ControllerError::new(
                    ResponseError::InvalidPartitions,
                    format!("number of partitions must be at least 1, not {n}"),
                ))
            }
        };
        let replication_factor = match new.replication_factor {
            -1 => self.config.default_replication_factor,
            n => n,
        };
        let brokers = self.broker_ids().len() as i16;
        if replication_factor < 1 || replication_factor > brokers {
            return Err(ControllerError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} is not between 1 and the {brokers} available broker(s)"
                ),
            ));
        }
        validate_all(new.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| ControllerError::new(ResponseError::InvalidConfig, e.0))?;
        let topic = TopicMetadata {
            name: new.name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs: new.configs,
            internal: new.name == CONSUMER_OFFSETS_TOPIC,
        };
        if validate_only {
            return Ok(topic);
        }
        if !self
            .metadata
            .insert_topic(topic.clone())
            .map_err(ControllerError::storage)?
        {
            return Err(ControllerError::new(
                ResponseError::TopicAlreadyExists,
                format!("topic {:?} already exists", new.name),
            ));
        }
        self.replicas
            .reconcile_topic(&topic)
            .map_err(ControllerError::storage)?;
        Ok(topic)
    }

    /// Brokers that may hold replicas.
    fn broker_ids(&self) -> Vec<i32> {
        vec![self.config.node_id]
    }

    /// Checks explicit replica assignments (partition → broker ids) and returns the partition
    /// count and replication factor they describe. Partitions must be 0..n, every list the same
    /// length, without repeats, naming registered brokers only.
    pub fn check_replica_assignment(
        &self,
        assignments: &[(i32, Vec<i32>)],
    ) -> Result<(i32, i16), ControllerError> {
        let invalid = |message: String| {
            ControllerError::new(ResponseError::InvalidReplicaAssignment, message)
        };
        let brokers = self.broker_ids();
        let mut indexes: Vec<i32> = assignments.iter().map(|(p, _)| *p).collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
            return Err(invalid(
                "partitions must be numbered 0..n without gaps".into(),
            ));
        }
        let replication_factor = assignments[0].1.len();
        for (partition, replicas) in assignments {
            let mut unique = replicas.clone();
            unique.sort_unstable();
            unique.dedup();
            if replicas.is_empty() || unique.len() != replicas.len() {
                return Err(invalid(format!(
                    "partition {partition}: empty or repeated replicas"
                )));
            }
            if replicas.len() != replication_factor {
                return Err(invalid(
                    "every partition needs the same number of replicas".into(),
                ));
            }
            if let Some(unknown) = replicas.iter().find(|b| !brokers.contains(b)) {
                return Err(invalid(format!(
                    "partition {partition}: unknown broker {unknown}"
                )));
            }
        }
        Ok((assignments.len() as i32, replication_factor as i16))
    }

    /// The topic, created with broker defaults if auto-creation allows it.
    pub fn get_or_auto_create(&self, name: &str) -> Result<TopicMetadata, ControllerError> {
        if let Some(topic) = self.metadata.topic(name) {
            return Ok(topic);
        }
        if !self.config.auto_create_topics {
            return Err(unknown_topic(name));
        }
        let created = self.create_topic(
            NewTopic {
                name,
                partitions: -1,
                replication_factor: -1,
                configs: BTreeMap::new(),
            },
            false,
        );
        match created {
            // Another request created it first.
            Err(e) if e.code == ResponseError::TopicAlreadyExists.code() => {
                self.metadata.topic(name).ok_or(e)
            }
            other => other,
        }
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMetadata, ControllerError> {
        let topic = self
            .metadata
            .remove_topic(name)
            .map_err(ControllerError::storage)?
            .ok_or_else(|| unknown_topic(name))?;
        self.replicas.remove_topic(&topic);
        Ok(topic)
    }

    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let topic = self
            .metadata
            .topic(name)
            .ok_or_else(|| unknown_topic(name))?;
        if count <= topic.partitions {
            return Err(ControllerError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "topic {name:?} has {} partitions; the new count {count} must be larger",
                    topic.partitions
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        self.update_and_reconcile(name, |t| t.partitions = count)
    }

    /// Replaces a topic's config overrides with `configs` (validated first).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        if self.metadata.topic(name).is_none() {
            return Err(unknown_topic(name));
        }
        validate_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| ControllerError::new(ResponseError::InvalidConfig, e.0))?;
        if validate_only {
            return Ok(());
        }
        self.update_and_reconcile(name, |t| t.configs = configs)
    }

    /// Records a change to an existing topic, then has its partitions follow it.
    fn update_and_reconcile(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicMetadata),
    ) -> Result<(), ControllerError> {
        let updated = self
            .metadata
            .update_topic(name, change)
            .map_err(ControllerError::storage)?
            .ok_or_else(|| unknown_topic(name))?;
        self.replicas
            .reconcile_topic(&updated)
            .map_err(ControllerError::storage)
    }
}
