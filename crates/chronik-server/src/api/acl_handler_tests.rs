//! The handlers that authorize as Kafka's `KafkaApis` does: a DENY ACL for the anonymous
//! principal makes the request fail with Kafka's code for that resource; without ACLs it works.

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::test_support::{
    acls, broker, call, commit_t0, delete_group, latest, offset_delete_request, s, topic, versions,
};
use super::*;
use crate::security::acl::{PermissionType, ResourceType};
use crate::security::AclOperation::{self, *};

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();

async fn deny(broker: &Broker, rt: ResourceType, name: &str, op: AclOperation) {
    acls(broker, rt, name, &[(op, PermissionType::Deny)]).await;
}

/// An ALLOW of `op` on the cluster (once the cluster has ACLs, only what they allow is).
async fn allow_on_cluster(broker: &Broker, op: AclOperation) {
    acls(
        broker,
        ResourceType::Cluster,
        "kafka-cluster",
        &[(op, PermissionType::Allow)],
    )
    .await;
}

/// A group "g" with a committed offset for t-0 (simple consumer commit, generation -1).
async fn commit(broker: &Arc<Broker>, group: &str) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(commit_t0(0, |p| p));
    let r = call(broker, 2, req).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

async fn delete_records(broker: &Arc<Broker>) -> i16 {
    let req = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(s("t")))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(0),
            ]),
    ]);
    let r = call(broker, latest(ApiKey::DeleteRecords), req).await;
    r.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_records_needs_delete_on_the_topic() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    assert_eq!(delete_records(&broker).await, 0);
    deny(&broker, ResourceType::Topic, "t", Delete).await;
    assert_eq!(delete_records(&broker).await, TOPIC_DENIED);
}

async fn create_partitions(broker: &Arc<Broker>, count: i32) -> i16 {
    let req = CreatePartitionsRequest::default().with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default()
            .with_name(TopicName(s("t")))
            .with_count(count),
    ]);
    let r = call(broker, latest(ApiKey::CreatePartitions), req).await;
    r.results[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn create_partitions_needs_alter_on_the_topic() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    assert_eq!(create_partitions(&broker, 2).await, 0);
    deny(&broker, ResourceType::Topic, "t", Alter).await;
    assert_eq!(create_partitions(&broker, 3).await, TOPIC_DENIED);
    assert_eq!(broker.metadata.topic("t").unwrap().partition_count(), 2);
}

async fn elect_leaders(broker: &Arc<Broker>) -> ElectLeadersResponse {
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
        )
        .with_topic(TopicName(s("t")))
        .with_partitions(vec![0, 7])]))
        .with_timeout_ms(5000);
    call(broker, latest(ApiKey::ElectLeaders), req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn elect_leaders_needs_alter_on_the_cluster() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    let r = elect_leaders(&broker).await;
    let codes: Vec<(i32, i16)> = r.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    assert_eq!(
        (r.error_code, codes),
        (
            0,
            vec![
                (0, ResponseError::ElectionNotNeeded.code()),
                (7, ResponseError::UnknownTopicOrPartition.code())
            ]
        )
    );
    deny(&broker, ResourceType::Cluster, "kafka-cluster", Alter).await;
    let r = elect_leaders(&broker).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    assert!(r.replica_election_results[0]
        .partition_result
        .iter()
        .all(|p| p.error_code == CLUSTER_DENIED));
}

async fn delete_groups(broker: &Arc<Broker>, group: &str) -> i16 {
    delete_group(broker, latest(ApiKey::DeleteGroups), group).await
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_groups_needs_delete_on_the_group() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    commit(&broker, "g").await;
    commit(&broker, "h").await;
    assert_eq!(delete_groups(&broker, "h").await, 0);
    deny(&broker, ResourceType::Group, "g", Delete).await;
    assert_eq!(delete_groups(&broker, "g").await, GROUP_DENIED);
}

