//! DeleteTopics (key 20): by name (all versions) or by topic id (v6+); the data leaves the disk.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::str_bytes;
use crate::controller::Controller;
use crate::metadata::MetadataView;
use crate::security::Authorizer;
use crate::security::{AclOperation, Session};

pub async fn handle(
    metadata: &MetadataView,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0-5 list names; v6 lists (name or id) states.
    let targets: Vec<(Option<TopicName>, Uuid)> = if request.topics.is_empty() {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    } else {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let name = match name {
            Some(name) => Ok(name.to_string()),
            None => metadata
                .topic_by_id(id)
                .map(|t| t.name.clone())
                .ok_or(ResponseError::UnknownTopicId.code()),
        };
        let result = DeletableTopicResult::default().with_topic_id(id);
        let name = name.and_then(|n| {
            if authorizer.topic(session, AclOperation::Delete, &n) {
                Ok(n)
            } else {
                Err(ResponseError::TopicAuthorizationFailed.code())
            }
        });
        responses.push(match name {
            Ok(n) => match controller.delete_topic(&n).await {
                Ok(topic) => result
                    .with_name(Some(TopicName(str_bytes(&n))))
                    .with_topic_id(topic.id),
                Err(e) => result
                    .with_name(Some(TopicName(str_bytes(&n))))
                    .with_error_code(e.code)
                    .with_error_message(Some(str_bytes(&e.message))),
            },
            Err(code) => result.with_error_code(code),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
