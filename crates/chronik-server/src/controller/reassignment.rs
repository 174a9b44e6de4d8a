//! Partition reassignment (KIP-455), as pure functions over the image: moving a partition's
//! replicas to other brokers while it keeps serving.
//!
//! Starting one (AlterPartitionReassignments with target replicas) commits, for the partition,
//! `replicas` = target followed by the current replicas not in it, `adding_replicas` = target
//! − current, `removing_replicas` = current − target; ISR and leader stay. The adding replicas
//! are replicas now, so their brokers open the partition and fetch from the leader, which adds
//! them to the ISR by AlterPartition once they caught up. Whenever a `Partition` record is
//! about to be committed (`complete_in_batch`, run by `plan::plan` over every decision) and
//! every target replica is in its ISR, the reassignment completes in that same record:
//! `replicas` = target (in target order), the ISR loses the removing replicas, adding and
//! removing are cleared, and a leader that is being removed gives way to the first live target
//! ISR member (a new leader epoch). Brokers no longer among the replicas then stop hosting the
//! partition and delete its data. Cancelling (no target) reverts to the original replicas: the
//! adding ones leave `replicas` and the ISR, and a leader among them gives way likewise.
//! Kafka's `PartitionReassignmentReplicas` and `ReplicationControlManager` are the reference.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use super::election::is_live;
use super::plan::{Decided, Plan};
use crate::metadata::records::{MetadataBatch, MetadataRecord, PartitionState};
use crate::metadata::MetadataImage;

/// The answer for one partition of an AlterPartitionReassignments: topic, partition, error
/// code (0: started, completed or cancelled) and message.
pub type ReassignmentResult = (String, i32, i16, Option<String>);

/// A reassignment under way, as ListPartitionReassignments reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Target and original replicas together.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

type Refusal = (ResponseError, String);

/// AlterPartitionReassignments: per partition, start a reassignment to the target replicas or
/// cancel the one under way (`None`), in the order given. A partition named twice sees the
/// first change. Without `allow_rf_change` (KIP-860) a target must have as many replicas as
/// the original assignment.
pub fn alter(
    image: &MetadataImage,
    reassignments: Vec<(String, i32, Option<Vec<i32>>)>,
    allow_rf_change: bool,
) -> Plan {
    let live = |b: i32| is_live(image, b);
    let mut changed: BTreeMap<(String, i32), PartitionState> = BTreeMap::new();
    let mut results = Vec::with_capacity(reassignments.len());
    for (topic, partition, target) in reassignments {
        let key = (topic.clone(), partition);
        let Some(current) = changed
            .get(&key)
            .or_else(|| image.partition(&topic, partition))
            .cloned()
        else {
            let message = format!("unknown partition {topic}-{partition}");
            let code = ResponseError::UnknownTopicOrPartition.code();
            results.push((topic, partition, code, Some(message)));
            continue;
        };
        let outcome = match target {
            Some(target) => start(image, &current, target, allow_rf_change, &live),
            None => cancel(&current, &live),
        };
        match outcome {
            Ok(next) => {
                if let Some(next) = next {
                    changed.insert(key, next);
                }
                results.push((topic, partition, 0, None));
            }
            Err((error, message)) => results.push((topic, partition, error.code(), Some(message))),
        }
    }
    let records = changed
        .into_iter()
        .map(|((topic, partition), state)| MetadataRecord::Partition {
            topic,
            partition,
            state,
        })
        .collect();
    (records, Decided::Reassignments(results))
}

