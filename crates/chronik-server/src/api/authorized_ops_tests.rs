//! KIP-430 "authorized operations" in Metadata, DescribeCluster and DescribeGroups: the
//! bitfield is filled in only when asked for, at every version that has the field, and it
//! follows the ACLs of the session's principal.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::test_support::{acls, broker, call, s, topic, versions};
use super::*;
use crate::security::acl::{PermissionType, ResourceType};
use crate::security::AclOperation::{self, *};

const NOT_PROVIDED: i32 = i32::MIN;

fn bits(ops: &[AclOperation]) -> i32 {
    ops.iter().fold(0, |b, op| b | 1 << op.code())
}

/// ALLOW ALL and DENY `op` for the anonymous principal (once a resource has ACLs, only what
/// they allow is allowed).
async fn allow_all_but(broker: &Broker, rt: ResourceType, name: &str, op: AclOperation) {
    acls(
        broker,
        rt,
        name,
        &[(All, PermissionType::Allow), (op, PermissionType::Deny)],
    )
    .await;
}

async fn metadata(broker: &Arc<Broker>, v: i16, include: bool) -> MetadataResponse {
    let topic = MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))));
    let mut req = MetadataRequest::default().with_topics(Some(vec![topic]));
    if v >= 4 {
        req = req.with_allow_auto_topic_creation(false);
    }
    if v >= 8 {
        req = req.with_include_topic_authorized_operations(include);
    }
    if (8..=10).contains(&v) {
        req = req.with_include_cluster_authorized_operations(include);
    }
    call(broker, v, req).await
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_reports_topic_and_cluster_operations_when_asked() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    let all_topic = bits(&[
        Read,
        Write,
        Create,
        Describe,
        Delete,
        Alter,
        DescribeConfigs,
        AlterConfigs,
    ]);
    let all_cluster = bits(&[
        Create,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
        Alter,
        Describe,
    ]);
    for v in versions(ApiKey::Metadata) {
        let r = metadata(&broker, v, false).await;
        assert_eq!(
            r.topics[0].topic_authorized_operations, NOT_PROVIDED,
            "v{v}"
        );
        assert_eq!(r.cluster_authorized_operations, NOT_PROVIDED, "v{v}");
        if v < 8 {
            continue;
        }
        let r = metadata(&broker, v, true).await;
        assert_eq!(r.topics[0].topic_authorized_operations, all_topic, "v{v}");
        let cluster = if v <= 10 { all_cluster } else { NOT_PROVIDED };
        assert_eq!(r.cluster_authorized_operations, cluster, "v{v}");
    }
    // A DENY of WRITE removes WRITE only (DESCRIBE stays: READ still implies it).
    allow_all_but(&broker, ResourceType::Topic, "t", Write).await;
    let r = metadata(&broker, 12, true).await;
    assert_eq!(
        r.topics[0].topic_authorized_operations,
        all_topic & !(1 << Write.code())
    );
    // A topic the session may not describe gets no bitfield, only the error.
    allow_all_but(&broker, ResourceType::Topic, "t", Describe).await;
    let r = metadata(&broker, 12, true).await;
    assert_eq!(
        r.topics[0].error_code,
        ResponseError::TopicAuthorizationFailed.code()
    );
    assert_eq!(r.topics[0].topic_authorized_operations, NOT_PROVIDED);
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_cluster_reports_cluster_operations_when_asked() {
    let (_dir, broker) = broker().await;
    allow_all_but(&broker, ResourceType::Cluster, "kafka-cluster", Alter).await;
    let expected = bits(&[
        Create,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
        Describe,
    ]);
    for v in versions(ApiKey::DescribeCluster) {
        for include in [false, true] {
            let req = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(include);
            let r = call(&broker, v, req).await;
            let want = if include { expected } else { NOT_PROVIDED };
            assert_eq!(r.cluster_authorized_operations, want, "v{v} {include}");
        }
    }
    // A session that may not DESCRIBE the cluster learns nothing of it: 0, as in Kafka.
    allow_all_but(&broker, ResourceType::Cluster, "kafka-cluster", Describe).await;
    let req = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let r = call(&broker, 0, req).await;
    assert_eq!(r.cluster_authorized_operations, 0);
    let r = metadata(&broker, 10, true).await;
    assert_eq!(r.cluster_authorized_operations, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_groups_reports_group_operations_and_refuses_unauthorized() {
    let (_dir, broker) = broker().await;
    allow_all_but(&broker, ResourceType::Group, "g", Delete).await;
    allow_all_but(&broker, ResourceType::Group, "secret", Describe).await;
    for v in versions(ApiKey::DescribeGroups) {
        for include in [false, true] {
            let mut req = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("g")), GroupId(s("secret"))]);
            if v >= 3 {
                req = req.with_include_authorized_operations(include);
            }
            let r = call(&broker, v, req).await;
            let (g, secret) = (&r.groups[0], &r.groups[1]);
            assert_eq!(g.error_code, 0, "v{v}");
            assert_eq!(g.group_state.as_str(), "Dead");
            let want = if include && v >= 3 {
                bits(&[Read, Describe])
            } else {
                NOT_PROVIDED
            };
            assert_eq!(g.authorized_operations, want, "v{v} {include}");
            assert_eq!(
                secret.error_code,
                ResponseError::GroupAuthorizationFailed.code(),
                "v{v}"
            );
            assert_eq!(secret.authorized_operations, NOT_PROVIDED);
            assert!(secret.members.is_empty());
        }
    }
}
