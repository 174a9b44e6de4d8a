//! Leader election and ISR changes, as pure functions over the image (Kafka's
//! `PartitionChangeBuilder` and the election parts of `ReplicationControlManager`).
//!
//! Only the controller elects, and only when the image changes what may lead: a broker fenced,
//! shutting down or restarted (`remove_broker`), a broker unfenced (`broker_unfenced`), an
//! ElectLeaders request or the leader balancer (`elect_leader`, `imbalanced`). No broker runs
//! timers of its own for partitions. A leader must be live (registered, not fenced) and in the
//! ISR; only an unclean election (`unclean.leader.election.enable`, or ElectLeaders UNCLEAN)
//! may pick a replica outside the ISR, which then becomes the whole ISR.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use crate::config::BrokerConfig;
use crate::metadata::broker_config::effective_log_defaults;
use crate::metadata::image::TopicImage;
use crate::metadata::records::{MetadataRecord, PartitionState};
use crate::metadata::MetadataImage;

/// How a leader may be chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    /// Keep a leader that may still lead, else the first live ISR member in replica order.
    Clean,
    /// As `Clean`, then the first live replica, whose log may lack acknowledged records.
    Unclean,
    /// The first replica if it is live and in the ISR, else as `Clean`.
    Preferred,
}

/// The state once the ISR is `isr` and a leader is elected by `election`, or None when nothing
/// changes. The leader epoch moves with every leader change (to -1 too), the partition epoch
/// with any change.
pub fn change(
    state: &PartitionState,
    isr: Vec<i32>,
    election: Election,
    live: &impl Fn(i32) -> bool,
) -> Option<PartitionState> {
    let eligible = |b: i32| b >= 0 && isr.contains(&b) && live(b);
    let preferred = state.replicas.first().copied().filter(|p| eligible(*p));
    let clean = if eligible(state.leader) {
        Some(state.leader)
    } else {
        state.replicas.iter().copied().find(|b| eligible(*b))
    };
    let (leader, isr) = match (election, preferred, clean) {
        (Election::Preferred, Some(p), _) => (p, isr),
        (_, _, Some(leader)) => (leader, isr),
        (Election::Unclean, _, None) => match state.replicas.iter().copied().find(|b| live(*b)) {
            Some(b) => (b, vec![b]),
            None => (-1, isr),
        },
        (_, _, None) => (-1, isr),
    };
    if leader == state.leader && isr == state.isr {
        return None;
    }
    Some(PartitionState {
        leader,
        leader_epoch: state.leader_epoch + i32::from(leader != state.leader),
        partition_epoch: state.partition_epoch + 1,
        isr,
        ..state.clone()
    })
}

/// Whether `topic` allows unclean elections: its override, else the broker default (static,
/// or dynamic as this controller sees it).
fn unclean_enabled(topic: &TopicImage, default: bool) -> bool {
    topic
        .configs
        .get("unclean.leader.election.enable")
        .map_or(default, |v| v == "true")
}

/// A broker may lead when it is registered and not fenced.
pub fn is_live(image: &MetadataImage, broker: i32) -> bool {
    image.brokers.get(&broker).is_some_and(|b| !b.fenced)
}

/// Records that take `broker` out of every ISR and move its leaderships away, because it may
/// no longer lead: fenced, shutting down, or restarted as a new incarnation. The last ISR member
/// stays (as in Kafka: it is the one replica known to have every acknowledged record), with no
/// leader unless an unclean election finds one.
pub fn remove_broker(
    config: &BrokerConfig,
    image: &MetadataImage,
    broker: i32,
) -> Vec<MetadataRecord> {
    let live = |b: i32| b != broker && is_live(image, b);
    changes(config, image, |state, unclean| {
        if state.leader != broker && !state.isr.contains(&broker) {
            return None;
        }
        let mut isr: Vec<i32> = state.isr.iter().copied().filter(|b| *b != broker).collect();
        if isr.is_empty() {
            isr.clone_from(&state.isr);
        }
        change(state, isr, clean_or_unclean(unclean), &live)
    })
}

