//! CreatePartitions (key 37): grow a topic's partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::str_bytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::security::{AclOperation, Session};

pub fn handle(
    broker: &Broker,
    session: &Session,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if !broker
                .authorizer
                .topic(session, AclOperation::Alter, t.name.as_str())
            {
                return result
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(str_bytes("Topic authorization failed.")));
            }
            match broker.controller.create_partitions(
                t.name.as_str(),
                t.count,
                request.validate_only,
            ) {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
