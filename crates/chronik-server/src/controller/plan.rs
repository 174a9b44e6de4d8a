//! The controller's decisions, without I/O: given the current image and a `ControllerCall`,
//! either refuse it (a Kafka error code and message) or return the records to commit and what
//! to answer. Run only on the Raft leader, one call at a time, against an image that has every
//! committed record applied (see `Controller::decide`).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::election::{broker_unfenced, elect_leader, remove_broker};
use super::placement::place;
use super::reassignment::{self, OngoingReassignment, ReassignmentResult};
use super::{ControllerError, CONSUMER_OFFSETS_TOPIC};
use crate::config::BrokerConfig;
use crate::metadata::broker_config::{effective_num_partitions, validate_dynamic};
use crate::metadata::client_quotas::{self, QuotaEntity, QuotaOps};
use crate::metadata::image::TopicImage;
use crate::metadata::records::{MetadataRecord, PartitionState};
use crate::metadata::topic_config::validate_all;
use crate::metadata::MetadataImage;
use crate::network::listener::Endpoint;
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::{AclBinding, AclBindingFilter};

/// Most partitions one topic may have: a request for 2^31 must be refused before anything is
/// allocated for it (placement builds one replica list per partition).
pub const MAX_PARTITIONS: i32 = 100_000;

/// Producer ids handed to a broker per request (KIP-730 uses 1000 too).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// A metadata change asked of the controller, locally or forwarded by another broker.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControllerCall {
    /// A broker process started; answered with its new epoch.
    RegisterBroker {
        id: i32,
        /// The inter-broker listener's address.
        host: String,
        port: i32,
        /// Every advertised listener.
        #[serde(default)]
        listeners: Vec<Endpoint>,
    },
    /// A broker is alive; answered with whether it is fenced.
    BrokerHeartbeat {
        id: i32,
        epoch: u64,
    },
    /// The session of a broker expired (decided by the controller itself).
    FenceBroker {
        id: i32,
        epoch: u64,
    },
    /// A broker is shutting down: fence it and move its leaderships away first; answered once
    /// committed.
    ShutdownBroker {
        id: i32,
        epoch: u64,
    },
    /// A partition leader proposes a new ISR (Kafka's AlterPartition, KIP-497); answered with
    /// the partition's committed state.
    AlterPartition {
        broker: i32,
        broker_epoch: u64,
        topic: String,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Elect the preferred leader (or, with `preferred` false, any replica if there is no
    /// leader: UNCLEAN) of the given partitions, or of all (`None`).
    ElectLeaders {
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Start (target replicas) or cancel (`None`) the reassignment of each partition
    /// (KIP-455); answered per partition. Without `allow_replication_factor_change` (KIP-860)
    /// a target must keep the partition's replica count.
    AlterPartitionReassignments {
        reassignments: Vec<(String, i32, Option<Vec<i32>>)>,
        allow_replication_factor_change: bool,
    },
    /// The reassignments under way, of the given partitions or of all; commits nothing.
    ListPartitionReassignments {
        partitions: Option<Vec<(String, i32)>>,
    },
    CreateTopic(NewTopic),
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
        /// Replicas of each new partition; `None` places them.
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    DeleteAcls {
        filters: Vec<AclBindingFilter>,
    },
    AllocateProducerIds {
        broker: i32,
    },
    /// A single-node data directory from before the quorum, as records (first start only).
    Import {
        records: Vec<MetadataRecord>,
    },
    /// The quorum as the leader sees it (DescribeQuorum); commits nothing.
    DescribeQuorum,
    /// Replaces the dynamic configs of one broker (`resource` = its id) or of the cluster
    /// default (`resource` = "").
    SetBrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    },
    /// Adds or replaces users' SCRAM credentials and removes others (KIP-554), validated by
    /// the handler; a removal of a credential that is already gone changes nothing.
    AlterScramCredentials {
        upsertions: Vec<(String, ScramCredential)>,
        deletions: Vec<(String, ScramMechanism)>,
    },
    /// Sets or removes (None) quota values of each entity (AlterClientQuotas, KIP-546);
    /// answered per entity: an entity with an invalid value changes nothing.
    AlterClientQuotas {
        entries: Vec<(QuotaEntity, QuotaOps)>,
        validate_only: bool,
    },
}

/// The metadata quorum as its leader reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuorumInfo {
    pub leader: u64,
    pub term: u64,
    /// Log end of the committed entries.
    pub high_watermark: i64,
    /// Every voter with its log end offset as the leader knows it (-1: unknown).
    pub voters: Vec<(u64, i64)>,
}

/// What a new topic should look like.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1 takes the broker default.
    pub partitions: i32,
    /// -1 takes the broker default.
    pub replication_factor: i16,
    /// Replicas per partition (partition i = entry i); when given, the two above are -1.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
    pub validate_only: bool,
}

/// The answer to an accepted call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Decided {
    Done,
    Topic(TopicImage),
    BrokerEpoch(u64),
    Fenced(bool),
    ProducerIds {
        first: i64,
        size: i64,
    },
    /// Per filter, the bindings it removed.
    AclsDeleted(Vec<Vec<AclBinding>>),
    Quorum(QuorumInfo),
    /// A partition's state as committed.
    Partition(PartitionState),
    /// Per partition asked for, the ElectLeaders error code (0: elected). With every partition
    /// asked for, those that needed no election are left out, as Kafka does.
    Elections(Vec<(String, i32, i16)>),
    /// Per partition asked for, in order: the AlterPartitionReassignments answer.
    Reassignments(Vec<ReassignmentResult>),
    OngoingReassignments(Vec<OngoingReassignment>),
    /// Per AlterClientQuotas entity, in order: None when accepted, else why not.
    ClientQuotas(Vec<Option<String>>),
}

