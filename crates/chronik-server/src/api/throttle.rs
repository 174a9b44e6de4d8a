//! Client quotas at the API layer: what a request counts against its quotas (`count`: the
//! produce request's size, the fetch response's size, the handler's time) and the throttle time
//! written into its response (`report`). Followers' fetches and ApiVersions are exempt, as in
//! Kafka (replication has its own quotas; a client must always learn the API versions).

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::Encodable;

use crate::metadata::MetadataView;
use crate::quota::{QuotaManager, Usage};
use crate::security::Session;

/// Counts the request and returns how long to hold back its response.
#[allow(clippy::too_many_arguments)]
pub fn count(
    metadata: &MetadataView,
    quotas: &QuotaManager,
    session: &Session,
    client_id: &str,
    api_key: ApiKey,
    request_size: usize,
    response: Option<&ResponseKind>,
    version: i16,
    handler_time: Duration,
    exempt: bool,
) -> Duration {
    let image = metadata.image();
    if image.client_quotas.is_empty() || exempt || api_key == ApiKey::ApiVersions {
        return Duration::ZERO;
    }
    let fetch_bytes = match response {
        Some(ResponseKind::Fetch(fetch)) => fetch.compute_size(version).unwrap_or(0),
        _ => 0,
    };
    let usage = Usage {
        user: session
            .principal
            .strip_prefix("User:")
            .unwrap_or(&session.principal),
        client_id,
        produce_bytes: if api_key == ApiKey::Produce {
            request_size
        } else {
            0
        },
        fetch_bytes,
        handler_time,
    };
    quotas.record(&image.client_quotas, &usage)
}

/// Writes the throttle time into a response that has the field.
pub fn report(response: &mut ResponseKind, throttle: Duration) {
    let ms = throttle.as_millis().min(i32::MAX as u128) as i32;
    macro_rules! set {
        ($($kind:ident),*) => {
            match response {
                $(ResponseKind::$kind(r) => r.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    set!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetForLeaderEpoch,
        CreateTopics,
        DeleteTopics,
        CreatePartitions,
        ElectLeaders,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        DescribeConfigs,
        AlterConfigs,
        IncrementalAlterConfigs,
        DescribeCluster,
        DeleteRecords,
        InitProducerId,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        DescribeGroups,
        ListGroups,
        DeleteGroups,
        OffsetDelete,
        CreateAcls,
        DescribeAcls,
        DeleteAcls,
        ListConfigResources,
        DescribeTopicPartitions,
        DescribeClientQuotas,
        AlterClientQuotas
    );
}
