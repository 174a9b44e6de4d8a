//! ElectLeaders (key 43): move leadership to the preferred replica (PREFERRED), or give a
//! leaderless partition any live replica (UNCLEAN), for the given partitions or all of them.
//! The controller decides (`controller/election.rs`). Needs ALTER on the cluster, as in Kafka;
//! asked for all partitions, those that needed no election are left out of the answer.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::Controller;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

/// Kafka's ElectionType values (v0 has no field and means PREFERRED).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let asked: Option<Vec<(String, i32)>> = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let election_type = if version == 0 {
        PREFERRED
    } else {
        request.election_type
    };
    let refused = |error: ResponseError, message: &str| {
        let results = asked
            .iter()
            .flatten()
            .map(|(topic, partition)| (topic.clone(), *partition, error.code()));
        ElectLeadersResponse::default()
            .with_error_code(error.code())
            .with_replica_election_results(by_topic(results, Some(message)))
    };
    if !authorizer.cluster(session, AclOperation::Alter) {
        return refused(
            ResponseError::ClusterAuthorizationFailed,
            "not authorized to alter the cluster",
        );
    }
    if election_type != PREFERRED && election_type != UNCLEAN {
        return refused(
            ResponseError::InvalidRequest,
            "election type must be 0 (PREFERRED) or 1 (UNCLEAN)",
        );
    }
    let timeout = super::create_topics::request_timeout(request.timeout_ms);
    match controller
        .elect_leaders(election_type == PREFERRED, asked.clone(), timeout)
        .await
    {
        Ok(results) => ElectLeadersResponse::default()
            .with_replica_election_results(by_topic(results.into_iter(), None)),
        Err(e) => {
            let error =
                ResponseError::try_from_code(e.code).unwrap_or(ResponseError::UnknownServerError);
            refused(error, &e.message)
        }
    }
}

/// Results grouped by topic, in the order given (the controller answers sorted); `message`
/// goes with every result of a refused request.
fn by_topic(
    results: impl Iterator<Item = (String, i32, i16)>,
    message: Option<&str>,
) -> Vec<ReplicaElectionResult> {
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, partition, code) in results {
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(str_bytes));
        match topics.last_mut() {
            Some(last) if last.topic.as_str() == topic => last.partition_result.push(result),
            _ => topics.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(&topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    topics
}
