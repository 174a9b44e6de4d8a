//! AlterPartitionReassignments (key 45, KIP-455): start moving partitions to target replicas,
//! or cancel a move under way (null replicas). The controller decides and answers per
//! partition (`controller/reassignment.rs`); a started move completes later, once every target
//! replica is in the ISR. Needs ALTER on the cluster, as in Kafka. v1 (KIP-860) may forbid
//! changing the replication factor.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::controller::ReassignmentResult;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = version == 0 || request.allow_replication_factor_change;
    let asked: Vec<(String, i32, Option<Vec<i32>>)> = request
        .topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.to_string();
            t.partitions.into_iter().map(move |p| {
                let replicas = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
                (name.clone(), p.partition_index, replicas)
            })
        })
        .collect();
    let refused = |error: ResponseError, message: &str| {
        let results = asked
            .iter()
            .map(|(t, p, _)| (t.clone(), *p, error.code(), Some(message.to_string())));
        AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_rf_change)
            .with_error_code(error.code())
            .with_error_message(Some(str_bytes(message)))
            .with_responses(by_topic(results))
    };
    if !authorizer.cluster(session, AclOperation::Alter) {
        return refused(
            ResponseError::ClusterAuthorizationFailed,
            "not authorized to alter the cluster",
        );
    }
    let timeout = super::create_topics::request_timeout(request.timeout_ms);
    match controller
        .alter_partition_reassignments(asked.clone(), allow_rf_change, timeout)
        .await
    {
        Ok(results) => AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_rf_change)
            .with_responses(by_topic(results.into_iter())),
        Err(e) => {
            let error =
                ResponseError::try_from_code(e.code).unwrap_or(ResponseError::UnknownServerError);
            refused(error, &e.message)
        }
    }
}

/// Results grouped by consecutive topic, in the order asked.
fn by_topic(results: impl Iterator<Item = ReassignmentResult>) -> Vec<ReassignableTopicResponse> {
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for (topic, partition, code, message) in results {
        let result = ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_error_message(message.as_deref().map(str_bytes));
        match topics.last_mut() {
            Some(last) if last.name.as_str() == topic => last.partitions.push(result),
            _ => topics.push(
                ReassignableTopicResponse::default()
                    .with_name(TopicName(str_bytes(&topic)))
                    .with_partitions(vec![result]),
            ),
        }
    }
    topics
}
