//! ListConfigResources (key 74, Kafka 4.1; v0 was ListClientMetricsResources): the resources
//! that have configs, from the metadata image: every topic (TOPIC) and every registered broker
//! (BROKER). Client-metrics, group and broker-logger resources have no configs here, so those
//! types list nothing. Needs DESCRIBE_CONFIGS on the cluster, as in Kafka.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::metadata::MetadataView;
use crate::security::{AclOperation, Authorizer, Session};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// Needs only the published image and the authorizer.
pub fn handle(
    metadata: &MetadataView,
    authorizer: &Authorizer,
    session: &Session,
    request: ListConfigResourcesRequest,
    version: i16,
) -> ListConfigResourcesResponse {
    if !authorizer.cluster(session, AclOperation::DescribeConfigs) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // v0 lists client-metrics resources only; there are none.
    if version == 0 {
        return ListConfigResourcesResponse::default();
    }
    let types = if request.resource_types.is_empty() {
        vec![TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP]
    } else {
        request.resource_types
    };
    if types
        .iter()
        .any(|t| ![TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP].contains(t))
    {
        return ListConfigResourcesResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code());
    }
    let image = metadata.image();
    let mut resources = Vec::new();
    for t in types {
        let names: Vec<String> = match t {
            TOPIC => image.topics.keys().cloned().collect(),
            BROKER => image.brokers.keys().map(|id| id.to_string()).collect(),
            _ => Vec::new(),
        };
        resources.extend(names.into_iter().map(|name| {
            ConfigResource::default()
                .with_resource_name(str_bytes(&name))
                .with_resource_type(t)
        }));
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}
