//! `MetadataImage`: cluster metadata as of one log index, immutable. `apply` folds one committed
//! `MetadataBatch` into a new image; every node applies the same batches in the same order, so
//! every node arrives at the same image. Nothing else holds cluster metadata: handlers, the
//! replica manager, the group coordinator and the authorizer all read an image.
//!
//! Images are shared as `Arc<MetadataImage>`; a new image shares unchanged topics with the old
//! one (`Arc<TopicImage>`), so applying a record costs a copy of the maps, not of the topics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::warn;
use uuid::Uuid;

use super::client_quotas::ClientQuotas;
use super::records::{MetadataBatch, MetadataRecord, PartitionState};
use crate::network::listener::Endpoint;
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::AclBinding;

/// One broker as registered with the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// New for every process start: tells a restarted broker from its previous life.
    pub epoch: u64,
    /// The inter-broker listener's address (replica fetchers connect there).
    pub host: String,
    pub port: i32,
    /// Every advertised listener. (Default: registrations from before listeners.)
    #[serde(default)]
    pub listeners: Vec<Endpoint>,
    /// Fenced brokers get no new replicas and are not listed to clients.
    pub fenced: bool,
    /// Between its controlled-shutdown request and the end of its session: shown to operators
    /// as "shutting down" rather than "fenced". (Default: snapshots from before the field.)
    #[serde(default)]
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// Where clients of `listener` reach this broker; None if it has no such listener.
    /// A registration from before listeners has only its PLAINTEXT address.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() {
            return (listener == "PLAINTEXT").then_some((self.host.as_str(), self.port));
        }
        self.listeners
            .iter()
            .find(|e| e.name == listener)
            .map(|e| (e.host.as_str(), e.port))
    }
}

/// One topic and its partitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub internal: bool,
    /// Config overrides; every other config takes the broker default.
    pub configs: BTreeMap<String, String>,
    /// Indexed by partition number.
    pub partitions: Vec<PartitionState>,
}

impl TopicImage {
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// Replicas of partition 0 (all partitions have as many), counting the target ones of a
    /// reassignment.
    pub fn replication_factor(&self) -> i16 {
        self.partitions
            .first()
            .map_or(0, |p| p.target_replicas().len() as i16)
    }
}

