//! Every group API at every advertised version, through `handle_frame`: the request is encoded
//! by kafka-protocol at that version, and the response must encode (no field set that the
//! version lacks) and decode again.

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

use super::test_support::{
    broker, call, commit_t0, delete_group, offset_delete_request, s, topic, versions,
};

/// Consumer protocol subscription metadata (version prefix, then the v1 body).
fn subscription(topics: &[&str]) -> bytes::Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut buf = BytesMut::new();
    bytes::BufMut::put_i16(&mut buf, 1);
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_group_api_version_round_trips() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    for v in versions(ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req = req.with_coordinator_keys(vec![s("g"), s("h")]);
        } else {
            req = req.with_key(s("g"));
        }
        let r = call(&broker, v, req).await;
        if v >= 4 {
            assert_eq!(r.coordinators.len(), 2);
            assert_eq!(r.coordinators[0].port, broker.advertised.1);
        } else {
            assert_eq!((r.error_code, r.port), (0, broker.advertised.1));
        }
        if v >= 1 {
            let mut txn = FindCoordinatorRequest::default().with_key_type(1);
            txn = if v >= 4 {
                txn.with_coordinator_keys(vec![s("x")])
            } else {
                txn.with_key(s("x"))
            };
            let r = call(&broker, v, txn).await;
            let code = if v >= 4 {
                r.coordinators[0].error_code
            } else {
                r.error_code
            };
            assert_eq!(
                code,
                kafka_protocol::ResponseError::CoordinatorNotAvailable.code()
            );
        }
    }
    for v in versions(ApiKey::JoinGroup) {
        let group = format!("g{v}");
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&group)))
            .with_session_timeout_ms(10_000)
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(s("range"))
            .with_metadata(subscription(&["t"]))]);
        if v >= 1 {
            req = req.with_rebalance_timeout_ms(10_000);
        }
        let mut r = call(&broker, v, req.clone()).await;
        if v >= 4 {
            assert_eq!(
                r.error_code,
                kafka_protocol::ResponseError::MemberIdRequired.code()
            );
            r = call(&broker, v, req.with_member_id(r.member_id.clone())).await;
        }
        assert_eq!(r.error_code, 0, "JoinGroup v{v}");
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, r.member_id);
        assert_eq!(r.members.len(), 1);
        let member = r.member_id.clone();
        let assignment = sync_group_request::SyncGroupRequestAssignment::default()
            .with_member_id(member.clone())
            .with_assignment(bytes::Bytes::from_static(b"asg"));
        let sv = v.min(5);
        let sr = call(
            &broker,
            sv,
            SyncGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(1)
                .with_member_id(member.clone())
                .with_assignments(vec![assignment]),
        )
        .await;
        assert_eq!((sr.error_code, &sr.assignment[..]), (0, &b"asg"[..]));
        let hv = v.min(4);
        let hr = call(
            &broker,
            hv,
            HeartbeatRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id(1)
                .with_member_id(member.clone()),
        )
        .await;
        assert_eq!(hr.error_code, 0);
        // Commit and fetch back at every OffsetCommit/OffsetFetch version.
        for cv in versions(ApiKey::OffsetCommit) {
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id_or_member_epoch(1)
                .with_member_id(member.clone())
                .with_topics(commit_t0(cv as i64, |p| {
                    p.with_committed_metadata(Some(s("m")))
                }));
            let cr = call(&broker, cv, req).await;
            assert_eq!(
                cr.topics[0].partitions[0].error_code, 0,
                "OffsetCommit v{cv}"
            );
        }
        for fv in versions(ApiKey::OffsetFetch) {
            let req = if fv >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_topics(None),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s("t")))
                            .with_partition_indexes(vec![0, 1]),
                    ]))
            };
            let fr = call(&broker, fv, req).await;
            let last = *versions(ApiKey::OffsetCommit).end() as i64;
            if fv >= 8 {
                assert_eq!(fr.groups[0].topics[0].partitions[0].committed_offset, last);
            } else {
                let ps = &fr.topics[0].partitions;
                assert_eq!((ps[0].committed_offset, ps[1].committed_offset), (last, -1));
            }
        }
        for dv in versions(ApiKey::DescribeGroups) {
            let dr = call(
                &broker,
                dv,
                DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(s(&group)), GroupId(s("nope"))]),
            )
            .await;
            assert_eq!(dr.groups[0].group_state.as_str(), "Stable");
            assert_eq!(dr.groups[0].protocol_data.as_str(), "range");
            assert_eq!(dr.groups[1].group_state.as_str(), "Dead");
        }
        for lv in versions(ApiKey::ListGroups) {
            let mut req = ListGroupsRequest::default();
            if lv >= 4 {
                req = req.with_states_filter(vec![s("stable")]);
            }
            let lr = call(&broker, lv, req).await;
            assert!(lr.groups.iter().any(|g| g.group_id.as_str() == group));
        }
        assert_eq!(
            delete_group(&broker, v.min(2), &group).await,
            kafka_protocol::ResponseError::NonEmptyGroup.code()
        );
        let od = call(&broker, 0, offset_delete_request(&group)).await;
        assert_eq!(
            od.topics[0].partitions[0].error_code,
            kafka_protocol::ResponseError::GroupSubscribedToTopic.code(),
            "subscription must parse"
        );
        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(member.clone())
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(member.clone())
        };
        let lr = call(&broker, lv, leave).await;
        let code = if lv >= 3 {
            lr.members[0].error_code
        } else {
            lr.error_code
        };
        assert_eq!(code, 0);
        assert_eq!(delete_group(&broker, v.min(2), &group).await, 0);
    }
}
