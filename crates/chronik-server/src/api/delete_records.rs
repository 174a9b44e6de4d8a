//! DeleteRecords (key 21): move a partition's log start offset forward (-1 = high watermark);
//! whole segments below it are deleted.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use crate::replica::ReplicaManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub fn handle(
    replicas: &ReplicaManager,
    authorizer: &Authorizer,
    session: &Session,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let authorized = authorizer.topic(session, AclOperation::Delete, topic.name.as_str());
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if !authorized {
                        return result
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let deleted = replicas
                        .online_partition(topic.name.as_str(), p.partition_index)
                        .and_then(|partition| {
                            // The leader moves the log start; followers follow it by fetching.
                            partition.check_leader(-1)?;
                            partition.delete_records_before(p.offset)
                        });
                    match deleted {
                        Ok(low_watermark) => result.with_low_watermark(low_watermark),
                        Err(e) => result.with_error_code(e.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