/// Cluster metadata as of `applied_index`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Raft log index of the last batch folded in (0: none).
    pub applied_index: u64,
    /// Empty until the first controller writes it.
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub acls: Arc<BTreeSet<AclBinding>>,
    /// The first producer id no broker has been given yet.
    pub next_producer_id: i64,
    /// Dynamic broker configs by resource name: "" is the cluster-wide default, "1" broker 1.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials by user and mechanism (only salted forms). Default: snapshots from
    /// before users existed.
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// Client quotas (absent in snapshots written before quotas existed).
    #[serde(default)]
    pub client_quotas: ClientQuotas,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// Topic lookup by id (a scan: ids are asked for by a few API versions only).
    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.values().find(|t| t.id == id)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
    }

    /// Registered brokers that are not fenced, by id.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// The image after `batch`, committed at log index `index`.
    pub fn apply(&self, index: u64, batch: &MetadataBatch) -> MetadataImage {
        let mut next = self.clone();
        for record in &batch.records {
            next.apply_record(record);
        }
        next.applied_index = index;
        next
    }

    /// Folds one record in. A record that does not fit (a partition of an unknown topic) is
    /// skipped with a warning: the controller validated it against this same image, so this
    /// is a bug, and skipping it the same way on every node keeps the images equal.
    fn apply_record(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterId { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::RegisterBroker {
                id,
                epoch,
                host,
                port,
                listeners,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        epoch: *epoch,
                        host: host.clone(),
                        port: *port,
                        listeners: listeners.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::BrokerFencing { id, epoch, fenced } => {
                match self.brokers.get_mut(id) {
                    // A record about an older incarnation changes nothing.
                    Some(b) if b.epoch == *epoch => {
                        b.fenced = *fenced;
                        b.in_controlled_shutdown &= *fenced;
                    }
                    _ => {}
                }
            }
            MetadataRecord::ControlledShutdown {
                id,
                epoch,
                in_progress,
            } => match self.brokers.get_mut(id) {
                Some(b) if b.epoch == *epoch => b.in_controlled_shutdown = *in_progress,
                _ => {}
            },
            MetadataRecord::Topic {
                name,
                id,
                internal,
                configs,
            } => {
                let topic = TopicImage {
                    name: name.clone(),
                    id: *id,
                    internal: *internal,
                    configs: configs.clone(),
                    partitions: Vec::new(),
                };
                self.topics.insert(name.clone(), Arc::new(topic));
            }
            MetadataRecord::Partition {
                topic,
                partition,
                state,
            } => {
                let Some(t) = self.topics.get_mut(topic) else {
                    warn!(topic, partition, "partition record for an unknown topic");
                    return;
                };
                let t = Arc::make_mut(t);
                let index = *partition as usize;
                if index < t.partitions.len() {
                    t.partitions[index] = state.clone();
                } else if index == t.partitions.len() {
                    t.partitions.push(state.clone());
                } else {
                    warn!(topic, partition, "partition record leaves a gap");
                }
            }
            MetadataRecord::RemoveTopic { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::TopicConfigs { name, configs } => {
                if let Some(t) = self.topics.get_mut(name) {
                    Arc::make_mut(t).configs = configs.clone();
                }
            }
            MetadataRecord::AclsCreated { bindings } => {
                Arc::make_mut(&mut self.acls).extend(bindings.iter().cloned());
            }
            MetadataRecord::AclsDeleted { bindings } => {
                let acls = Arc::make_mut(&mut self.acls);
                for b in bindings {
                    acls.remove(b);
                }
            }
            MetadataRecord::UserScramCredential { user, credential } => {
                self.scram_credentials
                    .entry(user.clone())
                    .or_default()
                    .insert(credential.mechanism, credential.clone());
            }
            MetadataRecord::RemoveUserScramCredential { user, mechanism } => {
                if let Some(credentials) = self.scram_credentials.get_mut(user) {
                    credentials.remove(mechanism);
                    if credentials.is_empty() {
                        self.scram_credentials.remove(user);
                    }
                }
            }
            MetadataRecord::ProducerIdBlock { first, size, .. } => {
                self.next_producer_id = self.next_producer_id.max(first + size);
            }
            MetadataRecord::BrokerConfigs { resource, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(resource);
                } else {
                    self.broker_configs
                        .insert(resource.clone(), configs.clone());
                }
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                self.client_quotas.set(entity, key, *value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::acl::{AclOperation, PatternType, PermissionType, ResourceType};

    #[test]
    fn clients_get_the_endpoint_of_the_listener_they_use() {
        let endpoint = |name: &str, port| Endpoint {
            name: name.into(),
            host: "h".into(),
            port,
        };
        let mut broker = BrokerRegistration {
            id: 1,
            epoch: 1,
            host: "h".into(),
            port: 9092,
            listeners: vec![endpoint("INTERNAL", 9092), endpoint("SASL_SSL", 9093)],
            fenced: false,
            in_controlled_shutdown: false,
        };
        assert_eq!(broker.endpoint("SASL_SSL"), Some(("h", 9093)));
        assert_eq!(broker.endpoint("INTERNAL"), Some(("h", 9092)));
        assert_eq!(
            broker.endpoint("PLAINTEXT"),
            None,
            "no such listener: not listed"
        );
        // Registered before listeners: its address is the PLAINTEXT listener's.
        broker.listeners.clear();
        assert_eq!(broker.endpoint("PLAINTEXT"), Some(("h", 9092)));
        assert_eq!(broker.endpoint("SASL_SSL"), None);
        let old = r#"{"id":1,"epoch":1,"host":"h","port":9092,"fenced":false}"#;
        let old: BrokerRegistration = serde_json::from_str(old).unwrap();
        assert!(old.listeners.is_empty());
    }

    fn batch(records: Vec<MetadataRecord>) -> MetadataBatch {
        MetadataBatch::new(records)
    }

    fn topic_records(name: &str, replicas: &[&[i32]]) -> Vec<MetadataRecord> {
        let mut records = vec![MetadataRecord::Topic {
            name: name.into(),
            id: Uuid::new_v4(),
            internal: false,
            configs: BTreeMap::new(),
        }];
        for (i, r) in replicas.iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic: name.into(),
                partition: i as i32,
                state: PartitionState::new(r.to_vec()),
            });
        }
        records
    }

    #[test]
    fn a_topic_and_its_partitions_arrive_together() {
        let image = MetadataImage::default();
        let next = image.apply(3, &batch(topic_records("t", &[&[1, 2], &[2, 3], &[3, 1]])));
        assert!(image.topics.is_empty(), "the old image is unchanged");
        assert_eq!(next.applied_index, 3);
        let t = next.topic("t").unwrap();
        assert_eq!((t.partition_count(), t.replication_factor()), (3, 2));
        assert_eq!(next.partition("t", 1).unwrap().leader, 2);
        assert_eq!(next.topic_by_id(t.id).unwrap().name, "t");
        assert!(next.partition("t", 3).is_none());
    }

    #[test]
    fn unchanged_topics_are_shared_between_images() {
        let one = MetadataImage::default().apply(1, &batch(topic_records("a", &[&[1]])));
        let two = one.apply(2, &batch(topic_records("b", &[&[1]])));
        assert!(Arc::ptr_eq(&one.topics["a"], &two.topics["a"]));
        let three = two.apply(
            3,
            &batch(vec![MetadataRecord::TopicConfigs {
                name: "a".into(),
                configs: BTreeMap::from([("retention.ms".into(), "1".into())]),
            }]),
        );
        assert_eq!(three.topics["a"].configs["retention.ms"], "1");
        assert!(two.topics["a"].configs.is_empty());
        let four = three.apply(
            4,
            &batch(vec![MetadataRecord::RemoveTopic { name: "a".into() }]),
        );
        assert!(four.topic("a").is_none() && four.topic("b").is_some());
    }

    #[test]
    fn partitions_are_added_and_replaced_in_place() {
        let image = MetadataImage::default().apply(1, &batch(topic_records("t", &[&[1]])));
        let mut moved = PartitionState::new(vec![2]);
        moved.leader_epoch = 1;
        let image = image.apply(
            2,
            &batch(vec![
                MetadataRecord::Partition {
                    topic: "t".into(),
                    partition: 1,
                    state: PartitionState::new(vec![1]),
                },
                MetadataRecord::Partition {
                    topic: "t".into(),
                    partition: 0,
                    state: moved.clone(),
                },
                // Gaps and unknown topics are skipped.
                MetadataRecord::Partition {
                    topic: "t".into(),
                    partition: 5,
                    state: PartitionState::new(vec![1]),
                },
                MetadataRecord::Partition {
                    topic: "nope".into(),
                    partition: 0,
                    state: PartitionState::new(vec![1]),
                },
            ]),
        );
        let t = image.topic("t").unwrap();
        assert_eq!(t.partition_count(), 2);
        assert_eq!(t.partitions[0], moved);
    }

    #[test]
    fn broker_fencing_only_applies_to_the_current_epoch() {
        let register = |epoch| MetadataRecord::RegisterBroker {
            id: 1,
            epoch,
            host: "h".into(),
            port: 9092,
            listeners: Vec::new(),
        };
        let fence = |epoch, fenced| MetadataRecord::BrokerFencing {
            id: 1,
            epoch,
            fenced,
        };
        let image = MetadataImage::default().apply(1, &batch(vec![register(5)]));
        assert!(image.brokers[&1].fenced, "a registration starts fenced");
        let image = image.apply(2, &batch(vec![fence(5, false)]));
        assert_eq!(image.live_brokers().count(), 1);
        let image = image.apply(3, &batch(vec![fence(4, true)]));
        assert!(!image.brokers[&1].fenced, "stale epoch ignored");
        let image = image.apply(4, &batch(vec![register(6)]));
        assert!(image.brokers[&1].fenced);
        assert_eq!(image.brokers[&1].epoch, 6);
    }

    #[test]
    fn acls_producer_ids_and_broker_configs() {
        let binding = AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "t".into(),
            pattern_type: PatternType::Literal,
            principal: "User:a".into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: PermissionType::Allow,
        };
        let image = MetadataImage::default().apply(
            1,
            &batch(vec![
                MetadataRecord::AclsCreated {
                    bindings: vec![binding.clone(), binding.clone()],
                },
                MetadataRecord::ProducerIdBlock {
                    broker: 1,
                    first: 0,
                    size: 1000,
                },
                MetadataRecord::BrokerConfigs {
                    resource: String::new(),
                    configs: BTreeMap::from([("log.retention.ms".into(), "5".into())]),
                },
                MetadataRecord::ClusterId {
                    cluster_id: "c".into(),
                },
            ]),
        );
        assert_eq!(image.acls.len(), 1);
        assert_eq!(image.next_producer_id, 1000);
        assert_eq!(image.broker_configs[""]["log.retention.ms"], "5");
        assert_eq!(image.cluster_id, "c");
        let image = image.apply(
            2,
            &batch(vec![
                MetadataRecord::AclsDeleted {
                    bindings: vec![binding],
                },
                MetadataRecord::BrokerConfigs {
                    resource: String::new(),
                    configs: BTreeMap::new(),
                },
            ]),
        );
        assert!(image.acls.is_empty() && image.broker_configs.is_empty());
    }

    #[test]
    fn scram_credentials_are_added_replaced_and_removed_per_mechanism() {
        use crate::security::scram::{ScramCredential, ScramMechanism};
        let credential = |m, iterations| MetadataRecord::UserScramCredential {
            user: "alice".into(),
            credential: ScramCredential::from_password(m, "pw", iterations),
        };
        let image = MetadataImage::default().apply(
            1,
            &batch(vec![
                credential(ScramMechanism::Sha256, 4096),
                credential(ScramMechanism::Sha512, 4096),
                credential(ScramMechanism::Sha256, 8192),
            ]),
        );
        let alice = &image.scram_credentials["alice"];
        assert_eq!(alice.len(), 2);
        assert_eq!(alice[&ScramMechanism::Sha256].iterations, 8192);
        let remove = |m| MetadataRecord::RemoveUserScramCredential {
            user: "alice".into(),
            mechanism: m,
        };
        let image = image.apply(2, &batch(vec![remove(ScramMechanism::Sha256)]));
        assert_eq!(image.scram_credentials["alice"].len(), 1);
        let bytes = serde_json::to_vec(&image).unwrap();
        assert_eq!(
            serde_json::from_slice::<MetadataImage>(&bytes).unwrap(),
            image
        );
        let image = image.apply(3, &batch(vec![remove(ScramMechanism::Sha512)]));
        assert!(image.scram_credentials.is_empty());
    }

    #[test]
    fn the_image_round_trips_through_a_snapshot() {
        let image = MetadataImage::default().apply(7, &batch(topic_records("t", &[&[1], &[2]])));
        let bytes = serde_json::to_vec(&image).unwrap();
        let back: MetadataImage = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, image);
    }
}
