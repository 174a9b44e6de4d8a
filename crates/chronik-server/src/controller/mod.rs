//! The controller: the only writer of cluster metadata. Every node has a `Controller`; the one
//! on the Raft leader decides, the others forward (KIP-590).
//!
//! How a metadata change flows: a handler calls `Controller::call` → the call goes to the
//! leader (in-process, or over the controller RPC) → `decide` takes the decision lock, makes
//! sure its image holds every committed record (`ensure_linearizable`), `plan` validates the
//! call against that image and returns records → one Raft entry carries them → once committed,
//! every node's state machine folds them into its image → the calling node waits until its own
//! *published* image (reconciled into the replica manager, coordinator and authorizer) has the
//! entry, then answers. No quorum: a retriable error within the request's time, never a hang.
//!
//! Broker lifecycle (KIP-631): brokers register (a new epoch per process start), then
//! heartbeat; the leader fences a broker it has not heard from for `broker_session_timeout_ms`
//! with a committed record, and a heartbeat unfences it. Leader elections happen only here, in
//! the same batch as the change that calls for them (`election.rs`): fencing, controlled
//! shutdown or re-registration moves a broker's leaderships away; unfencing gives leaderless
//! partitions a leader; ISR changes come from partition leaders as AlterPartition.

pub mod election;
pub mod placement;
pub mod plan;
pub mod reassignment;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::metadata::image::TopicImage;
use crate::metadata::records::{MetadataBatch, MetadataRecord, PartitionState};
use crate::metadata::MetadataView;
use crate::quorum::rpc::{PeerConnection, RpcRequest, RpcResponse};
use crate::quorum::{NodeId, Quorum};
use crate::security::scram::{ScramCredential, ScramMechanism};
use crate::security::{AclBinding, AclBindingFilter};

pub use plan::{validate_topic_name, ControllerCall, Decided, NewTopic, QuorumInfo};
pub use reassignment::{OngoingReassignment, ReassignmentResult};

/// Name of the internal topic that stores consumer group offsets and metadata.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// A refused metadata change: Kafka error code and message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControllerError {
    pub code: i16,
    pub message: String,
}

impl ControllerError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ControllerError {
            code: error.code(),
            message: message.into(),
        }
    }

    fn no_controller(why: impl std::fmt::Display) -> Self {
        ControllerError::new(
            ResponseError::NotController,
            format!("no controller quorum: {why}"),
        )
    }

    fn timed_out() -> Self {
        ControllerError::new(
            ResponseError::RequestTimedOut,
            "the metadata change was not committed in time (no controller quorum?)",
        )
    }
}

/// What the leader answers: the log index holding the change (the caller waits until its
/// own image has it) and the decision.
pub type ControllerResult = Result<(u64, Decided), ControllerError>;

/// How long a metadata change may take when the request gives no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// AlterPartition is retried by the leader on its own schedule; one attempt stays short.
pub const ALTER_PARTITION_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Controller {
    config: Arc<BrokerConfig>,
    quorum: Arc<Quorum>,
    /// This broker's published image: calls return once it holds their change.
    published: MetadataView,
    /// Serialises decisions on the leader: validate, then propose, one call at a time.
    decide_lock: tokio::sync::Mutex<()>,
    /// Last heartbeat per broker, as seen by this node while it leads.
    heartbeats: Mutex<HashMap<i32, Instant>>,
    /// One connection per peer for forwarded calls.
    peers: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<PeerConnection>>>>,
    /// Topics deleted through this broker lately, and when: not auto-created again for
    /// `RECREATE_GUARD`, since clients that still have one in their metadata cache ask for it
    /// with auto-creation allowed and would bring a just-deleted topic back (ZooKeeper-era Kafka
    /// refused that while a deletion was in progress). CreateTopics is not affected.
    recently_deleted: Mutex<HashMap<String, Instant>>,
}

/// How long a topic deleted through this broker is not auto-created again.
const RECREATE_GUARD: Duration = Duration::from_secs(5);

impl Controller {
    pub fn new(config: Arc<BrokerConfig>, quorum: Arc<Quorum>, published: MetadataView) -> Self {
        Controller {
            config,
            quorum,
            published,
            decide_lock: tokio::sync::Mutex::new(()),
            heartbeats: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            recently_deleted: Mutex::new(HashMap::new()),
        }
    }

    pub fn quorum(&self) -> &Arc<Quorum> {
        &self.quorum
    }