/// Records electing a leader for leaderless partitions now that `broker` is live again: it
/// leads those whose ISR holds it, and, where unclean election is allowed, any it is a
/// replica of.
pub fn broker_unfenced(
    config: &BrokerConfig,
    image: &MetadataImage,
    broker: i32,
) -> Vec<MetadataRecord> {
    let live = |b: i32| b == broker || is_live(image, b);
    changes(config, image, |state, unclean| {
        if state.leader != -1 || !state.replicas.contains(&broker) {
            return None;
        }
        change(state, state.isr.clone(), clean_or_unclean(unclean), &live)
    })
}

fn clean_or_unclean(unclean: bool) -> Election {
    if unclean {
        Election::Unclean
    } else {
        Election::Clean
    }
}

/// One `Partition` record per partition `update` changes; `update` gets the state and whether
/// the topic allows unclean elections.
fn changes(
    config: &BrokerConfig,
    image: &MetadataImage,
    update: impl Fn(&PartitionState, bool) -> Option<PartitionState>,
) -> Vec<MetadataRecord> {
    let default =
        effective_log_defaults(config, image, config.node_id).unclean_leader_election_enable;
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_enabled(topic, default);
        for (i, state) in topic.partitions.iter().enumerate() {
            if let Some(state) = update(state, unclean) {
                records.push(MetadataRecord::Partition {
                    topic: topic.name.clone(),
                    partition: i as i32,
                    state,
                });
            }
        }
    }
    records
}

/// ElectLeaders for one partition, as Kafka answers it: the new state, or the error code.
/// PREFERRED is not needed when the first replica leads; UNCLEAN when there is a leader.
pub fn elect_leader(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    preferred: bool,
) -> Result<PartitionState, ResponseError> {
    let state = image
        .partition(topic, partition)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    let not_needed = if preferred {
        state.replicas.first() == Some(&state.leader)
    } else {
        state.leader >= 0
    };
    if not_needed {
        return Err(ResponseError::ElectionNotNeeded);
    }
    let election = if preferred {
        Election::Preferred
    } else {
        Election::Unclean
    };
    let live = |b: i32| is_live(image, b);
    change(state, state.isr.clone(), election, &live).ok_or(if preferred {
        ResponseError::PreferredLeaderNotAvailable
    } else {
        ResponseError::EligibleLeadersNotAvailable
    })
}

