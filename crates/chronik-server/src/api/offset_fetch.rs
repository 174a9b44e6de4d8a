//! OffsetFetch (key 9): a group's committed offsets, for the given partitions or (topics null)
//! all of them. v8+ asks for several groups at once. `require_stable` (v7+) is satisfied
//! trivially: without transactions no offset commit is ever pending.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::coordinator::offsets_log::OffsetValue;
use crate::coordinator::GroupCoordinator;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

type Fetched = Vec<(String, i32, Option<OffsetValue>)>;
type ByTopic = Vec<(String, Vec<(i32, Option<OffsetValue>)>)>;

fn fetch(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Fetched, i16> {
    if group.is_empty() {
        return Err(ResponseError::InvalidGroupId.code());
    }
    if !authorizer.group(session, AclOperation::Describe, group) {
        return Err(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Some(code) = groups.not_coordinator(group) {
        return Err(code);
    }
    let all_topics = topics.is_none();
    let partitions = topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect()
    });
    let mut fetched = groups.fetch_offsets(group, partitions);
    if all_topics {
        // Offsets of topics the session may not describe are left out, as Kafka does.
        fetched.retain(|(topic, _, _)| authorizer.topic(session, AclOperation::Describe, topic));
    }
    Ok(fetched)
}

/// Groups the flat list by topic, keeping first-seen order.
fn by_topic(fetched: Fetched) -> ByTopic {
    let mut out: ByTopic = Vec::new();
    for (topic, partition, value) in fetched {
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, ps)) => ps.push((partition, value)),
            None => out.push((topic, vec![(partition, value)])),
        }
    }
    out
}

pub fn handle(
    groups: &GroupCoordinator,
    authorizer: &Authorizer,
    session: &Session,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                match fetch(groups, authorizer, session, g.group_id.as_str(), topics) {
                    Ok(fetched) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_topics(
                            by_topic(fetched)
                                .into_iter()
                                .map(|(topic, ps)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(str_bytes(&topic)))
                                        .with_partitions(
                                            ps.into_iter()
                                                .map(|(p, v)| v8_partition(p, v))
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                    Err(code) => OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(code),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    match fetch(
        groups,
        authorizer,
        session,
        request.group_id.as_str(),
        topics,
    ) {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(
            by_topic(fetched)
                .into_iter()
                .map(|(topic, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(&topic)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, v)| partition(p, v, version))
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(code) if version >= 2 => OffsetFetchResponse::default().with_error_code(code),
        Err(_) => OffsetFetchResponse::default(),
    }
}

fn partition(index: i32, value: Option<OffsetValue>, version: i16) -> OffsetFetchResponsePartition {
    let p = OffsetFetchResponsePartition::default().with_partition_index(index);
    let (offset, epoch, metadata) = match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    };
    let p = p
        .with_committed_offset(offset)
        .with_metadata(Some(str_bytes(&metadata)));
    if version >= 5 {
        p.with_committed_leader_epoch(epoch)
    } else {
        p
    }
}

fn v8_partition(index: i32, value: Option<OffsetValue>) -> OffsetFetchResponsePartitions {
    let (offset, epoch, metadata) = match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    };
    OffsetFetchResponsePartitions::default()
        .with_partition_index(index)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(epoch)
        .with_metadata(Some(str_bytes(&metadata)))
}
