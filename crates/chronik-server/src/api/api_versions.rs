//! ApiVersions (key 18): the API keys and versions this broker implements, exactly.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::supported_versions;

fn api_list() -> Vec<ApiVersion> {
    ApiKey::iter()
        .filter_map(|key| {
            supported_versions(key).map(|(min, max)| {
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
        })
        .collect()
}

pub fn handle(_request: &ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_list())
        .with_finalized_features_epoch(-1)
}

/// The KIP-511 answer to an ApiVersions version newer than ours: v0 layout, UNSUPPORTED_VERSION,
/// and the full list so the client can pick a version and retry.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_list())
}
