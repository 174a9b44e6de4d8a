//! Every group API at every advertised version, through `handle_frame`: the request is encoded
//! by kafka-protocol at that version, and the response must encode (no field set that the
//! version lacks) and decode again.

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::*;
use crate::config::{BrokerConfig, FlushPolicy};

pub(super) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub(super) fn broker() -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        offsets_topic_num_partitions: 2,
        flush_policy: FlushPolicy::Os,
        group_initial_rebalance_delay_ms: 0,
        ..Default::default()
    };
    let broker = Broker::open(config).unwrap();
    (dir, broker)
}

pub(super) async fn call(
    broker: &Arc<Broker>,
    key: ApiKey,
    version: i16,
    request: RequestKind,
) -> ResponseKind {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    request.encode(&mut buf, version).unwrap();
    match handle_frame(
        broker.clone(),
        Arc::new(Session::anonymous(None)),
        buf.freeze(),
    )
    .await
    {
        Outcome::Respond(mut frame) => {
            let size = frame.get_i32() as usize;
            assert_eq!(size, frame.len());
            let header =
                ResponseHeader::decode(&mut frame, key.response_header_version(version)).unwrap();
            assert_eq!(header.correlation_id, 7);
            ResponseKind::decode(key, &mut frame, version).unwrap()
        }
        _ => panic!("{key:?} v{version}: no response"),
    }
}

/// Consumer protocol subscription metadata (version prefix, then the v1 body).
fn subscription(topics: &[&str]) -> bytes::Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut buf = BytesMut::new();
    bytes::BufMut::put_i16(&mut buf, 1);
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

pub(super) fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = supported_versions(key).unwrap();
    min..=max
}

#[tokio::test(flavor = "multi_thread")]
async fn every_group_api_version_round_trips() {
    let (_dir, broker) = broker();
    broker
        .controller
        .create_topic(
            crate::controller::NewTopic {
                name: "t",
                partitions: 1,
                replication_factor: -1,
                configs: Default::default(),
            },
            false,
        )
        .unwrap();
    for v in versions(ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req = req.with_coordinator_keys(vec![s("g"), s("h")]);
        } else {
            req = req.with_key(s("g"));
        }
        let ResponseKind::FindCoordinator(r) = call(
            &broker,
            ApiKey::FindCoordinator,
            v,
            RequestKind::FindCoordinator(req),
        )
        .await
        else {
            panic!()
        };
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
            let ResponseKind::FindCoordinator(r) = call(
                &broker,
                ApiKey::FindCoordinator,
                v,
                RequestKind::FindCoordinator(txn),
            )
            .await
            else {
                panic!()
            };
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
        let ResponseKind::JoinGroup(mut r) = call(
            &broker,
            ApiKey::JoinGroup,
            v,
            RequestKind::JoinGroup(req.clone()),
        )
        .await
        else {
            panic!()
        };
        if v >= 4 {
            assert_eq!(
                r.error_code,
                kafka_protocol::ResponseError::MemberIdRequired.code()
            );
            let ResponseKind::JoinGroup(again) = call(
                &broker,
                ApiKey::JoinGroup,
                v,
                RequestKind::JoinGroup(req.with_member_id(r.member_id.clone())),
            )
            .await
            else {
                panic!()
            };
            r = again;
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
        let ResponseKind::SyncGroup(sr) = call(
            &broker,
            ApiKey::SyncGroup,
            sv,
            RequestKind::SyncGroup(
                SyncGroupRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_generation_id(1)
                    .with_member_id(member.clone())
                    .with_assignments(vec![assignment]),
            ),
        )
        .await
        else {
            panic!()
        };
        assert_eq!((sr.error_code, &sr.assignment[..]), (0, &b"asg"[..]));
        let hv = v.min(4);
        let ResponseKind::Heartbeat(hr) = call(
            &broker,
            ApiKey::Heartbeat,
            hv,
            RequestKind::Heartbeat(
                HeartbeatRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_generation_id(1)
                    .with_member_id(member.clone()),
            ),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(hr.error_code, 0);
        // Commit and fetch back at every OffsetCommit/OffsetFetch version.
        for cv in versions(ApiKey::OffsetCommit) {
            let req = OffsetCommitRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id_or_member_epoch(1)
                .with_member_id(member.clone())
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(cv as i64)
                                .with_committed_metadata(Some(s("m"))),
                        ]),
                ]);
            let ResponseKind::OffsetCommit(cr) = call(
                &broker,
                ApiKey::OffsetCommit,
                cv,
                RequestKind::OffsetCommit(req),
            )
            .await
            else {
                panic!()
            };
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
            let ResponseKind::OffsetFetch(fr) = call(
                &broker,
                ApiKey::OffsetFetch,
                fv,
                RequestKind::OffsetFetch(req),
            )
            .await
            else {
                panic!()
            };
            let last = *versions(ApiKey::OffsetCommit).end() as i64;
            if fv >= 8 {
                assert_eq!(fr.groups[0].topics[0].partitions[0].committed_offset, last);
            } else {
                let ps = &fr.topics[0].partitions;
                assert_eq!((ps[0].committed_offset, ps[1].committed_offset), (last, -1));
            }
        }
        for dv in versions(ApiKey::DescribeGroups) {
            let ResponseKind::DescribeGroups(dr) = call(
                &broker,
                ApiKey::DescribeGroups,
                dv,
                RequestKind::DescribeGroups(
                    DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(s(&group)), GroupId(s("nope"))]),
                ),
            )
            .await
            else {
                panic!()
            };
            assert_eq!(dr.groups[0].group_state.as_str(), "Stable");
            assert_eq!(dr.groups[0].protocol_data.as_str(), "range");
            assert_eq!(dr.groups[1].group_state.as_str(), "Dead");
        }
        for lv in versions(ApiKey::ListGroups) {
            let mut req = ListGroupsRequest::default();
            if lv >= 4 {
                req = req.with_states_filter(vec![s("stable")]);
            }
            let ResponseKind::ListGroups(lr) = call(
                &broker,
                ApiKey::ListGroups,
                lv,
                RequestKind::ListGroups(req),
            )
            .await
            else {
                panic!()
            };
            assert!(lr.groups.iter().any(|g| g.group_id.as_str() == group));
        }
        let ResponseKind::DeleteGroups(dg) = call(
            &broker,
            ApiKey::DeleteGroups,
            v.min(2),
            RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]),
            ),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(
            dg.results[0].error_code,
            kafka_protocol::ResponseError::NonEmptyGroup.code()
        );
        let ResponseKind::OffsetDelete(od) = call(
            &broker,
            ApiKey::OffsetDelete,
            0,
            RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(vec![
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(s("t")))
                            .with_partitions(vec![
                                offset_delete_request::OffsetDeleteRequestPartition::default()
                                    .with_partition_index(0),
                            ]),
                    ]),
            ),
        )
        .await
        else {
            panic!()
        };
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
        let ResponseKind::LeaveGroup(lr) = call(
            &broker,
            ApiKey::LeaveGroup,
            lv,
            RequestKind::LeaveGroup(leave),
        )
        .await
        else {
            panic!()
        };
        let code = if lv >= 3 {
            lr.members[0].error_code
        } else {
            lr.error_code
        };
        assert_eq!(code, 0);
        let ResponseKind::DeleteGroups(dg) = call(
            &broker,
            ApiKey::DeleteGroups,
            v.min(2),
            RequestKind::DeleteGroups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]),
            ),
        )
        .await
        else {
            panic!()
        };
        assert_eq!(dg.results[0].error_code, 0);
    }
}