async fn offset_delete(broker: &Arc<Broker>) -> OffsetDeleteResponse {
    call(
        broker,
        latest(ApiKey::OffsetDelete),
        offset_delete_request("g"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_delete_needs_delete_on_the_group_and_read_on_the_topic() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    commit(&broker, "g").await;
    deny(&broker, ResourceType::Topic, "t", Read).await;
    let r = offset_delete(&broker).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics[0].partitions[0].error_code, TOPIC_DENIED);
    deny(&broker, ResourceType::Group, "g", Delete).await;
    let r = offset_delete(&broker).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    assert!(r.topics.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_delete_works_without_acls() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    commit(&broker, "g").await;
    let r = offset_delete(&broker).await;
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_and_leave_group_need_read_on_the_group() {
    let (_dir, broker) = broker().await;
    for allowed in [true, false] {
        if !allowed {
            deny(&broker, ResourceType::Group, "g", Read).await;
        }
        for v in versions(ApiKey::Heartbeat) {
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s("m"))
                .with_generation_id(1);
            let r = call(&broker, v, req).await;
            assert_eq!(r.error_code == GROUP_DENIED, !allowed, "Heartbeat v{v}");
        }
        for v in versions(ApiKey::LeaveGroup) {
            let mut req = LeaveGroupRequest::default().with_group_id(GroupId(s("g")));
            if v < 3 {
                req = req.with_member_id(s("m"));
            } else {
                req = req.with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s("m"))
                ]);
            }
            let r = call(&broker, v, req).await;
            assert_eq!(r.error_code == GROUP_DENIED, !allowed, "LeaveGroup v{v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn find_coordinator_needs_describe_on_each_group_key() {
    let (_dir, broker) = broker().await;
    deny(&broker, ResourceType::Group, "g", Describe).await;
    for v in versions(ApiKey::FindCoordinator) {
        let codes: Vec<i16> = if v >= 4 {
            let req = FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g"), s("h")]);
            let r = call(&broker, v, req).await;
            r.coordinators.iter().map(|c| c.error_code).collect()
        } else {
            let mut codes = Vec::new();
            for key in ["g", "h"] {
                let req = FindCoordinatorRequest::default().with_key(s(key));
                codes.push(call(&broker, v, req).await.error_code);
            }
            codes
        };
        assert_eq!(codes, [GROUP_DENIED, 0], "FindCoordinator v{v}");
    }
}

async fn list_groups(broker: &Arc<Broker>) -> Vec<String> {
    let r = call(
        broker,
        latest(ApiKey::ListGroups),
        ListGroupsRequest::default(),
    )
    .await;
    let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn list_groups_lists_only_describable_groups_unless_the_cluster_is_describable() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    commit(&broker, "g").await;
    commit(&broker, "h").await;
    assert_eq!(list_groups(&broker).await, ["g", "h"]);
    // The cluster gets an ACL that does not grant DESCRIBE (without any, everyone may).
    allow_on_cluster(&broker, ClusterAction).await;
    deny(&broker, ResourceType::Group, "h", Describe).await;
    assert_eq!(list_groups(&broker).await, ["g"]);
    allow_on_cluster(&broker, Describe).await;
    assert_eq!(list_groups(&broker).await, ["g", "h"]);
}

async fn init_producer_id(broker: &Arc<Broker>) -> i16 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    call(broker, latest(ApiKey::InitProducerId), req)
        .await
        .error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn init_producer_id_needs_idempotent_write_or_write_on_some_topic() {
    let (_dir, broker) = broker().await;
    assert_eq!(init_producer_id(&broker).await, 0);
    deny(
        &broker,
        ResourceType::Cluster,
        "kafka-cluster",
        IdempotentWrite,
    )
    .await;
    // WRITE on some topic still suffices (everyone may write a topic without ACLs).
    assert_eq!(init_producer_id(&broker).await, 0);
    deny(&broker, ResourceType::Topic, "*", Write).await;
    assert_eq!(init_producer_id(&broker).await, CLUSTER_DENIED);
}

async fn offset_for_leader_epoch(broker: &Arc<Broker>, replica_id: i32) -> i16 {
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(TopicName(s("t")))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_leader_epoch(0),
                ]),
        ]);
    let r = call(broker, latest(ApiKey::OffsetForLeaderEpoch), req).await;
    r.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_for_leader_epoch_needs_describe_on_the_topic_or_cluster_action() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    assert_eq!(offset_for_leader_epoch(&broker, -1).await, 0);
    deny(&broker, ResourceType::Topic, "t", Describe).await;
    // The cluster gets an ACL that does not grant CLUSTER_ACTION (without any, everyone may).
    allow_on_cluster(&broker, Describe).await;
    assert_eq!(offset_for_leader_epoch(&broker, -1).await, TOPIC_DENIED);
    assert_eq!(offset_for_leader_epoch(&broker, 1).await, TOPIC_DENIED);
    allow_on_cluster(&broker, ClusterAction).await;
    assert_eq!(offset_for_leader_epoch(&broker, 1).await, 0);
}

