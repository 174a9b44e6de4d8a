//! Metadata records: every change to cluster metadata is one of these, committed to the Raft
//! metadata log and folded into the `MetadataImage` by `MetadataImage::apply`, in log order, on
//! every node. A record says what *is* now (a replacement), never "add one more", so applying a
//! record twice gives the same image.
//!
//! A Raft entry carries a `MetadataBatch`: the records of one controller decision, applied
//! together, so no node ever publishes an image with half a decision in it (a topic without its
//! partitions). Only the controller (the Raft leader) builds batches; see `controller.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::client_quotas::QuotaEntity;
use crate::network::listener::Endpoint;
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::AclBinding;

/// One change to cluster metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster id, written once by the first controller.
    ClusterId { cluster_id: String },
    /// A broker process started: its listener and a new epoch (the log index of this record's
    /// batch is not known when it is built, so the controller hands out `epoch` itself).
    /// A registration starts fenced; a heartbeat unfences it.
    RegisterBroker {
        id: i32,
        epoch: u64,
        host: String,
        port: i32,
        /// Every advertised listener (records from before listeners had only host and port,
        /// the PLAINTEXT listener's).
        #[serde(default)]
        listeners: Vec<Endpoint>,
    },
    /// The controller stopped hearing from the broker (`fenced`) or heard from it again.
    BrokerFencing { id: i32, epoch: u64, fenced: bool },
    /// The broker asked to shut down (`in_progress`; it is fenced in the same batch and its
    /// leaderships move away), or its session has since expired and it is merely fenced
    /// (Kafka's `inControlledShutdown`).
    ControlledShutdown {
        id: i32,
        epoch: u64,
        in_progress: bool,
    },
    /// A new topic; its partitions follow as `Partition` records in the same batch.
    Topic {
        name: String,
        id: Uuid,
        internal: bool,
        configs: BTreeMap<String, String>,
    },
    /// The whole state of one partition (a new one, or a change to an existing one).
    Partition {
        topic: String,
        partition: i32,
        state: PartitionState,
    },
    /// A topic and all its partitions are gone.
    RemoveTopic { name: String },
    /// A topic's config overrides, replaced whole.
    TopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// ACL bindings added (already present ones are left as they are).
    AclsCreated { bindings: Vec<AclBinding> },
    /// ACL bindings removed.
    AclsDeleted { bindings: Vec<AclBinding> },
    /// Producer ids `[first, first + size)` belong to `broker` (KIP-730): ids are never reused.
    ProducerIdBlock { broker: i32, first: i64, size: i64 },
    /// Dynamic broker configs (KIP-226) of one broker (`resource` = its id) or the cluster
    /// default (`resource` = ""), as Kafka names BROKER config resources; replaced whole.
    BrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    /// A user's SCRAM credential for one mechanism, added or replaced (KIP-554).
    UserScramCredential {
        user: String,
        credential: ScramCredential,
    },
    /// A user's SCRAM credential for one mechanism, removed.
    RemoveUserScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    /// One client quota value of an entity (KIP-546), set, or removed with None.
    ClientQuota {
        entity: QuotaEntity,
        key: String,
        value: Option<f64>,
    },
}

/// Replicas, leader and epochs of one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Broker ids, the preferred leader first.
    pub replicas: Vec<i32>,
    /// -1 when no replica can lead.
    pub leader: i32,
    /// Bumped on every leader change; stamped into batches the leader appends.
    pub leader_epoch: i32,
    /// Bumped on every change of this partition's state (KIP-497).
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    /// During a reassignment (KIP-455): target replicas not in the original assignment. They
    /// are in `replicas` (the union of target and original) and join the ISR by catching up.
    /// Absent in records and snapshots written before reassignments existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// During a reassignment: original replicas not in the target; they leave `replicas` (and
    /// the ISR) when every target replica is in the ISR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionState {
    /// A new partition on `replicas`, led by the first of them.
    pub fn new(replicas: Vec<i32>) -> PartitionState {
        PartitionState {
            leader: replicas.first().copied().unwrap_or(-1),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Whether a reassignment is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition is moving to (all of them when not reassigning), in order.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// The replicas before the reassignment (all of them when not reassigning), in order.
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }
}

/// The records of one controller decision, one Raft entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

impl MetadataBatch {
    pub fn new(records: Vec<MetadataRecord>) -> MetadataBatch {
        MetadataBatch { records }
    }
}

impl std::fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetadataBatch({} records)", self.records.len())
    }
}