pub type Plan = (Vec<MetadataRecord>, Decided);

fn error(e: ResponseError, message: impl Into<String>) -> ControllerError {
    ControllerError::new(e, message)
}

/// The broker's own topics are not the clients' to delete or repartition.
fn refuse_internal(name: &str, what: &str) -> Result<(), ControllerError> {
    if name == super::CONSUMER_OFFSETS_TOPIC {
        return Err(error(
            ResponseError::InvalidTopicException,
            format!("the internal topic {name} cannot be {what}"),
        ));
    }
    Ok(())
}

fn unknown_topic(name: &str) -> ControllerError {
    error(
        ResponseError::UnknownTopicOrPartition,
        format!("unknown topic {name:?}"),
    )
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
        Err(error(
            ResponseError::InvalidTopicException,
            format!("topic name {name:?} is illegal: up to 249 of [a-zA-Z0-9._-], not . or .."),
        ))
    }
}

/// Decides `call` against `image`. Every partition change it makes completes a reassignment
/// its new ISR allows, in the same record (`reassignment::complete_in_batch`).
pub fn plan(
    config: &BrokerConfig,
    image: &MetadataImage,
    call: ControllerCall,
) -> Result<Plan, ControllerError> {
    let (mut records, mut decided) = decide(config, image, call)?;
    if reassignment::complete_in_batch(image, &mut records) {
        if let (Decided::Partition(answer), [MetadataRecord::Partition { state, .. }]) =
            (&mut decided, records.as_slice())
        {
            answer.clone_from(state);
        }
    }
    Ok((records, decided))
}

