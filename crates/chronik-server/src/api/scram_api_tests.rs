//! KIP-554 through `handle_frame`: users' SCRAM credentials are added, replaced, described and
//! deleted per user and mechanism, with Kafka's per-user errors and cluster authorization.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::test_support::{acls, broker, call, s};
use crate::security::acl::{PermissionType, ResourceType};
use crate::security::AclOperation;

const SHA256: i8 = 1;
const SHA512: i8 = 2;

fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(s(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from_static(b"salt"))
        .with_salted_password(Bytes::from_static(b"salted-password"))
}

fn delete(user: &str, mechanism: i8) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(s(user))
        .with_mechanism(mechanism)
}

/// Each user's (error code, message) in the AlterUserScramCredentials answer.
async fn alter(
    broker: &std::sync::Arc<crate::broker::Broker>,
    upsertions: Vec<ScramCredentialUpsertion>,
    deletions: Vec<ScramCredentialDeletion>,
) -> Vec<(String, i16)> {
    let req = AlterUserScramCredentialsRequest::default()
        .with_upsertions(upsertions)
        .with_deletions(deletions);
    call(broker, 0, req)
        .await
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect()
}

/// Each described user's error code and (mechanism, iterations).
async fn describe(
    broker: &std::sync::Arc<crate::broker::Broker>,
    users: Option<&[&str]>,
) -> (i16, Vec<(String, i16, Vec<(i8, i32)>)>) {
    let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(s(n)))
            .collect()
    }));
    let response = call(broker, 0, req).await;
    let results = response
        .results
        .iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|c| (c.mechanism, c.iterations))
                .collect();
            (r.user.to_string(), r.error_code, infos)
        })
        .collect();
    (response.error_code, results)
}

#[tokio::test]
async fn credentials_are_added_replaced_described_and_deleted() {
    let (_dir, broker) = broker().await;
    let results = alter(
        &broker,
        vec![
            upsert("alice", SHA256, 4096),
            upsert("alice", SHA512, 8192),
            upsert("bob", SHA256, 100),
        ],
        vec![],
    )
    .await;
    let unacceptable = ResponseError::UnacceptableCredential.code();
    assert_eq!(
        results,
        vec![("alice".into(), 0), ("bob".into(), unacceptable)]
    );
    let (code, described) = describe(&broker, None).await;
    assert_eq!(code, 0);
    assert_eq!(
        described,
        vec![("alice".into(), 0, vec![(SHA256, 4096), (SHA512, 8192)])]
    );
    // Replaced; an unknown user and a repeated one are refused per user.
    assert_eq!(
        alter(&broker, vec![upsert("alice", SHA256, 10000)], vec![]).await,
        vec![("alice".into(), 0)]
    );
    let (_, described) = describe(&broker, Some(&["alice", "carol", "dave", "dave"])).await;
    let codes: Vec<(String, i16)> = described.iter().map(|d| (d.0.clone(), d.1)).collect();
    assert_eq!(
        codes,
        vec![
            ("alice".into(), 0),
            ("carol".into(), ResponseError::ResourceNotFound.code()),
            ("dave".into(), ResponseError::DuplicateResource.code()),
        ]
    );
    assert_eq!(described[0].2, vec![(SHA256, 10000), (SHA512, 8192)]);
    // Deleting what is not there, twice the same, an unknown mechanism: refused per user,
    // and a refused user's other changes are not made.
    let results = alter(
        &broker,
        vec![upsert("erin", 9, 4096), upsert("alice", SHA512, 4096)],
        vec![delete("alice", SHA512), delete("bob", SHA256)],
    )
    .await;
    assert_eq!(
        results,
        vec![
            ("alice".into(), ResponseError::DuplicateResource.code()),
            ("bob".into(), ResponseError::ResourceNotFound.code()),
            (
                "erin".into(),
                ResponseError::UnsupportedSaslMechanism.code()
            ),
        ]
    );
    assert_eq!(describe(&broker, Some(&["alice"])).await.1[0].2.len(), 2);
    let results = alter(
        &broker,
        vec![],
        vec![delete("alice", SHA256), delete("alice", SHA512)],
    )
    .await;
    assert_eq!(results, vec![("alice".into(), 0)]);
    let (_, described) = describe(&broker, Some(&["alice"])).await;
    assert_eq!(described[0].1, ResponseError::ResourceNotFound.code());
}

#[tokio::test]
async fn describing_needs_describe_and_altering_needs_alter_on_the_cluster() {
    let (_dir, broker) = broker().await;
    acls(
        &broker,
        ResourceType::Cluster,
        "kafka-cluster",
        &[(AclOperation::Describe, PermissionType::Allow)],
    )
    .await;
    assert_eq!(
        alter(&broker, vec![upsert("alice", SHA256, 4096)], vec![]).await,
        vec![(
            "alice".into(),
            ResponseError::ClusterAuthorizationFailed.code()
        )]
    );
    assert_eq!(describe(&broker, None).await, (0, vec![]));
    acls(
        &broker,
        ResourceType::Cluster,
        "kafka-cluster",
        &[(AclOperation::Describe, PermissionType::Deny)],
    )
    .await;
    assert_eq!(
        describe(&broker, None).await.0,
        ResponseError::ClusterAuthorizationFailed.code()
    );
}
