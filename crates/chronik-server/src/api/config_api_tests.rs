//! Config and admin answers that client suites check: dynamic broker configs (KIP-226) change
//! at runtime and are described with their source; a successful CreateTopics carries a null
//! error message; SUBTRACTing the last value of a list config is accepted; ListConfigResources
//! and DescribeTopicPartitions answer from the metadata image.

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::*;

use super::test_support::{broker, call, latest, s, topic};
use crate::metadata::broker_config::{
    SOURCE_DEFAULT, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT,
};

const BROKER: i8 = 4;
const TOPIC: i8 = 2;
const SET: i8 = 0;
const DELETE: i8 = 1;
const SUBTRACT: i8 = 3;

async fn alter(
    broker: &std::sync::Arc<crate::broker::Broker>,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, &str)],
) -> (i16, Option<String>) {
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(*op)
                .with_value(Some(s(v)))
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(configs),
    ]);
    let r = call(broker, latest(ApiKey::IncrementalAlterConfigs), req).await;
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// (value, source) of `key` in DescribeConfigs of resource (type, name).
async fn described(
    broker: &std::sync::Arc<crate::broker::Broker>,
    resource_type: i8,
    name: &str,
    key: &str,
) -> Option<(String, i8)> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configuration_keys(None),
    ]);
    let r = call(broker, latest(ApiKey::DescribeConfigs), req).await;
    r.results[0]
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .map(|c| (c.value.as_ref().unwrap().to_string(), c.config_source))
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_broker_configs_apply_at_runtime_with_their_source() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    let (default_value, source) = described(&broker, BROKER, "1", "log.retention.ms")
        .await
        .unwrap();
    assert_eq!(source, SOURCE_DEFAULT);
    assert!(described(&broker, BROKER, "1", "listeners").await.is_some());
    assert!(described(&broker, BROKER, "1", "log.dirs").await.is_some());

    // Cluster-wide default, then this broker's own value on top.
    assert_eq!(
        alter(&broker, BROKER, "", &[("log.retention.ms", SET, "60000")])
            .await
            .0,
        0
    );
    assert_eq!(
        described(&broker, BROKER, "1", "log.retention.ms").await,
        Some(("60000".into(), SOURCE_DYNAMIC_DEFAULT))
    );
    assert_eq!(
        described(&broker, BROKER, "", "log.retention.ms").await,
        Some(("60000".into(), SOURCE_DYNAMIC_DEFAULT))
    );
    assert_eq!(
        alter(&broker, BROKER, "1", &[("log.retention.ms", SET, "70000")])
            .await
            .0,
        0
    );
    assert_eq!(
        described(&broker, BROKER, "1", "log.retention.ms").await,
        Some(("70000".into(), SOURCE_DYNAMIC_BROKER))
    );
    // Topics without an override follow it at once.
    assert_eq!(
        described(&broker, TOPIC, "t", "retention.ms")
            .await
            .unwrap()
            .0,
        "70000"
    );
    // And the hosted partitions take the new defaults (min.insync.replicas is visible).
    assert_eq!(
        alter(&broker, BROKER, "", &[("min.insync.replicas", SET, "2")])
            .await
            .0,
        0
    );
    assert_eq!(
        broker
            .replicas
            .partition("t", 0)
            .unwrap()
            .min_insync_replicas(),
        2
    );
    // num.partitions applies to new topics.
    assert_eq!(
        alter(&broker, BROKER, "", &[("num.partitions", SET, "3")])
            .await
            .0,
        0
    );
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(s("auto"))))]))
        .with_allow_auto_topic_creation(true);
    let r = call(&broker, latest(ApiKey::Metadata), req).await;
    assert_eq!(r.topics[0].partitions.len(), 3);
    // Deleting the broker's own value falls back to the cluster default.
    assert_eq!(
        alter(&broker, BROKER, "1", &[("log.retention.ms", DELETE, "")])
            .await
            .0,
        0
    );
    assert_eq!(
        described(&broker, BROKER, "1", "log.retention.ms")
            .await
            .unwrap()
            .0,
        "60000"
    );
    let _ = default_value;

    // Static-only settings and bad values are refused.
    let (code, message) = alter(
        &broker,
        BROKER,
        "1",
        &[("listeners", SET, "PLAINTEXT://x:1")],
    )
    .await;
    assert_eq!(
        code,
        kafka_protocol::ResponseError::InvalidConfig.code(),
        "{message:?}"
    );
    let (code, _) = alter(&broker, BROKER, "", &[("log.cleanup.policy", SET, "shred")]).await;
    assert_eq!(code, kafka_protocol::ResponseError::InvalidConfig.code());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_topics_success_has_a_null_message_and_subtracting_the_last_policy_is_accepted() {
    let (_dir, broker) = broker().await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let r = call(&broker, latest(ApiKey::CreateTopics), req).await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[0].error_message, None);

    assert_eq!(
        alter(&broker, TOPIC, "t", &[("cleanup.policy", SET, "compact")])
            .await
            .0,
        0
    );
    assert_eq!(
        alter(
            &broker,
            TOPIC,
            "t",
            &[("cleanup.policy", SUBTRACT, "compact")]
        )
        .await,
        (0, None)
    );
    assert_eq!(
        described(&broker, TOPIC, "t", "cleanup.policy")
            .await
            .unwrap()
            .0,
        "delete"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_config_resources_names_topics_and_brokers() {
    let (_dir, broker) = broker().await;
    topic(&broker, "t").await;
    let r = call(
        &broker,
        1,
        ListConfigResourcesRequest::default().with_resource_types(vec![]),
    )
    .await;
    assert_eq!(r.error_code, 0);
    let listed: Vec<(i8, String)> = r
        .config_resources
        .iter()
        .map(|c| (c.resource_type, c.resource_name.to_string()))
        .collect();
    assert!(listed.contains(&(TOPIC, "t".into())), "{listed:?}");
    assert!(listed.contains(&(BROKER, "1".into())), "{listed:?}");
    let r = call(
        &broker,
        1,
        ListConfigResourcesRequest::default().with_resource_types(vec![BROKER]),
    )
    .await;
    assert_eq!(r.config_resources.len(), 1);
    let r = call(&broker, 0, ListConfigResourcesRequest::default()).await;
    assert!(r.config_resources.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_topic_partitions_pages_through_the_image() {
    let (_dir, broker) = broker().await;
    for name in ["a", "b"] {
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(3)
                .with_replication_factor(1),
        ]);
        call(&broker, latest(ApiKey::CreateTopics), req).await;
    }
    let page = |cursor: Option<describe_topic_partitions_request::Cursor>| {
        DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(4)
            .with_cursor(cursor)
    };
    let r = call(&broker, 0, page(None)).await;
    let got: Vec<(String, usize)> = r
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.partitions.len()))
        .collect();
    assert_eq!(got, vec![("a".into(), 3), ("b".into(), 1)]);
    assert_eq!(r.topics[0].partitions[0].leader_id.0, 1);
    let next = r.next_cursor.expect("a next page");
    assert_eq!((next.topic_name.as_str(), next.partition_index), ("b", 1));
    let cursor = describe_topic_partitions_request::Cursor::default()
        .with_topic_name(TopicName(s("b")))
        .with_partition_index(1);
    let r = call(&broker, 0, page(Some(cursor))).await;
    assert_eq!(r.topics.len(), 1);
    assert_eq!(r.topics[0].partitions.len(), 2);
    assert!(r.next_cursor.is_none());
    let unknown = DescribeTopicPartitionsRequest::default()
        .with_response_partition_limit(10)
        .with_topics(vec![
            describe_topic_partitions_request::TopicRequest::default()
                .with_name(TopicName(s("nope"))),
        ]);
    let r = call(&broker, 0, unknown).await;
    assert_eq!(
        r.topics[0].error_code,
        kafka_protocol::ResponseError::UnknownTopicOrPartition.code()
    );
}