fn decide(
    config: &BrokerConfig,
    image: &MetadataImage,
    call: ControllerCall,
) -> Result<Plan, ControllerError> {
    match call {
        ControllerCall::RegisterBroker {
            id,
            host,
            port,
            listeners,
        } => {
            // Larger than any epoch this id had, and than any log index so far.
            let epoch = image
                .brokers
                .get(&id)
                .map_or(0, |b| b.epoch)
                .max(image.applied_index)
                + 1;
            let mut records = vec![MetadataRecord::RegisterBroker {
                id,
                epoch,
                host,
                port,
                listeners,
            }];
            // A new incarnation may have lost what the old one had (a wiped disk, a kill -9
            // before a flush): it leads nothing and rejoins ISRs only when a leader adds it
            // back (KAFKA-14139).
            if image.brokers.contains_key(&id) {
                records.extend(remove_broker(config, image, id));
            }
            Ok((records, Decided::BrokerEpoch(epoch)))
        }
        ControllerCall::BrokerHeartbeat { id, epoch } => match image.brokers.get(&id) {
            Some(b) if b.epoch == epoch && b.fenced => {
                let mut records = vec![MetadataRecord::BrokerFencing {
                    id,
                    epoch,
                    fenced: false,
                }];
                records.extend(broker_unfenced(config, image, id));
                Ok((records, Decided::Fenced(false)))
            }
            Some(b) if b.epoch == epoch => Ok((vec![], Decided::Fenced(false))),
            _ => Err(error(
                ResponseError::StaleBrokerEpoch,
                format!("broker {id} epoch {epoch} is not registered"),
            )),
        },
        // A broker whose session expired after a controlled shutdown is merely fenced now.
        ControllerCall::FenceBroker { id, epoch } => match image.brokers.get(&id) {
            Some(b) if b.epoch == epoch && (!b.fenced || b.in_controlled_shutdown) => {
                let mut records = fence(config, image, id, epoch);
                if b.in_controlled_shutdown {
                    records.push(MetadataRecord::ControlledShutdown {
                        id,
                        epoch,
                        in_progress: false,
                    });
                }
                Ok((records, Decided::Fenced(true)))
            }
            _ => Ok((vec![], Decided::Fenced(true))),
        },
        ControllerCall::ShutdownBroker { id, epoch } => match image.brokers.get(&id) {
            Some(b) if b.epoch == epoch => {
                let mut records = fence(config, image, id, epoch);
                if !b.in_controlled_shutdown {
                    records.push(MetadataRecord::ControlledShutdown {
                        id,
                        epoch,
                        in_progress: true,
                    });
                }
                Ok((records, Decided::Fenced(true)))
            }
            _ => Err(error(
                ResponseError::StaleBrokerEpoch,
                format!("broker {id} epoch {epoch} is not registered"),
            )),
        },
        ControllerCall::AlterPartition {
            broker,
            broker_epoch,
            topic,
            partition,
            leader_epoch,
            partition_epoch,
            isr,
        } => alter_partition(
            image,
            (broker, broker_epoch),
            &topic,
            partition,
            (leader_epoch, partition_epoch),
            isr,
        ),
        ControllerCall::ElectLeaders {
            preferred,
            partitions,
        } => Ok(elect_leaders(image, preferred, partitions)),
        ControllerCall::AlterPartitionReassignments {
            reassignments,
            allow_replication_factor_change,
        } => Ok(reassignment::alter(
            image,
            reassignments,
            allow_replication_factor_change,
        )),
        ControllerCall::ListPartitionReassignments { partitions } => Ok((
            vec![],
            Decided::OngoingReassignments(reassignment::list(image, partitions)),
        )),
        ControllerCall::CreateTopic(new) => create_topic(config, image, new),
        ControllerCall::DeleteTopic { name } => {
            let topic = image.topic(&name).ok_or_else(|| unknown_topic(&name))?;
            refuse_internal(&name, "deleted")?;
            Ok((
                vec![MetadataRecord::RemoveTopic { name }],
                Decided::Topic((**topic).clone()),
            ))
        }
        ControllerCall::CreatePartitions {
            name,
            count,
            assignments,
            validate_only,
        } => create_partitions(image, &name, count, assignments, validate_only),
        ControllerCall::SetTopicConfigs {
            name,
            configs,
            validate_only,
        } => {
            if image.topic(&name).is_none() {
                return Err(unknown_topic(&name));
            }
            validate_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .map_err(|e| error(ResponseError::InvalidConfig, e.0))?;
            if validate_only {
                return Ok((vec![], Decided::Done));
            }
            Ok((
                vec![MetadataRecord::TopicConfigs { name, configs }],
                Decided::Done,
            ))
        }
        ControllerCall::CreateAcls { bindings } => {
            let new: Vec<AclBinding> = bindings
                .into_iter()
                .filter(|b| !image.acls.contains(b))
                .collect();
            let records = if new.is_empty() {
                vec![]
            } else {
                vec![MetadataRecord::AclsCreated { bindings: new }]
            };
            Ok((records, Decided::Done))
        }
        ControllerCall::DeleteAcls { filters } => {
            let matched: Vec<Vec<AclBinding>> = filters
                .iter()
                .map(|f| {
                    image
                        .acls
                        .iter()
                        .filter(|b| f.matches(b))
                        .cloned()
                        .collect()
                })
                .collect();
            let mut gone: Vec<AclBinding> = matched.iter().flatten().cloned().collect();
            gone.sort();
            gone.dedup();
            let records = if gone.is_empty() {
                vec![]
            } else {
                vec![MetadataRecord::AclsDeleted { bindings: gone }]
            };
            Ok((records, Decided::AclsDeleted(matched)))
        }
        ControllerCall::AllocateProducerIds { broker } => {
            let first = image.next_producer_id;
            Ok((
                vec![MetadataRecord::ProducerIdBlock {
                    broker,
                    first,
                    size: PRODUCER_ID_BLOCK,
                }],
                Decided::ProducerIds {
                    first,
                    size: PRODUCER_ID_BLOCK,
                },
            ))
        }
        ControllerCall::SetBrokerConfigs {
            resource,
            configs,
            validate_only,
        } => {
            if !resource.is_empty() && resource.parse::<i32>().is_err() {
                return Err(error(
                    ResponseError::InvalidRequest,
                    format!("broker resource {resource:?} is neither \"\" nor a broker id"),
                ));
            }
            for (name, value) in &configs {
                validate_dynamic(name, value)
                    .map_err(|e| error(ResponseError::InvalidConfig, e.0))?;
            }
            if validate_only {
                return Ok((vec![], Decided::Done));
            }
            Ok((
                vec![MetadataRecord::BrokerConfigs { resource, configs }],
                Decided::Done,
            ))
        }
        ControllerCall::AlterClientQuotas {
            entries,
            validate_only,
        } => {
            let mut records = Vec::new();
            let mut answers = Vec::new();
            for (entity, ops) in entries {
                let refused = ops.iter().find_map(|(key, value)| {
                    value.and_then(|v| client_quotas::validate(key, v).err())
                });
                if refused.is_none() && !validate_only {
                    records.extend(ops.into_iter().map(|(key, value)| {
                        MetadataRecord::ClientQuota {
                            entity: entity.clone(),
                            key,
                            value,
                        }
                    }));
                }
                answers.push(refused);
            }
            Ok((records, Decided::ClientQuotas(answers)))
        }
        // Answered by `Controller::decide` from Raft's metrics, never planned.
        ControllerCall::DescribeQuorum => Ok((vec![], Decided::Done)),
        ControllerCall::AlterScramCredentials {
            upsertions,
            deletions,
        } => {
            let removals = deletions
                .into_iter()
                .filter(|(user, mechanism)| {
                    image
                        .scram_credentials
                        .get(user)
                        .is_some_and(|c| c.contains_key(mechanism))
                })
                .map(
                    |(user, mechanism)| MetadataRecord::RemoveUserScramCredential {
                        user,
                        mechanism,
                    },
                );
            let additions = upsertions
                .into_iter()
                .map(|(user, credential)| MetadataRecord::UserScramCredential { user, credential });
            Ok((removals.chain(additions).collect(), Decided::Done))
        }
        ControllerCall::Import { records } => {
            if !image.topics.is_empty() || !image.acls.is_empty() || image.next_producer_id > 0 {
                // Imported already (a crash after the commit, before the old files were moved).
                return Ok((vec![], Decided::Done));
            }
            Ok((records, Decided::Done))
        }
    }
}

/// Fences broker `id` (if it is not yet) and moves its leaderships and ISR places away.
fn fence(config: &BrokerConfig, image: &MetadataImage, id: i32, epoch: u64) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    if image.brokers.get(&id).is_some_and(|b| !b.fenced) {
        records.push(MetadataRecord::BrokerFencing {
            id,
            epoch,
            fenced: true,
        });
    }
    records.extend(remove_broker(config, image, id));
    records
}

