//! DescribeClientQuotas (key 48, KIP-546): the quota values of the entities matching a filter,
//! from the metadata image; needs DESCRIBE_CONFIGS on the cluster.

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::metadata::client_quotas::{self, Match, CLIENT_ID, USER};
use crate::metadata::MetadataView;
use crate::security::{AclOperation, Authorizer, Session};

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

pub fn handle(
    metadata: &MetadataView,
    authorizer: &Authorizer,
    session: &Session,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let refuse = |e: ResponseError, message: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(&message)))
            .with_entries(None)
    };
    if !authorizer.cluster(session, AclOperation::DescribeConfigs) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "DESCRIBE_CONFIGS on the cluster is needed".into(),
        );
    }
    let mut filter = Vec::new();
    for c in &request.components {
        let entity_type = c.entity_type.as_str();
        if entity_type != USER && entity_type != CLIENT_ID {
            return refuse(
                ResponseError::InvalidRequest,
                format!("unsupported quota entity type {entity_type:?}"),
            );
        }
        if filter.iter().any(|(t, _)| *t == entity_type) {
            return refuse(
                ResponseError::InvalidRequest,
                format!("entity type {entity_type:?} given twice"),
            );
        }
        let m = match (c.match_type, c._match.as_deref()) {
            (MATCH_EXACT, Some(name)) => Match::Exact(name),
            (MATCH_DEFAULT, _) => Match::Default,
            (MATCH_ANY, _) => Match::Any,
            _ => {
                return refuse(
                    ResponseError::InvalidRequest,
                    format!("bad match type {} for {entity_type:?}", c.match_type),
                )
            }
        };
        filter.push((entity_type, m));
    }
    let image = metadata.image();
    let entries = image
        .client_quotas
        .iter()
        .filter(|(entity, _)| client_quotas::matches(entity, &filter, request.strict))
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .components()
                        .into_iter()
                        .map(|(t, name)| {
                            EntityData::default()
                                .with_entity_type(str_bytes(t))
                                .with_entity_name(name.map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(*v))
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}