    /// Has the controller decide `call`, then waits until this broker's image holds the change.
    pub async fn call(
        &self,
        call: ControllerCall,
        timeout: Duration,
    ) -> Result<Decided, ControllerError> {
        let deadline = Instant::now() + timeout;
        let (index, decided) = self.call_leader(call, deadline).await?;
        if !self.published.wait_for_index(index, deadline).await {
            return Err(ControllerError::timed_out());
        }
        Ok(decided)
    }

    /// Sends `call` to the current leader (itself, or a peer), retrying while there is none,
    /// until `deadline`.
    pub async fn call_leader(&self, call: ControllerCall, deadline: Instant) -> ControllerResult {
        let mut last_error = ControllerError::no_controller("no leader elected");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(last_error);
            }
            match self.quorum.leader() {
                Some(leader) if leader == self.quorum.node_id => {
                    match tokio::time::timeout(remaining, self.decide(call.clone())).await {
                        Ok(Err(e)) if e.code == ResponseError::NotController.code() => {
                            last_error = e
                        }
                        Ok(result) => return result,
                        Err(_) => return Err(ControllerError::timed_out()),
                    }
                }
                Some(leader) => match self.forward(leader, &call, remaining).await {
                    Ok(Err(e)) if e.code == ResponseError::NotController.code() => last_error = e,
                    Ok(result) => return result,
                    Err(e) => last_error = e,
                },
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
        }
    }

    async fn forward(
        &self,
        leader: NodeId,
        call: &ControllerCall,
        timeout: Duration,
    ) -> Result<ControllerResult, ControllerError> {
        let Some(addr) = self.quorum.voters.get(&leader).cloned() else {
            return Err(ControllerError::no_controller(format!(
                "leader {leader} is not a configured voter"
            )));
        };
        let peer = self
            .peers
            .lock()
            .entry(leader)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(PeerConnection::new(addr))))
            .clone();
        let mut connection = peer.lock().await;
        match connection
            .call(&RpcRequest::Controller(call.clone()), timeout)
            .await
        {
            Ok(RpcResponse::Controller(result)) => Ok(result),
            Ok(_) => Err(ControllerError::no_controller("mismatched RPC response")),
            Err(e) => Err(ControllerError::no_controller(e)),
        }
    }

    /// Decides `call` if this node leads the quorum (NOT_CONTROLLER otherwise): validates it
    /// against an image holding every committed record, then commits its records.
    pub async fn decide(&self, call: ControllerCall) -> ControllerResult {
        if let ControllerCall::DescribeQuorum = call {
            return self
                .describe_quorum()
                .map(|info| (0, Decided::Quorum(info)));
        }
        let _one_at_a_time = self.decide_lock.lock().await;
        if let Err(e) = self.quorum.raft.ensure_linearizable().await {
            return Err(ControllerError::no_controller(e));
        }
        if let ControllerCall::BrokerHeartbeat { id, .. } = &call {
            self.heartbeats.lock().insert(*id, Instant::now());
        }
        let image = self.quorum.committed_image();
        let (mut records, decided) = plan::plan(&self.config, &image, call)?;
        if records.is_empty() {
            return Ok((image.applied_index, decided));
        }
        if image.cluster_id.is_empty()
            && !records
                .iter()
                .any(|r| matches!(r, MetadataRecord::ClusterId { .. }))
        {
            let cluster_id = self
                .config
                .cluster_id
                .clone()
                .unwrap_or_else(new_cluster_id);
            records.insert(0, MetadataRecord::ClusterId { cluster_id });
        }
        match self
            .quorum
            .raft
            .client_write(MetadataBatch::new(records))
            .await
        {
            Ok(written) => Ok((written.log_id.index, decided)),
            Err(e) => Err(ControllerError::no_controller(e)),
        }
    }

    /// The quorum from this node's Raft metrics; NOT_CONTROLLER unless it leads.
    fn describe_quorum(&self) -> Result<QuorumInfo, ControllerError> {
        let metrics = self.quorum.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.quorum.node_id) {
            return Err(ControllerError::no_controller(
                "this node does not lead the quorum",
            ));
        }
        let replication = metrics.replication.clone().unwrap_or_default();
        let voters = self
            .quorum
            .voters
            .keys()
            .map(|id| {
                let end = if *id == self.quorum.node_id {
                    metrics.last_log_index.map_or(0, |i| i as i64 + 1)
                } else {
                    match replication.get(id) {
                        Some(Some(matched)) => matched.index as i64 + 1,
                        Some(None) => 0,
                        None => -1,
                    }
                };
                (*id, end)
            })
            .collect();
        Ok(QuorumInfo {
            leader: self.quorum.node_id,
            term: metrics.current_term,
            high_watermark: metrics.last_applied.map_or(0, |l| l.index as i64 + 1),
            voters,
        })
    }

    /// On the leader, fences brokers whose session expired; runs until the runtime stops.
    /// A broker not heard from since this node became leader counts from that moment.
    pub async fn run_fencing(self: Arc<Self>) {
        let session = Duration::from_millis(self.config.broker_session_timeout_ms);
        let mut leading_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            if !self.quorum.is_leader() {
                leading_since = None;
                continue;
            }
            let since = *leading_since.get_or_insert_with(|| {
                self.heartbeats.lock().clear();
                Instant::now()
            });
            let image = self.quorum.committed_image();
            let expired: Vec<(i32, u64)> = {
                let heartbeats = self.heartbeats.lock();
                // A broker in controlled shutdown is fenced already; when its session ends
                // it is shown as fenced rather than shutting down.
                image
                    .brokers
                    .values()
                    .filter(|b| !b.fenced || b.in_controlled_shutdown)
                    .filter(|b| heartbeats.get(&b.id).copied().unwrap_or(since).elapsed() > session)
                    .map(|b| (b.id, b.epoch))
                    .collect()
            };
            for (id, epoch) in expired {
                info!(broker = id, epoch, "broker session expired: fencing it");
                if let Err(e) = self.decide(ControllerCall::FenceBroker { id, epoch }).await {
                    warn!(broker = id, error = %e.message, "fencing failed");
                }
            }
        }
    }

    /// On the leader, every `leader_imbalance_check_interval_seconds`, moves leadership back to
    /// preferred leaders of brokers whose share of preferred partitions they do not lead is over
    /// `leader_imbalance_per_broker_percentage` (Kafka's auto.leader.rebalance.enable).
    pub async fn run_leader_balancing(self: Arc<Self>) {
        if !self.config.auto_leader_rebalance_enable {
            return;
        }
        let period = Duration::from_secs(self.config.leader_imbalance_check_interval_seconds);
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !self.quorum.is_leader() {
                continue;
            }
            let image = self.quorum.committed_image();
            let moves =
                election::imbalanced(&image, self.config.leader_imbalance_per_broker_percentage);
            if moves.is_empty() {
                continue;
            }
            info!(
                partitions = moves.len(),
                "leaders are imbalanced: electing preferred leaders"
            );
            let call = ControllerCall::ElectLeaders {
                preferred: true,
                partitions: Some(moves),
            };
            if let Err(e) = self.decide(call).await {
                warn!(error = %e.message, "preferred leader election failed");
            }
        }
    }

    /// The topic, created with broker defaults if auto-creation allows it.
    pub async fn get_or_auto_create(&self, name: &str) -> Result<Arc<TopicImage>, ControllerError> {
        if let Some(topic) = self.published.topic(name) {
            return Ok(topic);
        }
        let just_deleted = self
            .recently_deleted
            .lock()
            .get(name)
            .is_some_and(|at| at.elapsed() < RECREATE_GUARD);
        if !self.config.auto_create_topics || just_deleted {
            return Err(ControllerError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("unknown topic {name:?}"),
            ));
        }
        let created = self
            .create_topic(
                NewTopic {
                    name: name.to_string(),
                    partitions: -1,
                    replication_factor: -1,
                    assignments: None,
                    configs: BTreeMap::new(),
                    validate_only: false,
                },
                DEFAULT_TIMEOUT,
            )
            .await;
        match created {
            // Another request created it first; this broker may not have applied it yet.
            Err(e) if e.code == ResponseError::TopicAlreadyExists.code() => {
                let deadline = Instant::now() + DEFAULT_TIMEOUT;
                self.published
                    .wait_until(|image| image.topic(name).is_some(), deadline)
                    .await;
                self.published.topic(name).ok_or(e)
            }
            Err(e) => Err(e),
            Ok(_) => self
                .published
                .topic(name)
                .ok_or_else(ControllerError::timed_out),
        }
    }

    pub async fn create_topic(
        &self,
        new: NewTopic,
        timeout: Duration,
    ) -> Result<TopicImage, ControllerError> {
        match self.call(ControllerCall::CreateTopic(new), timeout).await? {
            Decided::Topic(topic) => Ok(topic),
            other => Err(unexpected(other)),
        }
    }
}