/// A leader's ISR proposal, checked in Kafka's order: the partition, the broker's epoch, its
/// leadership, the leader and partition epochs (a proposal made on an outdated state is
/// refused: KIP-497), then the members.
fn alter_partition(
    image: &MetadataImage,
    (broker, broker_epoch): (i32, u64),
    topic: &str,
    partition: i32,
    (leader_epoch, partition_epoch): (i32, i32),
    isr: Vec<i32>,
) -> Result<Plan, ControllerError> {
    let state = image.partition(topic, partition).ok_or_else(|| {
        error(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown partition {topic}-{partition}"),
        )
    })?;
    let live = |b: i32| image.brokers.get(&b).is_some_and(|r| !r.fenced);
    if !image
        .brokers
        .get(&broker)
        .is_some_and(|b| b.epoch == broker_epoch && !b.fenced)
    {
        return Err(error(
            ResponseError::StaleBrokerEpoch,
            format!("broker {broker} epoch {broker_epoch} is not registered and unfenced"),
        ));
    }
    if state.leader != broker {
        return Err(error(
            ResponseError::NotLeaderOrFollower,
            format!(
                "broker {broker} does not lead {topic}-{partition} (leader {})",
                state.leader
            ),
        ));
    }
    if leader_epoch != state.leader_epoch {
        return Err(error(
            ResponseError::FencedLeaderEpoch,
            format!(
                "leader epoch {leader_epoch} of {topic}-{partition} is not the current {}",
                state.leader_epoch
            ),
        ));
    }
    if partition_epoch != state.partition_epoch {
        return Err(error(
            ResponseError::InvalidUpdateVersion,
            format!(
                "partition epoch {partition_epoch} of {topic}-{partition} is not the current {}",
                state.partition_epoch
            ),
        ));
    }
    if let Some(b) = isr
        .iter()
        .find(|b| !state.replicas.contains(b) || !live(**b))
    {
        return Err(error(
            ResponseError::IneligibleReplica,
            format!("broker {b} is not a live replica of {topic}-{partition}"),
        ));
    }
    let members: BTreeSet<i32> = isr.iter().copied().collect();
    if !members.contains(&broker) || members.len() != isr.len() {
        return Err(error(
            ResponseError::InvalidRequest,
            format!("the ISR {isr:?} must hold the leader {broker}, once each"),
        ));
    }
    if members == state.isr.iter().copied().collect() {
        return Ok((vec![], Decided::Partition(state.clone())));
    }
    let new = PartitionState {
        isr,
        partition_epoch: state.partition_epoch + 1,
        ..state.clone()
    };
    Ok((
        vec![MetadataRecord::Partition {
            topic: topic.to_string(),
            partition,
            state: new.clone(),
        }],
        Decided::Partition(new),
    ))
}

/// ElectLeaders over the given partitions (each once), or over every partition.
fn elect_leaders(
    image: &MetadataImage,
    preferred: bool,
    partitions: Option<Vec<(String, i32)>>,
) -> Plan {
    let all = partitions.is_none();
    let partitions: BTreeSet<(String, i32)> = partitions.map_or_else(
        || {
            image
                .topics
                .values()
                .flat_map(|t| (0..t.partition_count()).map(|p| (t.name.clone(), p)))
                .collect()
        },
        |list| list.into_iter().collect(),
    );
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (topic, partition) in partitions {
        match elect_leader(image, &topic, partition, preferred) {
            Ok(state) => {
                records.push(MetadataRecord::Partition {
                    topic: topic.clone(),
                    partition,
                    state,
                });
                results.push((topic, partition, 0));
            }
            Err(ResponseError::ElectionNotNeeded) if all => {}
            Err(e) => results.push((topic, partition, e.code())),
        }
    }
    (records, Decided::Elections(results))
}

fn create_topic(
    config: &BrokerConfig,
    image: &MetadataImage,
    new: NewTopic,
) -> Result<Plan, ControllerError> {
    validate_topic_name(&new.name)?;
    if image.topic(&new.name).is_some() {
        return Err(error(
            ResponseError::TopicAlreadyExists,
            format!("topic {:?} already exists", new.name),
        ));
    }
    let replicas = match &new.assignments {
        Some(assignments) => {
            check_assignments(image, assignments, None)?;
            assignments.clone()
        }
        None => {
            let partitions = match new.partitions {
                -1 => effective_num_partitions(config, image, config.node_id),
                n if (1..=MAX_PARTITIONS).contains(&n) => n,
                n => {
                    return Err(error(
                        ResponseError::InvalidPartitions,
                        format!(
                            "number of partitions must be between 1 and {MAX_PARTITIONS}, not {n}"
                        ),
                    ))
                }
            };
            let rf = match new.replication_factor {
                -1 => config.default_replication_factor,
                n => n,
            };
            let live: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
            if rf < 1 || rf as usize > live.len() {
                return Err(error(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "replication factor {rf} is not between 1 and the {} live broker(s)",
                        live.len()
                    ),
                ));
            }
            place(image, &live, partitions, rf as usize)
        }
    };
    validate_all(new.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| error(ResponseError::InvalidConfig, e.0))?;
    let topic = TopicImage {
        name: new.name.clone(),
        id: Uuid::new_v4(),
        internal: new.name == CONSUMER_OFFSETS_TOPIC,
        configs: new.configs,
        partitions: replicas.into_iter().map(PartitionState::new).collect(),
    };
    if new.validate_only {
        return Ok((vec![], Decided::Topic(topic)));
    }
    Ok((topic_records(&topic), Decided::Topic(topic)))
}

