//! Replica placement for new partitions: spread over the live (unfenced) brokers so each broker
//! holds about as many replicas, and is the preferred leader of about as many partitions, as
//! any other. No broker id is assumed; 1, 3 or 5 brokers (or 4, or 7) all work.
//!
//! The ring: brokers sorted by id. Partition `p` of a placement is led by the broker at ring
//! position `start + p`; its followers are the `rf - 1` other brokers that hold the fewest of
//! this placement's replicas so far (nearest after the leader on ties), so replica counts
//! differ by at most one. `start` is
//! the live broker that currently leads the fewest partitions (lowest id on ties), so creating
//! many one-partition topics still spreads leaders. Deterministic for a given image.

use std::collections::BTreeMap;

use crate::metadata::MetadataImage;

/// Replica lists for `count` new partitions with `replication_factor` replicas each, over
/// `live` (broker ids; must hold at least `replication_factor` of them).
pub fn place(
    image: &MetadataImage,
    live: &[i32],
    count: i32,
    replication_factor: usize,
) -> Vec<Vec<i32>> {
    let mut ring = live.to_vec();
    ring.sort_unstable();
    ring.dedup();
    let n = ring.len();
    assert!(
        n >= replication_factor && replication_factor >= 1,
        "caller checks the replication factor against the live brokers"
    );
    let mut leads: BTreeMap<i32, usize> = ring.iter().map(|b| (*b, 0)).collect();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if let Some(c) = p.replicas.first().and_then(|b| leads.get_mut(b)) {
                *c += 1;
            }
        }
    }
    let start = ring
        .iter()
        .enumerate()
        .min_by_key(|(_, b)| leads[b])
        .map_or(0, |(i, _)| i);
    // Replicas handed out by this placement, per ring position, leaderships counted up front.
    let mut held = vec![0usize; n];
    for p in 0..count as usize {
        held[(start + p) % n] += 1;
    }
    (0..count as usize)
        .map(|p| {
            let leader = (start + p) % n;
            let mut replicas = vec![ring[leader]];
            // Followers: the brokers holding the fewest replicas so far, nearest on the
            // ring after the leader first.
            let mut candidates: Vec<usize> = (1..n).map(|d| (leader + d) % n).collect();
            candidates.sort_by_key(|i| (held[*i], (*i + n - leader) % n));
            for i in candidates.into_iter().take(replication_factor - 1) {
                held[i] += 1;
                replicas.push(ring[i]);
            }
            replicas
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::metadata::records::{MetadataBatch, MetadataRecord, PartitionState};

    fn with_topic(image: &MetadataImage, name: &str, replicas: Vec<Vec<i32>>) -> MetadataImage {
        let mut records = vec![MetadataRecord::Topic {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            internal: false,
            configs: Default::default(),
        }];
        for (i, r) in replicas.into_iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic: name.into(),
                partition: i as i32,
                state: PartitionState::new(r),
            });
        }
        image.apply(image.applied_index + 1, &MetadataBatch::new(records))
    }

    fn counts(placements: &[Vec<i32>]) -> (HashMap<i32, usize>, HashMap<i32, usize>) {
        let mut leaders = HashMap::new();
        let mut replicas = HashMap::new();
        for p in placements {
            *leaders.entry(p[0]).or_default() += 1;
            for b in p {
                *replicas.entry(*b).or_default() += 1;
            }
        }
        (leaders, replicas)
    }

    #[test]
    fn spreads_leaders_and_replicas_evenly_for_1_3_and_5_brokers() {
        for brokers in [vec![1], vec![1, 2, 3], vec![3, 7, 9, 11, 20]] {
            let n = brokers.len();
            for rf in 1..=n.min(3) {
                let placed = place(&MetadataImage::default(), &brokers, (n * 4) as i32, rf);
                assert_eq!(placed.len(), n * 4);
                for p in &placed {
                    let mut unique = p.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    assert_eq!(unique.len(), rf, "no broker twice in {p:?}");
                    assert!(p.iter().all(|b| brokers.contains(b)));
                }
                let (leaders, replicas) = counts(&placed);
                for b in &brokers {
                    assert_eq!(leaders[b], 4, "{brokers:?} rf {rf}: leaders {leaders:?}");
                    assert_eq!(replicas[b], 4 * rf);
                }
            }
        }
    }

    #[test]
    fn uneven_counts_differ_by_at_most_one_leader() {
        let placed = place(&MetadataImage::default(), &[1, 2, 3, 4], 6, 2);
        let (leaders, replicas) = counts(&placed);
        let spread =
            |m: &HashMap<i32, usize>| m.values().max().unwrap() - m.values().min().unwrap();
        assert_eq!(leaders.len(), 4);
        assert!(spread(&leaders) <= 1);
        assert!(spread(&replicas) <= 1, "{replicas:?}");
    }

    #[test]
    fn single_partition_topics_still_spread_leaders() {
        let mut image = MetadataImage::default();
        for i in 0..6 {
            let placed = place(&image, &[1, 2, 3], 1, 1);
            image = with_topic(&image, &format!("t{i}"), placed);
        }
        let all: Vec<Vec<i32>> = image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| p.replicas.clone()))
            .collect();
        let (leaders, _) = counts(&all);
        assert_eq!(leaders, HashMap::from([(1, 2), (2, 2), (3, 2)]));
    }

    #[test]
    fn fenced_brokers_are_simply_not_offered() {
        let placed = place(&MetadataImage::default(), &[2, 3], 4, 2);
        assert!(placed.iter().flatten().all(|b| *b != 1));
    }
}
