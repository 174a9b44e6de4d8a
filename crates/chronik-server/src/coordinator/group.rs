//! `Group`: one consumer group's state machine (the classic protocol), with no I/O.
//!
//! States: Empty → PreparingRebalance → CompletingRebalance → Stable, and back to
//! PreparingRebalance on any membership or subscription change; Dead once deleted.
//! - PreparingRebalance collects JoinGroup requests. It completes when every known member has
//!   rejoined (and no KIP-394 member id is still pending), or at the join deadline (the largest
//!   rebalance timeout; for the first join of an empty group, the initial rebalance delay).
//!   Members that did not rejoin are removed; the generation is bumped, a protocol chosen by
//!   vote, a leader kept or elected, and every waiting JoinGroup answered.
//! - CompletingRebalance waits for the leader's SyncGroup, then answers every SyncGroup waiter
//!   with its assignment and becomes Stable.
//!
//! JoinGroup/SyncGroup are delayed operations: a request that cannot be answered yet leaves a
//! oneshot sender in its member and returns the receiver (`Pending::Wait`). Time is passed in
//! (`now`), so deadlines are driven by the coordinator's timer task and by tests.
//!
//! Thread-safety: none; the coordinator keeps each group behind its own mutex and never holds it
//! across an await.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::offsets_log::{GroupMetadataValue, OffsetValue, StoredMember};

/// The classic group states, named as Kafka names them on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Broker settings the state machine needs.
#[derive(Clone, Debug)]
pub struct GroupSettings {
    pub initial_rebalance_delay: Duration,
}

/// An answer now, or a receiver that gets it when the rebalance gets there.
pub enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

/// One JoinGroup request, decoded.
#[derive(Clone, Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394 (JoinGroup v4+): a new dynamic member must first obtain its member id.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in the JoinGroup response.
#[derive(Clone, Debug)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The JoinGroup answer.
#[derive(Clone, Debug, Default)]
pub struct JoinOutcome {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinOutcome {
    fn error(error: ResponseError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error_code: error.code(),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// The SyncGroup answer.
#[derive(Clone, Debug, Default)]
pub struct SyncOutcome {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    fn error(error: ResponseError) -> SyncOutcome {
        SyncOutcome {
            error_code: error.code(),
            ..Default::default()
        }
    }
}

pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    session_deadline: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// A member blocked in JoinGroup or SyncGroup is alive; otherwise its heartbeats keep it so.
    fn expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none() && self.sync_waiter.is_none() && self.session_deadline <= now
    }
}

/// A committed offset as held in memory.
pub type CommittedOffset = OffsetValue;

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id (KIP-345).
    static_members: HashMap<String, String>,
    /// KIP-394 member ids handed out but not yet joined, with their expiry.
    pending: HashMap<String, Instant>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    join_deadline: Option<Instant>,
    /// Set while the first rebalance of an empty group waits out the initial delay: its start.
    initial_delay_started: Option<Instant>,
    /// Wall-clock ms at which the current state began (offset retention of empty groups).
    pub state_timestamp_ms: i64,
    /// Group metadata changed in a way that must be written to `__consumer_offsets`.
    pub metadata_dirty: bool,
}

fn now_ms() -> i64 {
    crate::replica::replica_manager::now_ms()
}

