use super::*;

fn settings() -> GroupSettings {
    GroupSettings {
        initial_rebalance_delay: Duration::ZERO,
    }
}

fn join_req(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 6000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(p.to_string())))
            .collect(),
        require_known_member_id: true,
    }
}

fn ready<T>(p: Pending<T>) -> T {
    match p {
        Pending::Ready(t) => t,
        Pending::Wait(mut rx) => rx.try_recv().expect("answered"),
    }
}

fn waiting<T>(p: Pending<T>) -> oneshot::Receiver<T> {
    match p {
        Pending::Wait(rx) => rx,
        Pending::Ready(_) => panic!("expected to wait"),
    }
}

/// KIP-394 join: get a member id, then join with it.
fn join_new(g: &mut Group, protocols: &[&str], now: Instant) -> (String, Pending<JoinOutcome>) {
    let first = ready(g.join(join_req("", protocols), now, &settings()));
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let id = first.member_id.clone();
    (
        id.clone(),
        g.join(join_req(&id, protocols), now, &settings()),
    )
}

#[tokio::test]
async fn single_member_joins_syncs_and_becomes_stable() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let (id, p) = join_new(&mut g, &["range"], now);
    let joined = ready(p);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(g.state, GroupState::CompletingRebalance);
    let synced = ready(g.sync(
        &id,
        None,
        1,
        None,
        None,
        vec![(id.clone(), Bytes::from_static(b"a"))],
        now,
    ));
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"a");
    assert_eq!(g.state, GroupState::Stable);
    assert_eq!(g.heartbeat(&id, None, 1, now), 0);
    assert_eq!(
        g.heartbeat(&id, None, 0, now),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        g.heartbeat("nobody", None, 1, now),
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn second_member_triggers_rebalance_and_protocol_is_voted() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let (a, p) = join_new(&mut g, &["range", "roundrobin"], now);
    ready(p);
    ready(g.sync(&a, None, 1, None, None, vec![], now));
    // b prefers roundrobin; a (leader) must rejoin.
    let (b, pb) = join_new(&mut g, &["roundrobin", "range"], now);
    let mut rb = waiting(pb);
    assert_eq!(g.state, GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat(&a, None, 1, now),
        ResponseError::RebalanceInProgress.code()
    );
    let ja = ready(g.join(join_req(&a, &["range", "roundrobin"]), now, &settings()));
    let jb = rb.try_recv().unwrap();
    assert_eq!(ja.generation_id, 2);
    assert_eq!(jb.generation_id, 2);
    assert_eq!(ja.leader, a);
    assert_eq!(ja.members.len(), 2);
    assert!(jb.members.is_empty());
    // One vote each: the tie goes to the first candidate in preference order.
    assert_eq!(ja.protocol_name.as_deref(), Some("range"));
    // The follower's sync waits for the leader's.
    let mut sb = waiting(g.sync(&b, None, 2, None, None, vec![], now));
    let sa = ready(g.sync(
        &a,
        None,
        2,
        None,
        None,
        vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ],
        now,
    ));
    assert_eq!(&sa.assignment[..], b"A");
    assert_eq!(&sb.try_recv().unwrap().assignment[..], b"B");
    assert_eq!(g.state, GroupState::Stable);
    // Incompatible protocols are refused.
    let bad = ready(g.join(join_req("", &["sticky"]), now, &settings()));
    assert_eq!(
        bad.error_code,
        ResponseError::InconsistentGroupProtocol.code()
    );
}

#[tokio::test]
async fn members_that_do_not_rejoin_are_removed_at_the_rebalance_timeout() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let (a, p) = join_new(&mut g, &["range"], now);
    ready(p);
    ready(g.sync(&a, None, 1, None, None, vec![], now));
    let (b, pb) = join_new(&mut g, &["range"], now);
    let mut rb = waiting(pb);
    // a never rejoins: at the rebalance timeout it is dropped and b completes alone.
    let later = now + Duration::from_secs(11);
    g.tick(later, &settings());
    let jb = rb.try_recv().unwrap();
    assert_eq!(jb.generation_id, 2);
    assert_eq!(jb.leader, b);
    assert!(!g.members.contains_key(&a));
}

