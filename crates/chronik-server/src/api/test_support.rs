//! Plumbing shared by the API unit tests: a broker on a temp dir, one typed request sent
//! through `handle_frame` as the anonymous session (encoded and decoded by kafka-protocol at
//! the given version), and ACLs for the anonymous principal.

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use super::*;
use crate::config::{BrokerConfig, FlushPolicy};
use crate::security::acl::{AclBinding, PatternType, PermissionType, ResourceType};
use crate::security::AclOperation;

pub(super) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub(super) async fn broker() -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        offsets_topic_num_partitions: 2,
        flush_policy: FlushPolicy::Os,
        group_initial_rebalance_delay_ms: 0,
        ..Default::default()
    };
    let broker = Broker::open(config).await.unwrap();
    (dir, broker)
}

/// Creates topic `name` with one partition.
pub(super) async fn topic(broker: &Broker, name: &str) {
    broker
        .controller
        .create_topic(
            crate::controller::NewTopic {
                name: name.to_string(),
                partitions: 1,
                replication_factor: -1,
                assignments: None,
                configs: Default::default(),
                validate_only: false,
            },
            crate::controller::DEFAULT_TIMEOUT,
        )
        .await
        .unwrap();
}

pub(super) fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = supported_versions(key).unwrap();
    min..=max
}

pub(super) fn latest(key: ApiKey) -> i16 {
    *versions(key).end()
}

/// Sends `request` at `version` through `handle_frame` and returns the decoded response,
/// checking the frame's size and correlation id.
pub(super) async fn call<R: Request>(
    broker: &Arc<Broker>,
    version: i16,
    request: R,
) -> R::Response {
    let key = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
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
            R::Response::decode(&mut frame, version).unwrap()
        }
        _ => panic!("{key:?} v{version}: no response"),
    }
}

/// Creates, in one call, an ACL for the anonymous principal on any host per `(op, perm)`.
pub(super) async fn acls(
    broker: &Broker,
    rt: ResourceType,
    name: &str,
    entries: &[(AclOperation, PermissionType)],
) {
    let bindings: Vec<AclBinding> = entries
        .iter()
        .map(|&(operation, permission)| AclBinding {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: crate::security::ANONYMOUS.into(),
            host: "*".into(),
            operation,
            permission,
        })
        .collect();
    broker.controller.create_acls(bindings).await.unwrap();
}

/// OffsetCommit's topics: partition t-0 at `offset`, with any further fields `partition` sets.
pub(super) fn commit_t0(
    offset: i64,
    partition: impl FnOnce(
        offset_commit_request::OffsetCommitRequestPartition,
    ) -> offset_commit_request::OffsetCommitRequestPartition,
) -> Vec<offset_commit_request::OffsetCommitRequestTopic> {
    vec![offset_commit_request::OffsetCommitRequestTopic::default()
        .with_name(TopicName(s("t")))
        .with_partitions(vec![partition(
            offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset),
        )])]
}

/// The request that deletes group `group`'s offsets for partition t-0.
pub(super) fn offset_delete_request(group: &str) -> OffsetDeleteRequest {
    OffsetDeleteRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(0),
                ]),
        ])
}

/// DeleteGroups for the single group `group` at `version`: that group's error code.
pub(super) async fn delete_group(broker: &Arc<Broker>, version: i16, group: &str) -> i16 {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    call(broker, version, req).await.results[0].error_code
}
