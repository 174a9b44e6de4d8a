//! What a partition's leader knows of its followers, and the rules Kafka derives from it
//! (`Partition`/`Replica` in Kafka's broker): each follower's log end as its last fetch
//! reported it, when it last caught up, the high watermark over the ISR, and which followers
//! should leave or join the ISR. Pure: no I/O, no clock, no locks; `Partition` holds it under
//! a mutex and the ISR task proposes what it suggests to the controller.

use std::collections::HashMap;

/// One follower as its fetches report it.
#[derive(Clone, Copy, Debug)]
struct Progress {
    /// Its fetch offset: it holds everything below. -1 until it fetches under this leader.
    log_end: i64,
    /// The last time its log end reached the leader's (Kafka's lastCaughtUpTimeMs).
    last_caught_up_ms: i64,
    /// The leader's log end and the time at its previous fetch.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

/// The leader's side of one partition under one leader epoch.
#[derive(Debug)]
pub struct LeaderState {
    node_id: i32,
    /// The committed ISR (the metadata image's), the leader included.
    isr: Vec<i32>,
    /// An ISR proposed to the controller and not committed yet. Kafka's "maximal ISR": while
    /// an expansion is pending its new member already counts for the high watermark, so the
    /// watermark never passes what a member of the ISR about to be committed lacks.
    proposed: Option<Vec<i32>>,
    followers: HashMap<i32, Progress>,
}

impl LeaderState {
    /// Becoming leader at `now_ms`: every follower in the ISR gets a full lag interval to
    /// fetch before it counts as lagging (its log end is unknown until it does).
    pub fn new(node_id: i32, replicas: &[i32], isr: Vec<i32>, now_ms: i64) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|&&r| r != node_id)
            .map(|&r| {
                let progress = Progress {
                    log_end: -1,
                    last_caught_up_ms: if isr.contains(&r) { now_ms } else { 0 },
                    last_fetch_leader_end: -1,
                    last_fetch_ms: 0,
                };
                (r, progress)
            })
            .collect();
        LeaderState {
            node_id,
            isr,
            proposed: None,
            followers,
        }
    }

    /// The metadata image committed a new ISR (ours or the controller's): any proposal is
    /// settled, committed or refused.
    pub fn set_isr(&mut self, replicas: &[i32], isr: Vec<i32>) {
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in replicas.iter().filter(|&&r| r != self.node_id) {
            self.followers.entry(r).or_insert(Progress {
                log_end: -1,
                last_caught_up_ms: 0,
                last_fetch_leader_end: -1,
                last_fetch_ms: 0,
            });
        }
        self.isr = isr;
        self.proposed = None;
    }

    /// A proposal failed (refused or not answered): the next check may propose again.
    pub fn proposal_failed(&mut self) {
        self.proposed = None;
    }

    /// A fetch from `replica` at `fetch_offset` while the leader's log ends at `leader_end`
    /// (Kafka's `updateFetchState`). False when `replica` is not one of the replicas.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(p) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= p.last_fetch_leader_end {
            // It holds all the leader had at its previous fetch: caught up as of then.
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.log_end = fetch_offset;
        p.last_fetch_leader_end = leader_end;
        p.last_fetch_ms = now_ms;
        true
    }

    /// The high watermark: the least log end over the ISR (with a pending expansion's new
    /// members), the leader's own counted as `leader_durable_end` — never past what the leader
    /// made durable under its flush policy.
    pub fn high_watermark(&self, leader_durable_end: i64) -> i64 {
        let proposed = self.proposed.iter().flatten();
        self.isr
            .iter()
            .chain(proposed)
            .filter(|&&r| r != self.node_id)
            .map(|r| self.followers.get(r).map_or(-1, |p| p.log_end))
            .fold(leader_durable_end, i64::min)
    }

    /// The ISR without the followers that have not caught up within `lag_max_ms`, if any
    /// should leave (Kafka's `getOutOfSyncReplicas`; time-based, never a message count). The
    /// proposal is recorded; nothing is proposed while another is pending.
    pub fn propose_shrink(&mut self, now_ms: i64, lag_max_ms: i64) -> Option<Vec<i32>> {
        if self.proposed.is_some() {
            return None;
        }
        let lagging = |r: &i32| {
            *r != self.node_id
                && self
                    .followers
                    .get(r)
                    .is_none_or(|p| now_ms - p.last_caught_up_ms > lag_max_ms)
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        let isr: Vec<i32> = self.isr.iter().copied().filter(|r| !lagging(r)).collect();
        self.proposed = Some(isr.clone());
        Some(isr)
    }

    /// The ISR with the followers that caught up: a log end at or past the high watermark
    /// and past the start of the leader's current epoch (so it holds this leader's first
    /// batch), recently caught up. Recorded as the pending proposal.
    pub fn propose_expand(
        &mut self,
        high_watermark: i64,
        epoch_start: i64,
        now_ms: i64,
        lag_max_ms: i64,
    ) -> Option<Vec<i32>> {
        if self.proposed.is_some() {
            return None;
        }
        let mut joining: Vec<i32> = self
            .followers
            .iter()
            .filter(|(r, p)| {
                !self.isr.contains(r)
                    && p.log_end >= high_watermark
                    && p.log_end >= epoch_start
                    && now_ms - p.last_caught_up_ms <= lag_max_ms
            })
            .map(|(r, _)| *r)
            .collect();
        if joining.is_empty() {
            return None;
        }
        joining.sort_unstable();
        let mut isr = self.isr.clone();
        isr.extend(joining);
        self.proposed = Some(isr.clone());
        Some(isr)
    }

    /// Each replica's log end as the leader knows it (-1: not fetched yet), for the admin
    /// command and metrics; the leader's own is `leader_end`.
    pub fn replica_ends(&self, leader_end: i64) -> Vec<(i32, i64)> {
        let mut ends: Vec<(i32, i64)> = self
            .followers
            .iter()
            .map(|(r, p)| (*r, p.log_end))
            .collect();
        ends.push((self.node_id, leader_end));
        ends.sort_unstable();
        ends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    fn leader() -> LeaderState {
        LeaderState::new(1, &[1, 2, 3], vec![1, 2, 3], 1_000)
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member_and_the_leaders_durable_end() {
        let mut s = leader();
        assert_eq!(s.high_watermark(10), -1, "followers not heard from yet");
        s.record_fetch(2, 10, 10, 1_100);
        s.record_fetch(3, 7, 10, 1_100);
        assert_eq!(s.high_watermark(10), 7);
        assert_eq!(
            s.high_watermark(5),
            5,
            "never past the leader's durable end"
        );
        s.set_isr(&[1, 2, 3], vec![1, 2]);
        assert_eq!(s.high_watermark(10), 10, "3 left the ISR");
    }

    #[test]
    fn an_idle_follower_fetching_at_the_end_stays_in_sync() {
        let mut s = leader();
        for t in 0..100 {
            let now = 1_000 + t * 500;
            s.record_fetch(2, 10, 10, now);
            s.record_fetch(3, 10, 10, now);
            assert_eq!(s.propose_shrink(now, LAG), None);
        }
    }

    #[test]
    fn a_follower_that_stops_fetching_leaves_after_the_lag_time_not_before() {
        let mut s = leader();
        s.record_fetch(2, 10, 10, 1_000);
        s.record_fetch(3, 10, 10, 1_000);
        s.record_fetch(2, 20, 20, 1_000 + LAG);
        assert_eq!(s.propose_shrink(1_000 + LAG, LAG), None);
        assert_eq!(s.propose_shrink(1_001 + LAG, LAG), Some(vec![1, 2]));
        assert_eq!(
            s.propose_shrink(1_002 + LAG, LAG),
            None,
            "one proposal at a time"
        );
        s.proposal_failed();
        assert_eq!(s.propose_shrink(1_003 + LAG, LAG), Some(vec![1, 2]));
    }

    #[test]
    fn a_follower_behind_but_keeping_up_with_each_fetch_is_caught_up_as_of_its_last_fetch() {
        let mut s = leader();
        // Under steady load the leader is always a little ahead of every fetch.
        let mut leader_end = 100;
        for t in 1..200 {
            let now = 1_000 + t * 400;
            s.record_fetch(2, leader_end, leader_end + 50, now);
            leader_end += 50;
        }
        s.record_fetch(3, leader_end, leader_end, 1_000 + 200 * 400);
        assert_eq!(s.propose_shrink(1_000 + 200 * 400, LAG), None);
    }

    #[test]
    fn a_caught_up_follower_rejoins_and_counts_for_the_watermark_while_pending() {
        let mut s = LeaderState::new(1, &[1, 2, 3], vec![1, 2], 1_000);
        s.record_fetch(2, 50, 50, 2_000);
        s.record_fetch(3, 30, 50, 2_000);
        assert_eq!(
            s.propose_expand(50, 0, 2_000, LAG),
            None,
            "3 is behind the HW"
        );
        s.record_fetch(3, 50, 50, 2_500);
        assert_eq!(
            s.propose_expand(50, 60, 2_500, LAG),
            None,
            "not past the epoch start"
        );
        assert_eq!(s.propose_expand(50, 0, 2_500, LAG), Some(vec![1, 2, 3]));
        s.record_fetch(2, 70, 70, 2_600);
        assert_eq!(
            s.high_watermark(70),
            50,
            "the joining member already counts"
        );
        s.set_isr(&[1, 2, 3], vec![1, 2, 3]);
        s.record_fetch(3, 60, 70, 2_700);
        assert_eq!(s.high_watermark(70), 60, "3 is in the committed ISR");
        // The proposal is settled: a new one can be made (3 stops fetching).
        assert_eq!(s.propose_shrink(2_800 + LAG, LAG), Some(vec![1]));
    }

    #[test]
    fn fetches_from_strangers_are_not_recorded() {
        let mut s = leader();
        assert!(!s.record_fetch(9, 10, 10, 1_000));
        assert_eq!(s.replica_ends(10), vec![(1, 10), (2, -1), (3, -1)]);
    }
}