impl Controller {
    pub async fn delete_topic(&self, name: &str) -> Result<TopicImage, ControllerError> {
        let call = ControllerCall::DeleteTopic {
            name: name.to_string(),
        };
        match self.call(call, DEFAULT_TIMEOUT).await? {
            Decided::Topic(topic) => {
                let mut deleted = self.recently_deleted.lock();
                deleted.retain(|_, at| at.elapsed() < RECREATE_GUARD);
                deleted.insert(name.to_string(), Instant::now());
                Ok(topic)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        timeout: Duration,
    ) -> Result<(), ControllerError> {
        let call = ControllerCall::CreatePartitions {
            name: name.to_string(),
            count,
            assignments,
            validate_only,
        };
        self.call(call, timeout).await.map(|_| ())
    }

    /// Replaces a topic's config overrides with `configs` (validated first).
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let call = ControllerCall::SetTopicConfigs {
            name: name.to_string(),
            configs,
            validate_only,
        };
        self.call(call, DEFAULT_TIMEOUT).await.map(|_| ())
    }

    pub async fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<(), ControllerError> {
        self.call(ControllerCall::CreateAcls { bindings }, DEFAULT_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// Adds or replaces `upsertions` and removes `deletions` of users' SCRAM credentials, in
    /// one committed change.
    pub async fn alter_scram_credentials(
        &self,
        upsertions: Vec<(String, ScramCredential)>,
        deletions: Vec<(String, ScramMechanism)>,
    ) -> Result<(), ControllerError> {
        let call = ControllerCall::AlterScramCredentials {
            upsertions,
            deletions,
        };
        self.call(call, DEFAULT_TIMEOUT).await.map(|_| ())
    }

    /// Removes every binding any filter matches; per filter, the bindings it matched.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclBindingFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
        match self
            .call(ControllerCall::DeleteAcls { filters }, DEFAULT_TIMEOUT)
            .await?
        {
            Decided::AclsDeleted(matched) => Ok(matched),
            other => Err(unexpected(other)),
        }
    }
}

impl Controller {
    /// A partition leader's ISR proposal (AlterPartition); the partition's committed state.
    #[allow(clippy::too_many_arguments)]
    pub async fn alter_partition(
        &self,
        broker: i32,
        broker_epoch: u64,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    ) -> Result<PartitionState, ControllerError> {
        let call = ControllerCall::AlterPartition {
            broker,
            broker_epoch,
            topic: topic.to_string(),
            partition,
            leader_epoch,
            partition_epoch,
            isr,
        };
        match self.call(call, ALTER_PARTITION_TIMEOUT).await? {
            Decided::Partition(state) => Ok(state),
            other => Err(unexpected(other)),
        }
    }

    /// ElectLeaders: per partition, its error code (0: elected).
    pub async fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
        timeout: Duration,
    ) -> Result<Vec<(String, i32, i16)>, ControllerError> {
        let call = ControllerCall::ElectLeaders {
            preferred,
            partitions,
        };
        match self.call(call, timeout).await? {
            Decided::Elections(results) => Ok(results),
            other => Err(unexpected(other)),
        }
    }
}

impl Controller {
    /// AlterPartitionReassignments: per partition asked for, in order, its answer.
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<(String, i32, Option<Vec<i32>>)>,
        allow_replication_factor_change: bool,
        timeout: Duration,
    ) -> Result<Vec<ReassignmentResult>, ControllerError> {
        let call = ControllerCall::AlterPartitionReassignments {
            reassignments,
            allow_replication_factor_change,
        };
        match self.call(call, timeout).await? {
            Decided::Reassignments(results) => Ok(results),
            other => Err(unexpected(other)),
        }
    }

    /// ListPartitionReassignments: the reassignments under way (of `partitions`, or all).
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        timeout: Duration,
    ) -> Result<Vec<OngoingReassignment>, ControllerError> {
        let call = ControllerCall::ListPartitionReassignments { partitions };
        match self.call(call, timeout).await? {
            Decided::OngoingReassignments(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(decided: Decided) -> ControllerError {
    ControllerError::new(
        ResponseError::UnknownServerError,
        format!("unexpected controller answer {decided:?}"),
    )
}

fn new_cluster_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..22].to_string()
}
