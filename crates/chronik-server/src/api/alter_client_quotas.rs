//! AlterClientQuotas (key 49, KIP-546): sets or removes quota values of user / client-id
//! entities through the controller (`ClientQuota` records); needs ALTER_CONFIGS on the cluster.
//! Answered per entity: an unknown entity type, key or a bad value is that entity's
//! INVALID_REQUEST and changes nothing of it.

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::controller::{Controller, ControllerCall, Decided, DEFAULT_TIMEOUT};
use crate::metadata::client_quotas::QuotaEntity;
use crate::security::{AclOperation, Authorizer, Session};

pub async fn handle(
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    // Each answer is (error code, message); entities that parsed go to the controller.
    let mut answers: Vec<(i16, Option<String>)> = Vec::new();
    let mut entries = Vec::new();
    let mut asked = Vec::new();
    let allowed = authorizer.cluster(session, AclOperation::AlterConfigs);
    for entry in &request.entries {
        let entity = QuotaEntity::from_components(
            entry
                .entity
                .iter()
                .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
        );
        match entity {
            _ if !allowed => answers.push((ResponseError::ClusterAuthorizationFailed.code(), None)),
            Err(e) => answers.push((ResponseError::InvalidRequest.code(), Some(e))),
            Ok(entity) => {
                let ops = entry
                    .ops
                    .iter()
                    .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                    .collect();
                asked.push(answers.len());
                answers.push((0, None));
                entries.push((entity, ops));
            }
        }
    }
    if !entries.is_empty() {
        let call = ControllerCall::AlterClientQuotas {
            entries,
            validate_only: request.validate_only,
        };
        let decided = controller.call(call, DEFAULT_TIMEOUT).await;
        for (n, at) in asked.into_iter().enumerate() {
            answers[at] = match &decided {
                Ok(Decided::ClientQuotas(refusals)) => match refusals.get(n).cloned().flatten() {
                    None => (0, None),
                    Some(why) => (ResponseError::InvalidRequest.code(), Some(why)),
                },
                Ok(_) => (ResponseError::UnknownServerError.code(), None),
                Err(e) => (e.code, Some(e.message.clone())),
            };
        }
    }
    let entries = request
        .entries
        .iter()
        .zip(answers)
        .map(|(entry, (code, message))| {
            let entity = entry
                .entity
                .iter()
                .map(|e| {
                    EntityData::default()
                        .with_entity_type(e.entity_type.clone())
                        .with_entity_name(e.entity_name.clone())
                })
                .collect();
            EntryData::default()
                .with_error_code(code)
                .with_error_message(message.as_deref().map(str_bytes))
                .with_entity(entity)
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
