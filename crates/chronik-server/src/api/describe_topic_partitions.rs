//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions (leader, leader epoch,
//! replicas, ISR, offline replicas) from the metadata image, sorted by name, paged: at most
//! `response_partition_limit` partitions (capped at 2000, Kafka's default
//! max.request.partition.size.limit) from the request's cursor, with `next_cursor` where the
//! next page starts. No topics named means every topic the session may DESCRIBE; a named topic
//! it may not describe gets TOPIC_AUTHORIZATION_FAILED, an unknown one
//! UNKNOWN_TOPIC_OR_PARTITION. There is no eligible-leader-replica set (empty lists).

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::metadata::MetadataView;
use crate::security::{AclOperation, Authorizer, ResourceType, Session};

/// Kafka's default max.request.partition.size.limit.
const MAX_PARTITIONS: i32 = 2000;

/// Needs only the published image and the authorizer.
pub fn handle(
    metadata: &MetadataView,
    authorizer: &Authorizer,
    session: &Session,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = metadata.image();
    let describe = |name: &str| authorizer.topic(session, AclOperation::Describe, name);
    let listing_all = request.topics.is_empty();
    let mut names: Vec<String> = if listing_all {
        image
            .topics
            .keys()
            .filter(|n| describe(n))
            .cloned()
            .collect()
    } else {
        request.topics.iter().map(|t| t.name.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = request.response_partition_limit.clamp(1, MAX_PARTITIONS) as usize;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    let ids = |ids: &[i32]| ids.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    for name in names {
        if cursor_topic.as_ref().is_some_and(|c| name < *c) {
            continue;
        }
        let base = DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(&name))))
            .with_topic_authorized_operations(i32::MIN);
        if !describe(&name) {
            topics.push(
                base.with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_topic_id(Uuid::nil()),
            );
            continue;
        }
        let Some(topic) = image.topic(&name) else {
            topics.push(
                base.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_topic_id(Uuid::nil()),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(TopicName(str_bytes(&name))));
            break;
        }
        let start = if cursor_topic.as_deref() == Some(name.as_str()) {
            cursor_partition as usize
        } else {
            0
        };
        let mut partitions = Vec::new();
        for (index, p) in topic.partitions.iter().enumerate().skip(start) {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(str_bytes(&name)))
                        .with_partition_index(index as i32),
                );
                break;
            }
            budget -= 1;
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|b| image.brokers.get(b).is_none_or(|r| r.fenced))
                .collect();
            let leader_alive = image.brokers.get(&p.leader).is_some_and(|b| !b.fenced);
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(if leader_alive {
                        0
                    } else {
                        ResponseError::LeaderNotAvailable.code()
                    })
                    .with_partition_index(index as i32)
                    .with_leader_id(BrokerId(p.leader))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(ids(&offline)),
            );
        }
        let ops = authorizer.authorized_operations(session, ResourceType::Topic, &name);
        topics.push(
            base.with_topic_id(topic.id)
                .with_is_internal(topic.internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(ops),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;

    use super::*;
    use crate::metadata::records::{MetadataBatch, MetadataRecord, PartitionState};
    use crate::metadata::MetadataImage;
    use crate::security::AclStore;

    /// Three brokers, 3 fenced; topic "t" with a partition on each, led by 1, 2 and 3.
    fn image() -> MetadataImage {
        let mut records = Vec::new();
        for id in 1..=3 {
            records.push(MetadataRecord::RegisterBroker {
                id,
                epoch: 1,
                host: "h".into(),
                port: 9000 + id,
                listeners: Vec::new(),
            });
            records.push(MetadataRecord::BrokerFencing {
                id,
                epoch: 1,
                fenced: id == 3,
            });
        }
        records.push(MetadataRecord::Topic {
            name: "t".into(),
            id: Uuid::new_v4(),
            internal: false,
            configs: Default::default(),
        });
        for (partition, replicas) in [vec![1, 2], vec![2, 3], vec![3, 1]].into_iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic: "t".into(),
                partition: partition as i32,
                state: PartitionState::new(replicas),
            });
        }
        MetadataImage::default().apply(1, &MetadataBatch::new(records))
    }

    #[test]
    fn leaders_replicas_and_fenced_brokers_come_from_the_image() {
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(image()));
        let metadata = MetadataView::new(rx);
        let authorizer = Authorizer::new(Arc::new(AclStore::new()), true);
        let request = DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(100)
            .with_topics(vec![
                TopicRequest::default().with_name(TopicName(str_bytes("t")))
            ]);
        let r = handle(&metadata, &authorizer, &Session::anonymous(None), request);
        let p = &r.topics[0].partitions;
        let leaders: Vec<i32> = p.iter().map(|p| p.leader_id.0).collect();
        assert_eq!(leaders, vec![1, 2, 3]);
        assert_eq!(p[0].error_code, 0);
        assert_eq!(p[1].offline_replicas, vec![BrokerId(3)]);
        assert_eq!(p[2].error_code, ResponseError::LeaderNotAvailable.code());
    }
}
