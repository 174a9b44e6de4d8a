//! ListPartitionReassignments (key 46, KIP-455): the reassignments under way — per partition
//! its replicas (target and original together), the adding and the removing ones — of the
//! given partitions (those unknown or not reassigning are left out, as in Kafka) or of all.
//! Answered by the controller from its committed image. Needs DESCRIBE on the cluster.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let refused = |error: ResponseError, message: &str| {
        ListPartitionReassignmentsResponse::default()
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
    };
    if !authorizer.cluster(session, AclOperation::Describe) {
        return refused(
            ResponseError::ClusterAuthorizationFailed,
            "not authorized to describe the cluster",
        );
    }
    let asked: Option<Vec<(String, i32)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let timeout = super::create_topics::request_timeout(request.timeout_ms);
    let ongoing = match controller
        .list_partition_reassignments(asked, timeout)
        .await
    {
        Ok(ongoing) => ongoing,
        Err(e) => {
            let error =
                ResponseError::try_from_code(e.code).unwrap_or(ResponseError::UnknownServerError);
            return refused(error, &e.message);
        }
    };
    let ids = |brokers: Vec<i32>| brokers.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for o in ongoing {
        let partition = OngoingPartitionReassignment::default()
            .with_partition_index(o.partition)
            .with_replicas(ids(o.replicas))
            .with_adding_replicas(ids(o.adding))
            .with_removing_replicas(ids(o.removing));
        match topics.last_mut() {
            Some(last) if last.name.as_str() == o.topic => last.partitions.push(partition),
            _ => topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(&o.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
