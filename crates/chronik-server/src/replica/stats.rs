//! What this broker saw of replication since it started, and the status report built from it:
//! the one place the admin command (`ReplicaStatus` on the controller listener, see
//! `quorum/server.rs`) and, later, a metrics exporter read the replication figures from.
//!
//! `ReplicationStats` is a handful of atomic counters owned by the `ReplicaManager`. They move
//! only off the data path: when the metadata publisher applies an image to a hosted partition
//! (`record_applied`) and when a follower cuts its log. Produce and fetch never touch them.
//!
//! The counters are this broker's view, not the cluster's: Kafka's
//! LeaderElectionRateAndTimeMs is counted by the controller, ours by every broker for the
//! partitions it hosts, so the same election shows once on each of its replicas.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::partition::RoleChange;
use crate::metadata::records::PartitionState;

/// Counters since this broker started. Cheap to bump, never reset.
#[derive(Debug)]
pub struct ReplicationStats {
    started: Instant,
    leader_elections: AtomicU64,
    became_leader: AtomicU64,
    isr_shrinks: AtomicU64,
    isr_expands: AtomicU64,
    truncations: AtomicU64,
    log_restarts: AtomicU64,
}

/// The counters at one moment, as reported (and serialized over the controller RPC).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationCounters {
    /// Since this broker started, in milliseconds.
    pub uptime_ms: u64,
    /// Times a partition hosted here took a new leader epoch in an applied metadata image
    /// (every leader change bumps it, to no leader too). The state a partition is first opened
    /// with does not count.
    pub leader_elections: u64,
    /// Times this broker became a partition's leader (first opened as leader included).
    pub became_leader: u64,
    /// Committed ISR changes of partitions this broker leads, under an unchanged leader epoch:
    /// a member left (shrink) or joined (expand). One change may be both.
    pub isr_shrinks: u64,
    pub isr_expands: u64,
    /// Times a follower cut a divergent tail off its log (`Partition::truncate_to`).
    pub truncations: u64,
    /// Times a follower too far behind started its log afresh at the leader's log start.
    pub log_restarts: u64,
}

impl Default for ReplicationStats {
    fn default() -> Self {
        ReplicationStats {
            started: Instant::now(),
            leader_elections: AtomicU64::new(0),
            became_leader: AtomicU64::new(0),
            isr_shrinks: AtomicU64::new(0),
            isr_expands: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            log_restarts: AtomicU64::new(0),
        }
    }
}

impl ReplicationStats {
    /// Counts what applying `new` to a replica on broker `node_id`, whose previously applied
    /// state was `old` (None: just opened), changed; `change` is what `apply_state` returned.
    pub fn record_applied(
        &self,
        node_id: i32,
        old: Option<&PartitionState>,
        new: &PartitionState,
        change: RoleChange,
    ) {
        if change == RoleChange::BecameLeader {
            bump(&self.became_leader);
        }
        let Some(old) = old else {
            return;
        };
        if old.leader_epoch != new.leader_epoch {
            bump(&self.leader_elections);
            return;
        }
        if new.leader != node_id || old.leader != node_id {
            return;
        }
        if old.isr.iter().any(|r| !new.isr.contains(r)) {
            bump(&self.isr_shrinks);
        }
        if new.isr.iter().any(|r| !old.isr.contains(r)) {
            bump(&self.isr_expands);
        }
    }

    /// A follower cut its log.
    pub fn record_truncation(&self) {
        bump(&self.truncations);
    }

    /// A follower started its log afresh.
    pub fn record_log_restart(&self) {
        bump(&self.log_restarts);
    }

    pub fn counters(&self) -> ReplicationCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReplicationCounters {
            uptime_ms: self.started.elapsed().as_millis() as u64,
            leader_elections: get(&self.leader_elections),
            became_leader: get(&self.became_leader),
            isr_shrinks: get(&self.isr_shrinks),
            isr_expands: get(&self.isr_expands),
            truncations: get(&self.truncations),
            log_restarts: get(&self.log_restarts),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A hosted replica's part in its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaRole {
    Leader,
    Follower,
    /// Opened, no metadata state applied yet.
    Unassigned,
}

/// One hosted partition as this broker sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    pub role: ReplicaRole,
    /// The leader and its epoch as this replica last applied them (-1: none or unknown).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// The committed ISR as this replica last applied it.
    pub isr: Vec<i32>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Leader only: each replica's log end as the leader knows it (its own included; -1:
    /// the follower has not fetched under this leader epoch yet). Empty on a follower.
    pub replica_ends: Vec<(i32, i64)>,
}