/// The state once a reassignment to `target` started (and, if the ISR already holds every
/// target replica, completed); None when nothing changes.
fn start(
    image: &MetadataImage,
    current: &PartitionState,
    target: Vec<i32>,
    allow_rf_change: bool,
    live: &impl Fn(i32) -> bool,
) -> Result<Option<PartitionState>, Refusal> {
    let invalid = |message: String| (ResponseError::InvalidReplicaAssignment, message);
    if target.is_empty() {
        return Err(invalid("the target replica list is empty".into()));
    }
    if target.iter().collect::<BTreeSet<_>>().len() != target.len() {
        return Err(invalid(format!(
            "the target replicas {target:?} repeat a broker"
        )));
    }
    for &broker in &target {
        match image.brokers.get(&broker) {
            None => return Err(invalid(format!("target broker {broker} is not registered"))),
            Some(b) if b.fenced => {
                return Err(invalid(format!("target broker {broker} is fenced")));
            }
            Some(_) => {}
        }
    }
    let original = current.original_replicas();
    if !allow_rf_change && target.len() != original.len() {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "the target has {} replicas, the partition {}; the request does not allow \
                 changing the replication factor",
                target.len(),
                original.len()
            ),
        ));
    }
    if !current.is_reassigning() && target == current.replicas {
        return Ok(None);
    }
    let removing: Vec<i32> = current
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !current.replicas.contains(r))
        .collect();
    let mut replicas = target;
    replicas.extend(&removing);
    let started = PartitionState {
        replicas,
        adding_replicas: adding,
        removing_replicas: removing,
        partition_epoch: current.partition_epoch + 1,
        ..current.clone()
    };
    Ok(Some(complete(&started, live).unwrap_or(started)))
}

/// The state once the reassignment under way is cancelled: the original replicas, the ISR
/// without the adding ones. Refused when no original replica is in the ISR (reverting would
/// need an unclean election).
fn cancel(
    current: &PartitionState,
    live: &impl Fn(i32) -> bool,
) -> Result<Option<PartitionState>, Refusal> {
    if !current.is_reassigning() {
        return Err((
            ResponseError::NoReassignmentInProgress,
            "no reassignment is in progress".into(),
        ));
    }
    let isr: Vec<i32> = current
        .isr
        .iter()
        .copied()
        .filter(|r| !current.adding_replicas.contains(r))
        .collect();
    if isr.is_empty() {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!(
                "cannot revert to {:?}: none of them is in the ISR {:?}",
                current.original_replicas(),
                current.isr
            ),
        ));
    }
    let mut reverted = rebuild(current, current.original_replicas(), isr, live);
    reverted.partition_epoch += 1;
    Ok(Some(reverted))
}

/// `state` with the reassignment under way completed, if every target replica is in its ISR;
/// the partition epoch is left as it is (the state is one about to be committed, whose epoch
/// already moved).
pub fn complete(state: &PartitionState, live: &impl Fn(i32) -> bool) -> Option<PartitionState> {
    if !state.is_reassigning() {
        return None;
    }
    let target = state.target_replicas();
    let isr: Vec<i32> = state
        .isr
        .iter()
        .copied()
        .filter(|r| !state.removing_replicas.contains(r))
        .collect();
    if isr.is_empty() || !target.iter().all(|r| isr.contains(r)) {
        return None;
    }
    Some(rebuild(state, target, isr, live))
}

