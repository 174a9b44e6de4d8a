//! CreatePartitions (key 37): grow a topic's partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use kafka_protocol::ResponseError;

use crate::controller::Controller;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let timeout = super::create_topics::request_timeout(request.timeout_ms);
    let mut results = Vec::with_capacity(request.topics.len());
    for t in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if !authorizer.topic(session, AclOperation::Alter, t.name.as_str()) {
            results.push(
                result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Topic authorization failed."))),
            );
            continue;
        }
        let assignments = t.assignments.filter(|a| !a.is_empty()).map(|a| {
            a.into_iter()
                .map(|p| p.broker_ids.into_iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = controller
            .create_partitions(
                t.name.as_str(),
                t.count,
                assignments,
                request.validate_only,
                timeout,
            )
            .await;
        results.push(match outcome {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(e.code)
                .with_error_message(Some(str_bytes(&e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