/// What one broker reports of its replicas: `ReplicaStatus` on the controller RPC.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub broker: i32,
    pub counters: ReplicationCounters,
    /// Sorted by topic, then partition.
    pub partitions: Vec<PartitionStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: i32 = 1;

    fn state(leader: i32, leader_epoch: i32, isr: &[i32]) -> PartitionState {
        PartitionState {
            replicas: vec![1, 2, 3],
            leader,
            leader_epoch,
            partition_epoch: 0,
            isr: isr.to_vec(),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    #[test]
    fn first_state_counts_only_becoming_leader() {
        let stats = ReplicationStats::default();
        stats.record_applied(
            ME,
            None,
            &state(ME, 4, &[1, 2, 3]),
            RoleChange::BecameLeader,
        );
        stats.record_applied(
            ME,
            None,
            &state(2, 4, &[1, 2, 3]),
            RoleChange::BecameFollower { leader: 2 },
        );
        let c = stats.counters();
        assert_eq!((c.became_leader, c.leader_elections), (1, 0));
        assert_eq!((c.isr_shrinks, c.isr_expands), (0, 0));
    }

    #[test]
    fn a_new_leader_epoch_is_an_election_whoever_leads() {
        let stats = ReplicationStats::default();
        let old = state(2, 0, &[1, 2, 3]);
        // Moved to this broker, with a smaller ISR: an election, not an ISR shrink.
        stats.record_applied(
            ME,
            Some(&old),
            &state(ME, 1, &[1, 3]),
            RoleChange::BecameLeader,
        );
        // Away from it, and to no leader at all.
        stats.record_applied(
            ME,
            Some(&state(ME, 1, &[1, 3])),
            &state(3, 2, &[1, 3]),
            RoleChange::BecameFollower { leader: 3 },
        );
        stats.record_applied(
            ME,
            Some(&state(3, 2, &[1, 3])),
            &state(-1, 3, &[1]),
            RoleChange::BecameFollower { leader: -1 },
        );
        let c = stats.counters();
        assert_eq!((c.leader_elections, c.became_leader), (3, 1));
        assert_eq!((c.isr_shrinks, c.isr_expands), (0, 0));
    }

    #[test]
    fn isr_changes_count_only_on_the_leader_under_the_same_epoch() {
        let stats = ReplicationStats::default();
        let full = state(ME, 5, &[1, 2, 3]);
        let shrunk = state(ME, 5, &[1, 3]);
        stats.record_applied(ME, Some(&full), &shrunk, RoleChange::Unchanged);
        stats.record_applied(ME, Some(&shrunk), &full, RoleChange::Unchanged);
        // Same members in another order, and an unchanged state: nothing.
        stats.record_applied(
            ME,
            Some(&full),
            &state(ME, 5, &[3, 2, 1]),
            RoleChange::Unchanged,
        );
        stats.record_applied(ME, Some(&full), &full, RoleChange::Unchanged);
        // One out and one in at once: both.
        stats.record_applied(
            ME,
            Some(&shrunk),
            &state(ME, 5, &[1, 2]),
            RoleChange::Unchanged,
        );
        // A follower's view of the leader's ISR change is not counted here.
        stats.record_applied(
            ME,
            Some(&state(2, 5, &[1, 2, 3])),
            &state(2, 5, &[2, 3]),
            RoleChange::Unchanged,
        );
        let c = stats.counters();
        assert_eq!((c.isr_shrinks, c.isr_expands), (2, 2));
        assert_eq!((c.leader_elections, c.became_leader), (0, 0));
    }

    #[test]
    fn truncations_and_restarts_count_apart() {
        let stats = ReplicationStats::default();
        stats.record_truncation();
        stats.record_truncation();
        stats.record_log_restart();
        let c = stats.counters();
        assert_eq!((c.truncations, c.log_restarts), (2, 1));
    }

    #[test]
    fn the_status_survives_the_wire() {
        let status = ReplicaStatus {
            broker: 2,
            counters: ReplicationCounters {
                uptime_ms: 10,
                leader_elections: 1,
                ..Default::default()
            },
            partitions: vec![PartitionStatus {
                topic: "t".into(),
                partition: 0,
                role: ReplicaRole::Leader,
                leader: 2,
                leader_epoch: 3,
                replicas: vec![2, 1],
                isr: vec![2, 1],
                high_watermark: 7,
                log_start_offset: 0,
                log_end_offset: 7,
                replica_ends: vec![(2, 7), (1, -1)],
            }],
        };
        let json = serde_json::to_vec(&status).unwrap();
        assert_eq!(
            serde_json::from_slice::<ReplicaStatus>(&json).unwrap(),
            status
        );
    }
}