#[tokio::test]
async fn session_timeout_removes_a_silent_member_and_rebalances() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let (a, p) = join_new(&mut g, &["range"], now);
    ready(p);
    ready(g.sync(&a, None, 1, None, None, vec![], now));
    let next = g.tick(now, &settings()).unwrap();
    assert!(next > now);
    g.tick(now + Duration::from_secs(7), &settings());
    assert!(g.members.is_empty());
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(g.generation, 2);
}

#[tokio::test]
async fn leave_rebalances_and_last_leave_empties_the_group() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let (a, p) = join_new(&mut g, &["range"], now);
    ready(p);
    ready(g.sync(&a, None, 1, None, None, vec![], now));
    assert_eq!(g.leave(&a, None, now, &settings()), 0);
    assert_eq!(g.state, GroupState::Empty);
    assert_eq!(
        g.leave(&a, None, now, &settings()),
        ResponseError::UnknownMemberId.code()
    );
}

#[tokio::test]
async fn static_member_rejoin_keeps_the_generation() {
    let now = Instant::now();
    let mut g = Group::new("g");
    let mut req = join_req("", &["range"]);
    req.group_instance_id = Some("i1".into());
    // A static member gets its id without MEMBER_ID_REQUIRED.
    let joined = ready(g.join(req.clone(), now, &settings()));
    assert_eq!(joined.error_code, 0);
    let old = joined.member_id.clone();
    ready(g.sync(
        &old,
        Some("i1"),
        1,
        None,
        None,
        vec![(old.clone(), Bytes::from_static(b"x"))],
        now,
    ));
    // Restarted within the session timeout: new member id, same generation, no rebalance.
    let again = ready(g.join(req, now, &settings()));
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, 1);
    assert_ne!(again.member_id, old);
    assert_eq!(g.state, GroupState::Stable);
    // The old member id is fenced.
    assert_eq!(
        g.heartbeat(&old, Some("i1"), 1, now),
        ResponseError::UnknownMemberId.code()
    );
    let synced = ready(g.sync(&again.member_id, Some("i1"), 1, None, None, vec![], now));
    assert_eq!(&synced.assignment[..], b"x");
}

#[tokio::test]
async fn initial_delay_holds_the_first_rebalance() {
    let now = Instant::now();
    let delayed = GroupSettings {
        initial_rebalance_delay: Duration::from_millis(3000),
    };
    let mut g = Group::new("g");
    let mut req = join_req("", &["range"]);
    req.require_known_member_id = false;
    let mut rx = waiting(g.join(req, now, &delayed));
    assert!(rx.try_recv().is_err());
    g.tick(now + Duration::from_millis(2999), &delayed);
    assert!(rx.try_recv().is_err());
    g.tick(now + Duration::from_millis(3000), &delayed);
    assert_eq!(rx.try_recv().unwrap().generation_id, 1);
}

#[tokio::test]
async fn commits_are_fenced_by_generation_and_membership() {
    let now = Instant::now();
    let mut g = Group::new("g");
    assert!(g.validate_commit("", None, -1, now).is_ok());
    let (a, p) = join_new(&mut g, &["range"], now);
    ready(p);
    assert_eq!(
        g.validate_commit(&a, None, 1, now),
        Err(ResponseError::RebalanceInProgress)
    );
    ready(g.sync(&a, None, 1, None, None, vec![], now));
    assert!(g.validate_commit(&a, None, 1, now).is_ok());
    assert_eq!(
        g.validate_commit(&a, None, 0, now),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        g.validate_commit("x", None, 1, now),
        Err(ResponseError::UnknownMemberId)
    );
}