/// The partitions the leader balancer moves back to their preferred leader: for every live
/// broker that is the preferred leader (first replica) of partitions it does not lead, more than
/// `percentage` percent of its preferred ones, those where it is in the ISR (as Kafka's
/// `leader.imbalance.per.broker.percentage`).
pub fn imbalanced(image: &MetadataImage, percentage: u32) -> Vec<(String, i32)> {
    /// Per preferred leader: partitions it prefers, those it does not lead, and of these the
    /// ones whose ISR holds it.
    #[derive(Default)]
    struct Tally {
        preferred: usize,
        not_led: usize,
        movable: Vec<(String, i32)>,
    }
    let mut per_broker: BTreeMap<i32, Tally> = BTreeMap::new();
    for topic in image.topics.values() {
        for (i, state) in topic.partitions.iter().enumerate() {
            let Some(&preferred) = state.replicas.first() else {
                continue;
            };
            let tally = per_broker.entry(preferred).or_default();
            tally.preferred += 1;
            if state.leader != preferred {
                tally.not_led += 1;
                if state.isr.contains(&preferred) {
                    tally.movable.push((topic.name.clone(), i as i32));
                }
            }
        }
    }
    per_broker
        .into_iter()
        .filter(|(broker, t)| {
            t.not_led * 100 > t.preferred * percentage as usize && is_live(image, *broker)
        })
        .flat_map(|(_, t)| t.movable)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::MetadataBatch;
    use std::sync::Arc;

    fn state(replicas: &[i32], leader: i32, isr: &[i32]) -> PartitionState {
        PartitionState {
            replicas: replicas.to_vec(),
            leader,
            leader_epoch: 3,
            partition_epoch: 7,
            isr: isr.to_vec(),
            adding_replicas: vec![],
            removing_replicas: vec![],
        }
    }

    fn all_live(_: i32) -> bool {
        true
    }

    #[test]
    fn a_leader_that_may_still_lead_is_kept_and_only_the_partition_epoch_moves() {
        let s = state(&[1, 2, 3], 2, &[1, 2, 3]);
        let next = change(&s, vec![2, 3], Election::Clean, &all_live).unwrap();
        assert_eq!(
            (next.leader, next.leader_epoch, next.partition_epoch),
            (2, 3, 8)
        );
        assert_eq!(next.isr, vec![2, 3]);
        assert!(change(&s, s.isr.clone(), Election::Clean, &all_live).is_none());
    }

    #[test]
    fn a_new_leader_is_the_first_live_isr_member_in_replica_order() {
        let s = state(&[1, 2, 3], 1, &[3, 2, 1]);
        let live = |b: i32| b != 1;
        let next = change(&s, vec![3, 2], Election::Clean, &live).unwrap();
        assert_eq!(
            (next.leader, next.leader_epoch, next.partition_epoch),
            (2, 4, 8)
        );
        // A live replica outside the ISR does not lead a clean election.
        let s = state(&[1, 2, 3], 1, &[1, 3]);
        let live = |b: i32| b == 2;
        let next = change(&s, vec![1, 3], Election::Clean, &live).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (-1, 4));
        assert_eq!(next.isr, vec![1, 3]);
    }

    #[test]
    fn unclean_election_takes_the_first_live_replica_as_the_whole_isr() {
        let s = state(&[1, 2, 3], 1, &[1]);
        let live = |b: i32| b == 3;
        let next = change(&s, vec![1], Election::Unclean, &live).unwrap();
        assert_eq!((next.leader, next.isr.clone()), (3, vec![3]));
        let none_live = |_| false;
        let next = change(&s, vec![1], Election::Unclean, &none_live).unwrap();
        assert_eq!((next.leader, next.isr), (-1, vec![1]));
    }

    #[test]
    fn preferred_election_prefers_the_first_replica_then_keeps_the_leader() {
        let s = state(&[1, 2, 3], 2, &[1, 2, 3]);
        let next = change(&s, s.isr.clone(), Election::Preferred, &all_live).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (1, 4));
        let s = state(&[1, 2, 3], 2, &[2, 3]);
        assert!(change(&s, s.isr.clone(), Election::Preferred, &all_live).is_none());
    }

    fn cluster(brokers: &[i32], topics: &[(&str, Vec<PartitionState>)]) -> MetadataImage {
        let mut records = Vec::new();
        for id in brokers {
            records.push(MetadataRecord::RegisterBroker {
                id: *id,
                epoch: 1,
                host: "h".into(),
                port: 1,
                listeners: Vec::new(),
            });
            records.push(MetadataRecord::BrokerFencing {
                id: *id,
                epoch: 1,
                fenced: false,
            });
        }
        for (name, partitions) in topics {
            records.push(MetadataRecord::Topic {
                name: name.to_string(),
                id: uuid::Uuid::new_v4(),
                internal: false,
                configs: BTreeMap::new(),
            });
            for (i, s) in partitions.iter().enumerate() {
                records.push(MetadataRecord::Partition {
                    topic: name.to_string(),
                    partition: i as i32,
                    state: s.clone(),
                });
            }
        }
        MetadataImage::default().apply(1, &MetadataBatch::new(records))
    }

    fn fence(image: &MetadataImage, id: i32) -> MetadataImage {
        image.apply(
            image.applied_index + 1,
            &MetadataBatch::new(vec![MetadataRecord::BrokerFencing {
                id,
                epoch: 1,
                fenced: true,
            }]),
        )
    }

    #[test]
    fn removing_a_broker_keeps_the_last_isr_member_and_leaves_others_alone() {
        let image = cluster(
            &[1, 2],
            &[(
                "t",
                vec![
                    state(&[1, 2], 1, &[1, 2]),
                    state(&[1, 2], 1, &[1]),
                    state(&[2, 1], 2, &[2]),
                ],
            )],
        );
        let records = remove_broker(&BrokerConfig::default(), &image, 1);
        let image = image.apply(2, &MetadataBatch::new(records.clone()));
        assert_eq!(records.len(), 2, "partition 2 does not involve broker 1");
        let p0 = image.partition("t", 0).unwrap();
        assert_eq!(
            (p0.leader, p0.isr.clone(), p0.leader_epoch),
            (2, vec![2], 4)
        );
        let p1 = image.partition("t", 1).unwrap();
        assert_eq!(
            (p1.leader, p1.isr.clone(), p1.leader_epoch),
            (-1, vec![1], 4)
        );
    }

    #[test]
    fn an_unfenced_broker_leads_the_leaderless_partitions_whose_isr_holds_it() {
        let image = cluster(&[1, 2], &[("t", vec![state(&[1, 2], 1, &[1])])]);
        let image = fence(&image, 1);
        let image = image.apply(
            3,
            &MetadataBatch::new(remove_broker(&BrokerConfig::default(), &image, 1)),
        );
        assert_eq!(image.partition("t", 0).unwrap().leader, -1);
        // Broker 2 is live but out of the ISR: no clean election for it.
        assert!(broker_unfenced(&BrokerConfig::default(), &image, 2).is_empty());
        let records = broker_unfenced(&BrokerConfig::default(), &image, 1);
        let image = image.apply(4, &MetadataBatch::new(records));
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch, p.isr.clone()), (1, 5, vec![1]));
    }

    #[test]
    fn unclean_election_follows_the_topic_config_then_the_broker_default() {
        let image = cluster(&[1, 2], &[("t", vec![state(&[1, 2], -1, &[1])])]);
        let mut image = fence(&image, 1);
        let config = BrokerConfig::default();
        assert!(broker_unfenced(&config, &image, 2).is_empty());
        let mut unclean = config.clone();
        unclean.log.unclean_leader_election_enable = true;
        assert_eq!(broker_unfenced(&unclean, &image, 2).len(), 1);
        Arc::make_mut(image.topics.get_mut("t").unwrap())
            .configs
            .insert("unclean.leader.election.enable".into(), "true".into());
        let records = broker_unfenced(&config, &image, 2);
        let image = image.apply(2, &MetadataBatch::new(records));
        let p = image.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn elect_leader_answers_kafka_codes() {
        let image = cluster(
            &[1, 2, 3],
            &[(
                "t",
                vec![
                    state(&[1, 2], 1, &[1, 2]),
                    state(&[1, 2], 2, &[1, 2]),
                    state(&[3, 2], 2, &[2]),
                    state(&[1, 2], -1, &[1]),
                ],
            )],
        );
        let image = fence(&image, 1);
        let elect = |p, preferred| elect_leader(&image, "t", p, preferred);
        assert_eq!(elect(0, true), Err(ResponseError::ElectionNotNeeded));
        // Broker 1 is fenced, so partition 1 cannot move to it.
        assert_eq!(
            elect(1, true),
            Err(ResponseError::PreferredLeaderNotAvailable)
        );
        assert_eq!(
            elect(2, true),
            Err(ResponseError::PreferredLeaderNotAvailable)
        );
        assert_eq!(
            elect(3, true),
            Err(ResponseError::PreferredLeaderNotAvailable)
        );
        assert_eq!(elect(2, false), Err(ResponseError::ElectionNotNeeded));
        let unclean = elect(3, false).unwrap();
        assert_eq!((unclean.leader, unclean.isr), (2, vec![2]));
        assert_eq!(elect(9, true), Err(ResponseError::UnknownTopicOrPartition));
        assert_eq!(
            elect_leader(&image, "nope", 0, true),
            Err(ResponseError::UnknownTopicOrPartition)
        );
        let image = cluster(&[1, 2], &[("t", vec![state(&[1, 2], 2, &[1, 2])])]);
        let moved = elect_leader(&image, "t", 0, true).unwrap();
        assert_eq!((moved.leader, moved.leader_epoch), (1, 4));
    }

    #[test]
    fn imbalance_selects_preferred_leaders_over_the_threshold_that_can_lead() {
        // Broker 1 prefers 4 partitions and leads 2 (50%); broker 2 prefers 10 and leads 9 (10%).
        let mut partitions = vec![
            state(&[1, 2], 1, &[1, 2]),
            state(&[1, 2], 1, &[1, 2]),
            state(&[1, 2], 2, &[1, 2]),
            state(&[1, 2], 2, &[2]),
        ];
        partitions.extend((0..9).map(|_| state(&[2, 1], 2, &[1, 2])));
        partitions.push(state(&[2, 1], 1, &[1, 2]));
        let image = cluster(&[1, 2], &[("t", partitions)]);
        assert_eq!(imbalanced(&image, 10), vec![("t".to_string(), 2)]);
        assert_eq!(imbalanced(&image, 50), vec![]);
        let moves = imbalanced(&image, 5);
        assert_eq!(moves, vec![("t".to_string(), 2), ("t".to_string(), 13)]);
        assert!(imbalanced(&fence(&image, 1), 10).is_empty());
    }
}