/// The records that create `topic` as it is.
pub fn topic_records(topic: &TopicImage) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic {
        name: topic.name.clone(),
        id: topic.id,
        internal: topic.internal,
        configs: topic.configs.clone(),
    }];
    for (i, state) in topic.partitions.iter().enumerate() {
        records.push(MetadataRecord::Partition {
            topic: topic.name.clone(),
            partition: i as i32,
            state: state.clone(),
        });
    }
    records
}

fn create_partitions(
    image: &MetadataImage,
    name: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<Plan, ControllerError> {
    let topic = image.topic(name).ok_or_else(|| unknown_topic(name))?;
    // Groups map to offsets partitions by hash: another count would lose every group's offsets.
    refuse_internal(name, "given more partitions")?;
    let current = topic.partition_count();
    if count <= current || count > MAX_PARTITIONS {
        return Err(error(
            ResponseError::InvalidPartitions,
            format!(
                "topic {name:?} has {current} partitions; the new count {count} must be larger, \
                 and at most {MAX_PARTITIONS}"
            ),
        ));
    }
    let rf = topic.replication_factor().max(1) as usize;
    let new_replicas = match assignments {
        Some(assignments) => {
            if assignments.len() as i32 != count - current {
                return Err(error(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "{} assignments given for {} new partitions",
                        assignments.len(),
                        count - current
                    ),
                ));
            }
            check_assignments(image, &assignments, Some(rf))?;
            assignments
        }
        None => {
            let live: Vec<i32> = image.live_brokers().map(|b| b.id).collect();
            if rf > live.len() {
                return Err(error(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "replication factor {rf} exceeds the {} live broker(s)",
                        live.len()
                    ),
                ));
            }
            place(image, &live, count - current, rf)
        }
    };
    if validate_only {
        return Ok((vec![], Decided::Done));
    }
    let records = new_replicas
        .into_iter()
        .enumerate()
        .map(|(i, replicas)| MetadataRecord::Partition {
            topic: name.to_string(),
            partition: current + i as i32,
            state: PartitionState::new(replicas),
        })
        .collect();
    Ok((records, Decided::Done))
}