impl Group {
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            offsets: BTreeMap::new(),
            join_deadline: None,
            initial_delay_started: None,
            state_timestamp_ms: now_ms(),
            metadata_dirty: false,
        }
    }

    /// Restores generation and protocol from stored metadata. Members are not restored: after
    /// a coordinator restart they get UNKNOWN_MEMBER_ID and rejoin, starting a new generation.
    pub fn restore(&mut self, value: &GroupMetadataValue) {
        self.generation = value.generation;
        self.protocol_type = (!value.protocol_type.is_empty()).then(|| value.protocol_type.clone());
        self.state_timestamp_ms = value.current_state_timestamp.max(0);
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_timestamp_ms = now_ms();
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    /// The group metadata record value for the current generation.
    pub fn metadata_value(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Protocols every current member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        // The leader's preference order first, so vote ties do not depend on member ids.
        let first = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next());
        let Some(first) = first else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in self.members.values() {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        candidates
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// The protocol every member supports with the most first-choice votes.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        // Ties go to the earliest candidate (the leader's preference order).
        let mut best: Option<(String, usize)> = None;
        for (name, count) in votes {
            if best.as_ref().is_none_or(|(_, b)| count > *b) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name)
    }

    fn check_static(&self, member_id: &str, instance: Option<&str>) -> Result<(), ResponseError> {
        if let Some(instance) = instance {
            match self.static_members.get(instance) {
                Some(id) if id != member_id => return Err(ResponseError::FencedInstanceId),
                None => return Err(ResponseError::UnknownMemberId),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        settings: &GroupSettings,
    ) -> Pending<JoinOutcome> {
        use Pending::Ready;
        if self.state == GroupState::Dead {
            return Ready(JoinOutcome::error(
                ResponseError::CoordinatorNotAvailable,
                &req.member_id,
            ));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return Ready(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
        }
        if req.member_id.is_empty() {
            let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if let Some(instance) = &req.group_instance_id {
                if let Some(old_id) = self.static_members.get(instance).cloned() {
                    return self.replace_static_member(&old_id, new_id, req, now, settings);
                }
                return self.add_member_and_rebalance(new_id, req, now, settings);
            }
            if req.require_known_member_id {
                let deadline = now + Duration::from_millis(req.session_timeout_ms.max(0) as u64);
                self.pending.insert(new_id.clone(), deadline);
                return Ready(JoinOutcome::error(ResponseError::MemberIdRequired, &new_id));
            }
            return self.add_member_and_rebalance(new_id, req, now, settings);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member_and_rebalance(id, req, now, settings);
        }
        if let Err(e) = self.check_static(&req.member_id, req.group_instance_id.as_deref()) {
            return Ready(JoinOutcome::error(e, &req.member_id));
        }
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return Ready(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &req.member_id,
            ));
        };
        let unchanged = member.protocols == req.protocols;
        member.client_id = req.client_id.clone();
        member.session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
        member.session_deadline = now + member.session_timeout;
        match self.state {
            GroupState::PreparingRebalance => {
                member.protocols = req.protocols;
                let rx = self.await_join(&req.member_id);
                self.maybe_complete_join(now);
                Pending::Wait(rx)
            }
            GroupState::CompletingRebalance if unchanged => {
                Ready(self.current_join_outcome(&req.member_id, false))
            }
            GroupState::Stable if unchanged && !is_leader => {
                Ready(self.current_join_outcome(&req.member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.protocols = req.protocols;
                let rx = self.await_join(&req.member_id);
                self.prepare_rebalance(now, settings);
                self.maybe_complete_join(now);
                Pending::Wait(rx)
            }
            GroupState::Empty | GroupState::Dead => Ready(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &req.member_id,
            )),
        }
    }

    fn await_join(&mut self, member_id: &str) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(member_id) {
            m.join_waiter = Some(tx);
        }
        rx
    }

    /// The answer for the current generation, without a rebalance.
    fn current_join_outcome(&self, member_id: &str, skip_assignment: bool) -> JoinOutcome {
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinOutcome {
            error_code: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.joined_members()
            } else {
                Vec::new()
            },
            skip_assignment: is_leader && skip_assignment,
        }
    }

    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        req: JoinRequest,
        now: Instant,
        settings: &GroupSettings,
    ) -> Pending<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        self.members.insert(
            member_id.clone(),
            Member {
                member_id,
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout,
                rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                session_deadline: now + session_timeout,
            },
        );
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some(start) = self.initial_delay_started {
                    // Each new member during the initial delay waits one more delay, up to the
                    // rebalance timeout from the first join.
                    let cap = start + self.max_rebalance_timeout();
                    self.join_deadline = Some((now + settings.initial_rebalance_delay).min(cap));
                }
            }
            _ => self.prepare_rebalance(now, settings),
        }
        self.maybe_complete_join(now);
        Pending::Wait(rx)
    }

    fn replace_static_member(
        &mut self,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
        now: Instant,
        settings: &GroupSettings,
    ) -> Pending<JoinOutcome> {
        let Some(mut member) = self.members.remove(old_id) else {
            return self.add_member_and_rebalance(new_id, req, now, settings);
        };
        if let Some(tx) = member.join_waiter.take() {
            let _ = tx.send(JoinOutcome::error(ResponseError::FencedInstanceId, old_id));
        }
        if let Some(tx) = member.sync_waiter.take() {
            let _ = tx.send(SyncOutcome::error(ResponseError::FencedInstanceId));
        }
        member.member_id = new_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64);
        member.session_deadline = now + member.session_timeout;
        member.protocols = req.protocols;
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        self.metadata_dirty = true;
        // As Kafka: a static rejoin that leaves the group's selected protocol as it is does not
        // rebalance (its subscription metadata may differ, e.g. no owned partitions yet).
        let unchanged = self.select_protocol() == self.protocol_name;
        match self.state {
            GroupState::Stable if unchanged => {
                Pending::Ready(self.current_join_outcome(&new_id, true))
            }
            GroupState::PreparingRebalance => {
                let rx = self.await_join(&new_id);
                self.maybe_complete_join(now);
                Pending::Wait(rx)
            }
            _ => {
                let rx = self.await_join(&new_id);
                self.prepare_rebalance(now, settings);
                self.maybe_complete_join(now);
                Pending::Wait(rx)
            }
        }
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn prepare_rebalance(&mut self, now: Instant, settings: &GroupSettings) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.sync_waiter.take() {
                    let _ = tx.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        if self.state == GroupState::Empty && !settings.initial_rebalance_delay.is_zero() {
            self.initial_delay_started = Some(now);
            let delay = settings
                .initial_rebalance_delay
                .min(self.max_rebalance_timeout());
            self.join_deadline = Some(now + delay);
        } else {
            self.initial_delay_started = None;
            self.join_deadline = Some(now + self.max_rebalance_timeout());
        }
        self.set_state(GroupState::PreparingRebalance);
    }

    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay_started.is_none()
            && self.pending.is_empty()
            && self.members.values().all(|m| m.join_waiter.is_some())
        {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            self.remove_member(&id);
        }
        self.join_deadline = None;
        self.initial_delay_started = None;
        self.generation += 1;
        self.metadata_dirty = true;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            return;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance);
        let all = self.joined_members();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let outcome = JoinOutcome {
                error_code: 0,
                generation_id: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader: self.leader.clone().unwrap_or_default(),
                member_id: id.clone(),
                members: if is_leader { all.clone() } else { Vec::new() },
                skip_assignment: false,
            };
            if let Some(m) = self.members.get_mut(&id) {
                m.session_deadline = now + m.session_timeout;
                if let Some(tx) = m.join_waiter.take() {
                    let _ = tx.send(outcome);
                }
            }
        }
    }

    /// Removes a member, answering any request it has waiting.
    fn remove_member(&mut self, member_id: &str) {
        let Some(mut m) = self.members.remove(member_id) else {
            return;
        };
        if let Some(instance) = &m.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(tx) = m.join_waiter.take() {
            let _ = tx.send(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                member_id,
            ));
        }
        if let Some(tx) = m.sync_waiter.take() {
            let _ = tx.send(SyncOutcome::error(ResponseError::UnknownMemberId));
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    fn remove_member_and_rebalance(
        &mut self,
        member_id: &str,
        now: Instant,
        settings: &GroupSettings,
    ) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, settings)
            }
            _ => {}
        }
        self.maybe_complete_join(now);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Pending<SyncOutcome> {
        use Pending::Ready;
        if self.state == GroupState::Dead {
            return Ready(SyncOutcome::error(ResponseError::CoordinatorNotAvailable));
        }
        if !self.members.contains_key(member_id) {
            return Ready(SyncOutcome::error(ResponseError::UnknownMemberId));
        }
        if let Err(e) = self.check_static(member_id, instance) {
            return Ready(SyncOutcome::error(e));
        }
        if generation != self.generation {
            return Ready(SyncOutcome::error(ResponseError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return Ready(SyncOutcome::error(ResponseError::InconsistentGroupProtocol));
        }
        let outcome = |assignment: Bytes, g: &Group| SyncOutcome {
            error_code: 0,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                Ready(SyncOutcome::error(ResponseError::UnknownMemberId))
            }
            GroupState::PreparingRebalance => {
                Ready(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let m = self.members.get_mut(member_id).expect("checked above");
                m.session_deadline = now + m.session_timeout;
                let assignment = m.assignment.clone();
                Ready(outcome(assignment, self))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let m = self.members.get_mut(member_id).expect("checked above");
                m.session_deadline = now + m.session_timeout;
                m.sync_waiter = Some(tx);
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments.remove(&m.member_id).unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable);
                    self.metadata_dirty = true;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let m = &self.members[&id];
                        let reply = outcome(m.assignment.clone(), self);
                        let m = self.members.get_mut(&id).expect("listed");
                        m.session_deadline = now + m.session_timeout;
                        if let Some(tx) = m.sync_waiter.take() {
                            let _ = tx.send(reply);
                        }
                    }
                }
                Pending::Wait(rx)
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        let result = (|| {
            match self.state {
                GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
                GroupState::Empty => return Err(ResponseError::UnknownMemberId),
                _ => {}
            }
            if !self.members.contains_key(member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            self.check_static(member_id, instance)?;
            if generation != self.generation {
                return Err(ResponseError::IllegalGeneration);
            }
            let m = self.members.get_mut(member_id).expect("checked above");
            m.session_deadline = now + m.session_timeout;
            if self.state == GroupState::PreparingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            Ok(())
        })();
        result.err().map_or(0, |e| e.code())
    }

    /// LeaveGroup for one member given by id and/or instance id; returns its error code.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
        settings: &GroupSettings,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return ResponseError::CoordinatorNotAvailable.code();
        }
        let id = match instance {
            Some(instance) => match self.static_members.get(instance) {
                Some(id) if !member_id.is_empty() && id != member_id => {
                    return ResponseError::FencedInstanceId.code()
                }
                Some(id) => id.clone(),
                None => return ResponseError::UnknownMemberId.code(),
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            self.maybe_complete_join(now);
            return 0;
        }
        if !self.members.contains_key(&id) {
            return ResponseError::UnknownMemberId.code();
        }
        self.remove_member_and_rebalance(&id, now, settings);
        0
    }

    /// Validates an OffsetCommit's membership; Ok means the offsets may be written.
    pub fn validate_commit(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == GroupState::Empty {
            // A group that only stores offsets (manual assignment).
            return Ok(());
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_static(member_id, instance)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        let m = self.members.get_mut(member_id).expect("checked above");
        m.session_deadline = now + m.session_timeout;
        Ok(())
    }

    /// Topics the members' consumer-protocol subscriptions name (for OffsetDelete).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.clone()?;
        let mut topics = Vec::new();
        for m in self.members.values() {
            let mut meta = m.metadata_for(&protocol);
            if meta.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            let _ = bytes::Buf::get_i16(&mut meta);
            let sub = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(topics)
    }

    /// Expires sessions, pending member ids and the join deadline; returns the next deadline.
    pub fn tick(&mut self, now: Instant, settings: &GroupSettings) -> Option<Instant> {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        if self.pending.len() != before {
            self.maybe_complete_join(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.expired(now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session timed out; removing member");
            self.remove_member_and_rebalance(&id, now, settings);
        }
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= now)
        {
            self.complete_join(now);
        }
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.session_deadline);
        sessions
            .chain(self.pending.values().copied())
            .chain(self.join_deadline)
            .min()
    }

    /// Marks the group deleted, answering every waiting request.
    pub fn mark_dead(&mut self) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.offsets.clear();
        self.set_state(GroupState::Dead);
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