async fn alter_reassignments(
    broker: &Arc<Broker>,
    replicas: Option<Vec<i32>>,
) -> AlterPartitionReassignmentsResponse {
    let partition = |index: i32| {
        alter_partition_reassignments_request::ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(
                replicas
                    .clone()
                    .map(|r| r.into_iter().map(BrokerId).collect()),
            )
    };
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![partition(0), partition(7)]),
        ]);
    call(broker, latest(ApiKey::AlterPartitionReassignments), req).await
}

fn reassignment_codes(r: &AlterPartitionReassignmentsResponse) -> Vec<(i32, i16)> {
    r.responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_reassignments_need_alter_and_describe_on_the_cluster() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    // The same replicas: nothing to move, nothing under way.
    let r = alter_reassignments(&broker, Some(vec![1])).await;
    assert_eq!(
        (r.error_code, reassignment_codes(&r)),
        (0, vec![(0, 0), (7, unknown)])
    );
    let r = alter_reassignments(&broker, Some(vec![1, 1])).await;
    let invalid = ResponseError::InvalidReplicaAssignment.code();
    assert_eq!(reassignment_codes(&r), vec![(0, invalid), (7, unknown)]);
    let r = alter_reassignments(&broker, None).await;
    let none = ResponseError::NoReassignmentInProgress.code();
    assert_eq!(reassignment_codes(&r), vec![(0, none), (7, unknown)]);
    let list = ListPartitionReassignmentsRequest::default().with_timeout_ms(5000);
    let r = call(
        &broker,
        latest(ApiKey::ListPartitionReassignments),
        list.clone(),
    )
    .await;
    assert_eq!((r.error_code, r.topics.len()), (0, 0));

    deny(&broker, ResourceType::Cluster, "kafka-cluster", Alter).await;
    let r = alter_reassignments(&broker, Some(vec![1])).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    assert!(reassignment_codes(&r)
        .iter()
        .all(|(_, c)| *c == CLUSTER_DENIED));
    deny(&broker, ResourceType::Cluster, "kafka-cluster", Describe).await;
    let r = call(&broker, latest(ApiKey::ListPartitionReassignments), list).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
}

async fn alter_client_quota(broker: &Arc<Broker>) -> i16 {
    use alter_client_quotas_request::{EntityData, EntryData, OpData};
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(s("client-id"))
            .with_entity_name(None)])
        .with_ops(vec![OpData::default()
            .with_key(s("consumer_byte_rate"))
            .with_value(1e6)])]);
    let r = call(broker, latest(ApiKey::AlterClientQuotas), req).await;
    r.entries[0].error_code
}

async fn describe_client_quotas(broker: &Arc<Broker>) -> (i16, usize) {
    let r = call(
        broker,
        latest(ApiKey::DescribeClientQuotas),
        DescribeClientQuotasRequest::default(),
    )
    .await;
    (r.error_code, r.entries.map_or(0, |e| e.len()))
}

#[tokio::test(flavor = "multi_thread")]
async fn client_quotas_need_alter_and_describe_configs_on_the_cluster() {
    let (_dir, broker) = broker().await;
    assert_eq!(alter_client_quota(&broker).await, 0);
    assert_eq!(describe_client_quotas(&broker).await, (0, 1));
    deny(
        &broker,
        ResourceType::Cluster,
        "kafka-cluster",
        AlterConfigs,
    )
    .await;
    assert_eq!(alter_client_quota(&broker).await, CLUSTER_DENIED);
    deny(
        &broker,
        ResourceType::Cluster,
        "kafka-cluster",
        DescribeConfigs,
    )
    .await;
    assert_eq!(describe_client_quotas(&broker).await.0, CLUSTER_DENIED);
}