/// `state` on `replicas` with `isr`, no reassignment: the leader stays if it is a live ISR
/// member, else the first live ISR member in replica order leads (-1: none), with a new
/// leader epoch.
fn rebuild(
    state: &PartitionState,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    live: &impl Fn(i32) -> bool,
) -> PartitionState {
    let eligible = |b: i32| isr.contains(&b) && live(b);
    let leader = if eligible(state.leader) {
        state.leader
    } else {
        replicas
            .iter()
            .copied()
            .find(|b| eligible(*b))
            .unwrap_or(-1)
    };
    PartitionState {
        replicas,
        leader,
        leader_epoch: state.leader_epoch + i32::from(leader != state.leader),
        partition_epoch: state.partition_epoch,
        isr,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// Completes, in place, the reassignment of every `Partition` record of a decision whose ISR
/// now holds all its target replicas (liveness as of the image after the decision). True when
/// a record changed.
pub fn complete_in_batch(image: &MetadataImage, records: &mut [MetadataRecord]) -> bool {
    let reassigning = |r: &MetadataRecord| matches!(r, MetadataRecord::Partition { state, .. } if state.is_reassigning());
    if !records.iter().any(reassigning) {
        return false;
    }
    let after = image.apply(image.applied_index, &MetadataBatch::new(records.to_vec()));
    let live = |b: i32| is_live(&after, b);
    let mut changed = false;
    for record in records.iter_mut() {
        if let MetadataRecord::Partition { state, .. } = record {
            if let Some(done) = complete(state, &live) {
                *state = done;
                changed = true;
            }
        }
    }
    changed
}

/// ListPartitionReassignments: the reassignments under way, of the given partitions (unknown
/// ones are left out, as Kafka does) or of all, by topic and partition.
pub fn list(
    image: &MetadataImage,
    partitions: Option<Vec<(String, i32)>>,
) -> Vec<OngoingReassignment> {
    let ongoing = |topic: &str, partition: i32, state: &PartitionState| {
        state.is_reassigning().then(|| OngoingReassignment {
            topic: topic.to_string(),
            partition,
            replicas: state.replicas.clone(),
            adding: state.adding_replicas.clone(),
            removing: state.removing_replicas.clone(),
        })
    };
    match partitions {
        None => image
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| ongoing(&t.name, i as i32, s))
            })
            .collect(),
        Some(asked) => asked
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|(topic, partition)| {
                let state = image.partition(&topic, partition)?;
                ongoing(&topic, partition, state)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::controller::plan::{plan, ControllerCall, NewTopic};
    use crate::controller::ControllerError;

    /// Brokers 1..=4 (unfenced, epoch 1) and topic "t" with the given replica lists.
    fn with_topic(assignments: Vec<Vec<i32>>) -> MetadataImage {
        let mut records = Vec::new();
        for id in 1..=4 {
            records.push(MetadataRecord::RegisterBroker {
                id,
                epoch: 1,
                host: "h".into(),
                port: 9092 + id,
                listeners: Vec::new(),
            });
            records.push(MetadataRecord::BrokerFencing {
                id,
                epoch: 1,
                fenced: false,
            });
        }
        let mut image = MetadataImage::default().apply(1, &MetadataBatch::new(records));
        let create = ControllerCall::CreateTopic(NewTopic {
            name: "t".into(),
            partitions: -1,
            replication_factor: -1,
            assignments: Some(assignments),
            configs: BTreeMap::new(),
            validate_only: false,
        });
        run(&mut image, create).unwrap();
        image
    }

    fn run(image: &mut MetadataImage, call: ControllerCall) -> Result<Decided, ControllerError> {
        let (records, decided) = plan(&BrokerConfig::default(), image, call)?;
        *image = image.apply(image.applied_index + 1, &MetadataBatch::new(records));
        Ok(decided)
    }

    fn reassign(image: &mut MetadataImage, asked: Vec<(&str, i32, Option<Vec<i32>>)>) -> Vec<i16> {
        let call = ControllerCall::AlterPartitionReassignments {
            reassignments: asked
                .into_iter()
                .map(|(t, p, r)| (t.to_string(), p, r))
                .collect(),
            allow_replication_factor_change: true,
        };
        let Decided::Reassignments(results) = run(image, call).unwrap() else {
            panic!()
        };
        results.into_iter().map(|(_, _, code, _)| code).collect()
    }

    fn ongoing(image: &mut MetadataImage) -> Vec<OngoingReassignment> {
        let call = ControllerCall::ListPartitionReassignments { partitions: None };
        let Decided::OngoingReassignments(list) = run(image, call).unwrap() else {
            panic!()
        };
        list
    }

    /// AlterPartition from the partition's current leader.
    fn alter_isr(image: &mut MetadataImage, isr: Vec<i32>) -> Result<Decided, ControllerError> {
        let state = image.partition("t", 0).unwrap().clone();
        let call = ControllerCall::AlterPartition {
            broker: state.leader,
            broker_epoch: 1,
            topic: "t".into(),
            partition: 0,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr,
        };
        run(image, call)
    }

    fn p0(image: &MetadataImage) -> PartitionState {
        image.partition("t", 0).unwrap().clone()
    }

    #[test]
    fn refusals_carry_kafkas_codes_per_partition() {
        let mut image = with_topic(vec![vec![1, 2, 3]]);
        run(&mut image, ControllerCall::FenceBroker { id: 4, epoch: 1 }).unwrap();
        let before = p0(&image);
        let invalid = ResponseError::InvalidReplicaAssignment.code();
        let codes = reassign(
            &mut image,
            vec![
                ("u", 0, Some(vec![1])),
                ("t", 9, Some(vec![1])),
                ("t", 0, Some(vec![])),
                ("t", 0, Some(vec![1, 2, 2])),
                ("t", 0, Some(vec![1, 2, 7])),
                ("t", 0, Some(vec![1, 2, 4])),
                ("t", 0, None),
            ],
        );
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let none = ResponseError::NoReassignmentInProgress.code();
        assert_eq!(
            codes,
            vec![unknown, unknown, invalid, invalid, invalid, invalid, none]
        );
        assert_eq!(p0(&image), before, "nothing committed");
        let call = ControllerCall::AlterPartitionReassignments {
            reassignments: vec![("t".into(), 0, Some(vec![1, 2]))],
            allow_replication_factor_change: false,
        };
        let Decided::Reassignments(results) = run(&mut image, call).unwrap() else {
            panic!()
        };
        assert_eq!(results[0].2, ResponseError::InvalidReplicationFactor.code());
    }

    #[test]
    fn a_move_completes_when_the_leader_adds_the_new_replica_and_the_leader_moves_off() {
        let mut image = with_topic(vec![vec![1, 2, 3]]);
        assert_eq!(
            reassign(&mut image, vec![("t", 0, Some(vec![2, 3, 4]))]),
            vec![0]
        );
        let started = p0(&image);
        assert_eq!(started.replicas, vec![2, 3, 4, 1]);
        assert_eq!(
            (
                started.adding_replicas.clone(),
                started.removing_replicas.clone()
            ),
            (vec![4], vec![1])
        );
        assert_eq!(
            (
                started.leader,
                started.leader_epoch,
                started.partition_epoch
            ),
            (1, 0, 1)
        );
        assert_eq!(started.isr, vec![1, 2, 3]);
        assert_eq!(
            ongoing(&mut image),
            vec![OngoingReassignment {
                topic: "t".into(),
                partition: 0,
                replicas: vec![2, 3, 4, 1],
                adding: vec![4],
                removing: vec![1],
            }]
        );
        // An ISR change that leaves the new replica out completes nothing.
        alter_isr(&mut image, vec![1, 2]).unwrap();
        assert!(p0(&image).is_reassigning());
        // The leader adds the adding replica (a replica now): the reassignment completes in
        // the same record, and the removed leader gives way to the first target ISR member.
        let Decided::Partition(answered) = alter_isr(&mut image, vec![1, 2, 3, 4]).unwrap() else {
            panic!()
        };
        let done = p0(&image);
        assert_eq!(answered, done);
        assert_eq!(done.replicas, vec![2, 3, 4]);
        assert_eq!(done.isr, vec![2, 3, 4]);
        assert_eq!((done.leader, done.leader_epoch), (2, 1));
        assert!(!done.is_reassigning());
        assert!(ongoing(&mut image).is_empty());
    }

    #[test]
    fn a_target_already_in_sync_completes_at_once_and_the_same_replicas_change_nothing() {
        let mut image = with_topic(vec![vec![1, 2, 3], vec![1, 2, 3]]);
        assert_eq!(
            reassign(&mut image, vec![("t", 0, Some(vec![3, 2]))]),
            vec![0]
        );
        let p = p0(&image);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![3, 2], vec![2, 3])
        );
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (3, 1, 1));
        assert!(!p.is_reassigning());
        let index = image.applied_index;
        let same = ControllerCall::AlterPartitionReassignments {
            reassignments: vec![("t".into(), 1, Some(vec![1, 2, 3]))],
            allow_replication_factor_change: true,
        };
        let (records, _) = plan(&BrokerConfig::default(), &image, same).unwrap();
        assert!(records.is_empty());
        assert_eq!(image.applied_index, index);
    }

    #[test]
    fn cancelling_reverts_to_the_original_replicas_and_moves_an_adding_leader() {
        let mut image = with_topic(vec![vec![1, 2]]);
        assert_eq!(
            reassign(&mut image, vec![("t", 0, Some(vec![3, 4]))]),
            vec![0]
        );
        alter_isr(&mut image, vec![1, 2, 3]).unwrap();
        // Broker 1 is fenced: the first live ISR member in replica order, 3 (an adding
        // replica), leads.
        run(&mut image, ControllerCall::FenceBroker { id: 1, epoch: 1 }).unwrap();
        let p = p0(&image);
        assert_eq!((p.leader, p.isr.clone()), (3, vec![2, 3]));
        assert!(p.is_reassigning());
        assert_eq!(reassign(&mut image, vec![("t", 0, None)]), vec![0]);
        let reverted = p0(&image);
        assert_eq!(reverted.replicas, vec![1, 2]);
        assert_eq!((reverted.leader, reverted.isr.clone()), (2, vec![2]));
        assert_eq!(reverted.leader_epoch, p.leader_epoch + 1);
        assert!(reverted.partition_epoch > p.partition_epoch);
        assert!(!reverted.is_reassigning());
        assert_eq!(
            reassign(&mut image, vec![("t", 0, None)]),
            vec![ResponseError::NoReassignmentInProgress.code()]
        );
    }

    #[test]
    fn a_cancel_that_would_leave_no_original_replica_in_the_isr_is_refused() {
        let mut image = with_topic(vec![vec![1]]);
        assert_eq!(
            reassign(&mut image, vec![("t", 0, Some(vec![2, 3]))]),
            vec![0]
        );
        alter_isr(&mut image, vec![1, 2]).unwrap();
        run(&mut image, ControllerCall::FenceBroker { id: 1, epoch: 1 }).unwrap();
        assert_eq!((p0(&image).leader, p0(&image).isr), (2, vec![2]));
        assert_eq!(
            reassign(&mut image, vec![("t", 0, None)]),
            vec![ResponseError::InvalidReplicaAssignment.code()]
        );
    }

    #[test]
    fn an_election_record_completes_a_reassignment_it_makes_possible() {
        // A state built by hand: the ISR holds every target replica, but the reassignment was
        // not completed (as from a log written before completion existed).
        let mut image = with_topic(vec![vec![1, 2, 3]]);
        let stuck = PartitionState {
            replicas: vec![2, 3, 1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 5,
            isr: vec![1, 2, 3],
            adding_replicas: vec![],
            removing_replicas: vec![1],
        };
        image = image.apply(
            image.applied_index + 1,
            &MetadataBatch::new(vec![MetadataRecord::Partition {
                topic: "t".into(),
                partition: 0,
                state: stuck,
            }]),
        );
        run(
            &mut image,
            ControllerCall::ShutdownBroker { id: 1, epoch: 1 },
        )
        .unwrap();
        let p = p0(&image);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![2, 3], vec![2, 3])
        );
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (2, 1, 6));
        assert!(!p.is_reassigning());
    }

    #[test]
    fn list_answers_the_asked_partitions_that_are_reassigning() {
        let mut image = with_topic(vec![vec![1, 2], vec![1, 2]]);
        reassign(&mut image, vec![("t", 1, Some(vec![3, 4]))]);
        let call = ControllerCall::ListPartitionReassignments {
            partitions: Some(vec![("t".into(), 0), ("t".into(), 1), ("u".into(), 0)]),
        };
        let Decided::OngoingReassignments(list) = run(&mut image, call).unwrap() else {
            panic!()
        };
        assert_eq!(list.len(), 1);
        assert_eq!(
            (list[0].partition, list[0].replicas.clone()),
            (1, vec![3, 4, 1, 2])
        );
    }

    #[test]
    fn records_written_before_reassignments_existed_still_load() {
        let old =
            r#"{"replicas":[1,2],"leader":1,"leader_epoch":0,"partition_epoch":0,"isr":[1,2]}"#;
        let state: PartitionState = serde_json::from_str(old).unwrap();
        assert_eq!(state, PartitionState::new(vec![1, 2]));
        assert_eq!(serde_json::to_string(&state).unwrap(), old);
    }
}