/// Explicit replica lists: none empty, no repeats, all the same length (`rf` when given),
/// naming registered brokers only.
fn check_assignments(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
    rf: Option<usize>,
) -> Result<(), ControllerError> {
    let invalid = |message: String| error(ResponseError::InvalidReplicaAssignment, message);
    let Some(first) = assignments.first() else {
        return Err(invalid("no partitions assigned".into()));
    };
    let rf = rf.unwrap_or(first.len());
    for (partition, replicas) in assignments.iter().enumerate() {
        let mut unique = replicas.clone();
        unique.sort_unstable();
        unique.dedup();
        if replicas.is_empty() || unique.len() != replicas.len() {
            return Err(invalid(format!(
                "partition {partition}: empty or repeated replicas"
            )));
        }
        if replicas.len() != rf {
            return Err(invalid(format!(
                "every partition needs {rf} replica(s), partition {partition} has {}",
                replicas.len()
            )));
        }
        if let Some(unknown) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
            return Err(invalid(format!(
                "partition {partition}: unknown broker {unknown}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::MetadataBatch;

    fn cluster(brokers: &[i32]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in brokers {
            let records = vec![
                MetadataRecord::RegisterBroker {
                    id: *id,
                    epoch: 1,
                    host: "127.0.0.1".into(),
                    port: 9092 + id,
                    listeners: Vec::new(),
                },
                MetadataRecord::BrokerFencing {
                    id: *id,
                    epoch: 1,
                    fenced: false,
                },
            ];
            image = image.apply(image.applied_index + 1, &MetadataBatch::new(records));
        }
        image
    }

    fn run(image: &mut MetadataImage, call: ControllerCall) -> Result<Decided, ControllerError> {
        let (records, decided) = plan(&BrokerConfig::default(), image, call)?;
        *image = image.apply(image.applied_index + 1, &MetadataBatch::new(records));
        Ok(decided)
    }

    #[test]
    fn client_quotas_are_set_per_entity_and_a_bad_value_changes_nothing_of_its_entity() {
        use crate::metadata::client_quotas::{CLIENT_ID, PRODUCER_BYTE_RATE, USER};
        let mut image = cluster(&[1]);
        let slow = QuotaEntity::from_components([(CLIENT_ID, Some("slow"))]).unwrap();
        let user = QuotaEntity::from_components([(USER, None)]).unwrap();
        let call = |validate_only| ControllerCall::AlterClientQuotas {
            entries: vec![
                (
                    slow.clone(),
                    vec![(PRODUCER_BYTE_RATE.into(), Some(1024.0))],
                ),
                (
                    user.clone(),
                    vec![
                        (PRODUCER_BYTE_RATE.into(), Some(10.0)),
                        ("no_such_quota".into(), Some(1.0)),
                    ],
                ),
            ],
            validate_only,
        };
        let Decided::ClientQuotas(answers) = run(&mut image, call(true)).unwrap() else {
            panic!("not a quota answer");
        };
        assert!(answers[0].is_none() && answers[1].is_some());
        assert!(
            image.client_quotas.is_empty(),
            "validate_only changed nothing"
        );
        run(&mut image, call(false)).unwrap();
        assert_eq!(
            image.client_quotas.resolve(PRODUCER_BYTE_RATE, "u", "slow"),
            Some((1024.0, String::new(), "slow".into()))
        );
        assert_eq!(
            image
                .client_quotas
                .resolve(PRODUCER_BYTE_RATE, "u", "other"),
            None
        );
        let remove = ControllerCall::AlterClientQuotas {
            entries: vec![(slow, vec![(PRODUCER_BYTE_RATE.into(), None)])],
            validate_only: false,
        };
        run(&mut image, remove).unwrap();
        assert!(image.client_quotas.is_empty());
    }

    fn new_topic(name: &str, partitions: i32, rf: i16) -> ControllerCall {
        ControllerCall::CreateTopic(NewTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            assignments: None,
            configs: BTreeMap::new(),
            validate_only: false,
        })
    }

    #[test]
    fn create_topic_places_over_live_brokers_and_refuses_too_many_replicas() {
        let mut image = cluster(&[1, 2, 3]);
        let Decided::Topic(t) = run(&mut image, new_topic("t", 6, 2)).unwrap() else {
            panic!()
        };
        assert_eq!(image.topic("t").unwrap().id, t.id);
        assert_eq!(t.partitions.len(), 6);
        let e = run(&mut image, new_topic("u", 1, 4)).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidReplicationFactor.code());
        let e = run(&mut image, new_topic("t", 1, 1)).unwrap_err();
        assert_eq!(e.code, ResponseError::TopicAlreadyExists.code());
        let e = run(&mut image, new_topic("huge", i32::MAX, 1)).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidPartitions.code());
        run(&mut image, ControllerCall::FenceBroker { id: 3, epoch: 1 }).unwrap();
        let e = run(&mut image, new_topic("v", 1, 3)).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidReplicationFactor.code());
        run(&mut image, new_topic("w", 4, 2)).unwrap();
        assert!(image
            .topic("w")
            .unwrap()
            .partitions
            .iter()
            .all(|p| !p.replicas.contains(&3)));
    }

    #[test]
    fn explicit_assignments_are_validated_and_honoured() {
        let mut image = cluster(&[1, 2]);
        let assigned = |assignments: Vec<Vec<i32>>| {
            ControllerCall::CreateTopic(NewTopic {
                name: "a".into(),
                partitions: -1,
                replication_factor: -1,
                assignments: Some(assignments),
                configs: BTreeMap::new(),
                validate_only: false,
            })
        };
        for bad in [
            vec![vec![1, 1]],
            vec![vec![1], vec![1, 2]],
            vec![vec![9]],
            vec![vec![]],
        ] {
            let e = run(&mut image, assigned(bad)).unwrap_err();
            assert_eq!(e.code, ResponseError::InvalidReplicaAssignment.code());
        }
        run(&mut image, assigned(vec![vec![2, 1], vec![1, 2]])).unwrap();
        assert_eq!(image.partition("a", 0).unwrap().leader, 2);
        let more = ControllerCall::CreatePartitions {
            name: "a".into(),
            count: 3,
            assignments: Some(vec![vec![2]]),
            validate_only: false,
        };
        let e = run(&mut image, more).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidReplicaAssignment.code());
        let more = ControllerCall::CreatePartitions {
            name: "a".into(),
            count: 3,
            assignments: None,
            validate_only: false,
        };
        run(&mut image, more).unwrap();
        assert_eq!(image.topic("a").unwrap().partition_count(), 3);
        assert_eq!(image.partition("a", 2).unwrap().replicas.len(), 2);
    }

    #[test]
    fn registration_epochs_grow_and_heartbeats_unfence_only_the_current_epoch() {
        let mut image = MetadataImage::default();
        let register = || ControllerCall::RegisterBroker {
            id: 1,
            host: "h".into(),
            port: 1,
            listeners: Vec::new(),
        };
        let Decided::BrokerEpoch(first) = run(&mut image, register()).unwrap() else {
            panic!()
        };
        let Decided::BrokerEpoch(second) = run(&mut image, register()).unwrap() else {
            panic!()
        };
        assert!(second > first);
        let stale = ControllerCall::BrokerHeartbeat {
            id: 1,
            epoch: first,
        };
        assert_eq!(
            run(&mut image, stale).unwrap_err().code,
            ResponseError::StaleBrokerEpoch.code()
        );
        assert!(image.brokers[&1].fenced);
        run(
            &mut image,
            ControllerCall::BrokerHeartbeat {
                id: 1,
                epoch: second,
            },
        )
        .unwrap();
        assert!(!image.brokers[&1].fenced);
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut image = MetadataImage::default();
        let Decided::ProducerIds { first: a, size } = run(
            &mut image,
            ControllerCall::AllocateProducerIds { broker: 1 },
        )
        .unwrap() else {
            panic!()
        };
        let Decided::ProducerIds { first: b, .. } = run(
            &mut image,
            ControllerCall::AllocateProducerIds { broker: 2 },
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(b, a + size);
    }

    /// Topic "t" with the given replica lists on brokers 1..=3 (all unfenced, epoch 1).
    fn with_topic(assignments: Vec<Vec<i32>>) -> MetadataImage {
        let mut image = cluster(&[1, 2, 3]);
        let call = ControllerCall::CreateTopic(NewTopic {
            name: "t".into(),
            partitions: -1,
            replication_factor: -1,
            assignments: Some(assignments),
            configs: BTreeMap::new(),
            validate_only: false,
        });
        run(&mut image, call).unwrap();
        image
    }

    fn alter(image: &MetadataImage, broker: i32, isr: Vec<i32>) -> ControllerCall {
        alter_partition(image, 0, broker, isr)
    }

    /// AlterPartition as the broker would send it from `image`.
    fn alter_partition(
        image: &MetadataImage,
        partition: i32,
        broker: i32,
        isr: Vec<i32>,
    ) -> ControllerCall {
        let state = image.partition("t", partition).unwrap();
        ControllerCall::AlterPartition {
            broker,
            broker_epoch: image.brokers[&broker].epoch,
            topic: "t".into(),
            partition,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr,
        }
    }

    fn code(result: Result<Decided, ControllerError>) -> i16 {
        result.map_or_else(|e| e.code, |_| 0)
    }

    #[test]
    fn alter_partition_commits_a_valid_isr_with_a_new_partition_epoch() {
        let mut image = with_topic(vec![vec![1, 2, 3]]);
        let call = alter(&image, 1, vec![1, 3]);
        let Decided::Partition(state) = run(&mut image, call).unwrap() else {
            panic!()
        };
        assert_eq!(image.partition("t", 0).unwrap(), &state);
        assert_eq!((state.isr.clone(), state.partition_epoch), (vec![1, 3], 1));
        assert_eq!((state.leader, state.leader_epoch), (1, 0));
        // The same ISR again (in any order) changes nothing.
        let index = image.applied_index;
        let (records, decided) = plan(
            &BrokerConfig::default(),
            &image,
            alter(&image, 1, vec![3, 1]),
        )
        .unwrap();
        assert!(records.is_empty() && matches!(decided, Decided::Partition(s) if s == state));
        assert_eq!(image.applied_index, index);
    }

    #[test]
    fn alter_partition_refuses_in_kafkas_order() {
        let mut image = with_topic(vec![vec![1, 2, 3]]);
        let call = |broker, broker_epoch, partition, (leader_epoch, partition_epoch), isr| {
            ControllerCall::AlterPartition {
                broker,
                broker_epoch,
                topic: "t".into(),
                partition,
                leader_epoch,
                partition_epoch,
                isr,
            }
        };
        let cases = [
            (
                call(1, 1, 5, (0, 0), vec![1]),
                ResponseError::UnknownTopicOrPartition,
            ),
            (
                call(1, 99, 0, (0, 0), vec![1]),
                ResponseError::StaleBrokerEpoch,
            ),
            (
                call(2, 1, 0, (0, 0), vec![2]),
                ResponseError::NotLeaderOrFollower,
            ),
            (
                call(1, 1, 0, (1, 0), vec![1]),
                ResponseError::FencedLeaderEpoch,
            ),
            (
                call(1, 1, 0, (0, -1), vec![1]),
                ResponseError::InvalidUpdateVersion,
            ),
            (
                call(1, 1, 0, (0, 0), vec![1, 4]),
                ResponseError::IneligibleReplica,
            ),
            (
                call(1, 1, 0, (0, 0), vec![2, 3]),
                ResponseError::InvalidRequest,
            ),
            (call(1, 1, 0, (0, 0), vec![]), ResponseError::InvalidRequest),
            (
                call(1, 1, 0, (0, 0), vec![1, 1]),
                ResponseError::InvalidRequest,
            ),
        ];
        for (call, expected) in cases {
            assert_eq!(
                code(run(&mut image, call.clone())),
                expected.code(),
                "{call:?}"
            );
        }
        // A fenced member is ineligible; a fenced leader's epoch is stale.
        let stale = alter(&image, 1, vec![1, 2]);
        run(&mut image, ControllerCall::FenceBroker { id: 3, epoch: 1 }).unwrap();
        let call = alter(&image, 1, vec![1, 3]);
        assert_eq!(
            code(run(&mut image, call)),
            ResponseError::IneligibleReplica.code()
        );
        // Fencing 3 took it out of the ISR: the partition epoch moved.
        assert_eq!(
            code(run(&mut image, stale)),
            ResponseError::InvalidUpdateVersion.code()
        );
        let leader_view = alter(&image, 1, vec![1]);
        run(&mut image, ControllerCall::FenceBroker { id: 1, epoch: 1 }).unwrap();
        assert_eq!(
            code(run(&mut image, leader_view)),
            ResponseError::StaleBrokerEpoch.code()
        );
    }

    #[test]
    fn fencing_moves_leadership_and_unfencing_recovers_a_leaderless_partition() {
        let mut image = with_topic(vec![vec![1, 2], vec![2, 1], vec![3, 1]]);
        run(&mut image, ControllerCall::FenceBroker { id: 1, epoch: 1 }).unwrap();
        let p0 = image.partition("t", 0).unwrap().clone();
        assert_eq!(
            (p0.leader, p0.isr.clone(), p0.leader_epoch),
            (2, vec![2], 1)
        );
        let p1 = image.partition("t", 1).unwrap().clone();
        assert_eq!(
            (p1.leader, p1.isr.clone(), p1.leader_epoch),
            (2, vec![2], 0)
        );
        assert_eq!(p1.partition_epoch, 1);
        run(&mut image, ControllerCall::FenceBroker { id: 3, epoch: 1 }).unwrap();
        let p2 = image.partition("t", 2).unwrap().clone();
        assert_eq!(
            (p2.leader, p2.isr.clone(), p2.leader_epoch),
            (-1, vec![3], 1)
        );
        let heartbeat = |id| ControllerCall::BrokerHeartbeat { id, epoch: 1 };
        run(&mut image, heartbeat(3)).unwrap();
        let p2 = image.partition("t", 2).unwrap().clone();
        assert_eq!((p2.leader, p2.leader_epoch, p2.partition_epoch), (3, 2, 3));
        // Broker 1 comes back live but stays out of the ISR until its leader adds it.
        run(&mut image, heartbeat(1)).unwrap();
        assert_eq!(image.partition("t", 0).unwrap(), &p0);
    }

    #[test]
    fn controlled_shutdown_fences_and_moves_leaders_away() {
        let mut image = with_topic(vec![vec![1, 2], vec![1, 3]]);
        let shrink = alter_partition(&image, 1, 1, vec![1]);
        run(&mut image, shrink).unwrap();
        let e = run(
            &mut image,
            ControllerCall::ShutdownBroker { id: 1, epoch: 7 },
        )
        .unwrap_err();
        assert_eq!(e.code, ResponseError::StaleBrokerEpoch.code());
        run(
            &mut image,
            ControllerCall::ShutdownBroker { id: 1, epoch: 1 },
        )
        .unwrap();
        assert!(image.brokers[&1].fenced);
        assert_eq!(image.partition("t", 0).unwrap().leader, 2);
        let p1 = image.partition("t", 1).unwrap();
        assert_eq!((p1.leader, p1.isr.clone()), (-1, vec![1]));
        // Asked again (a retry after a lost answer): nothing more to do.
        let (records, _) = plan(
            &BrokerConfig::default(),
            &image,
            ControllerCall::ShutdownBroker { id: 1, epoch: 1 },
        )
        .unwrap();
        assert!(records.is_empty());
        assert!(
            image.brokers[&1].in_controlled_shutdown,
            "shown as shutting down"
        );
        // Its session then ends: merely fenced. A new registration starts afresh.
        run(&mut image, ControllerCall::FenceBroker { id: 1, epoch: 1 }).unwrap();
        assert!(image.brokers[&1].fenced && !image.brokers[&1].in_controlled_shutdown);
        let register = ControllerCall::RegisterBroker {
            id: 1,
            host: "h".into(),
            port: 1,
            listeners: Vec::new(),
        };
        run(&mut image, register).unwrap();
        assert!(!image.brokers[&1].in_controlled_shutdown);
    }

    #[test]
    fn a_leader_that_restarts_before_its_session_expires_loses_leadership_and_isr_places() {
        let mut image = with_topic(vec![vec![1, 2], vec![2, 1]]);
        let register = ControllerCall::RegisterBroker {
            id: 1,
            host: "h".into(),
            port: 1,
            listeners: Vec::new(),
        };
        let Decided::BrokerEpoch(epoch) = run(&mut image, register).unwrap() else {
            panic!()
        };
        let p0 = image.partition("t", 0).unwrap().clone();
        assert_eq!(
            (p0.leader, p0.isr.clone(), p0.leader_epoch),
            (2, vec![2], 1)
        );
        assert_eq!(image.partition("t", 1).unwrap().isr, vec![2]);
        run(&mut image, ControllerCall::BrokerHeartbeat { id: 1, epoch }).unwrap();
        assert_eq!(
            image.partition("t", 0).unwrap(),
            &p0,
            "rejoins only by AlterPartition"
        );
    }

    #[test]
    fn elect_leaders_answers_per_partition_and_omits_unneeded_ones_when_asked_for_all() {
        let mut image = with_topic(vec![vec![1, 2], vec![2, 1], vec![3, 1]]);
        run(&mut image, ControllerCall::FenceBroker { id: 1, epoch: 1 }).unwrap();
        run(&mut image, ControllerCall::FenceBroker { id: 3, epoch: 1 }).unwrap();
        run(
            &mut image,
            ControllerCall::BrokerHeartbeat { id: 1, epoch: 1 },
        )
        .unwrap();
        let add_back = ControllerCall::AlterPartition {
            broker: 2,
            broker_epoch: 1,
            topic: "t".into(),
            partition: 0,
            leader_epoch: 1,
            partition_epoch: 1,
            isr: vec![2, 1],
        };
        run(&mut image, add_back).unwrap();
        let elect = |partitions| ControllerCall::ElectLeaders {
            preferred: true,
            partitions,
        };
        let asked = Some(vec![("t".into(), 1), ("t".into(), 2), ("u".into(), 0)]);
        let Decided::Elections(results) = run(&mut image, elect(asked)).unwrap() else {
            panic!()
        };
        assert_eq!(
            results,
            vec![
                ("t".into(), 1, ResponseError::ElectionNotNeeded.code()),
                (
                    "t".into(),
                    2,
                    ResponseError::PreferredLeaderNotAvailable.code()
                ),
                ("u".into(), 0, ResponseError::UnknownTopicOrPartition.code()),
            ]
        );
        let Decided::Elections(results) = run(&mut image, elect(None)).unwrap() else {
            panic!()
        };
        assert_eq!(
            results,
            vec![
                ("t".into(), 0, 0),
                (
                    "t".into(),
                    2,
                    ResponseError::PreferredLeaderNotAvailable.code()
                ),
            ]
        );
        assert_eq!(image.partition("t", 0).unwrap().leader, 1);
        let unclean = ControllerCall::ElectLeaders {
            preferred: false,
            partitions: Some(vec![("t".into(), 2)]),
        };
        let Decided::Elections(results) = run(&mut image, unclean).unwrap() else {
            panic!()
        };
        assert_eq!(results, vec![("t".into(), 2, 0)]);
        let p2 = image.partition("t", 2).unwrap();
        assert_eq!((p2.leader, p2.isr.clone()), (1, vec![1]));
    }
}
