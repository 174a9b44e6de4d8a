//! FindCoordinator (key 10): which broker coordinates a group. Key type 0 (group) is answered
//! with the leader of the group's `__consumer_offsets` partition (this broker on a single node;
//! the topic is created on first use). Key type 1 (transaction) gets COORDINATOR_NOT_AVAILABLE
//! until the transaction coordinator exists. v4+ batches keys in `coordinator_keys`.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// (error code, message) or this broker as the coordinator of `key`.
fn lookup(broker: &Broker, key_type: i8) -> Result<(), (i16, &'static str)> {
    match key_type {
        GROUP => broker
            .groups
            .ensure_offsets_topic(&broker.controller)
            .map_err(|code| (code, "the offsets topic is not available")),
        TRANSACTION => Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "transactions are not supported",
        )),
        _ => Err((ResponseError::InvalidRequest.code(), "unknown key type")),
    }
}

pub fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = broker.advertised.clone();
    let node = BrokerId(broker.config.node_id);
    let result = lookup(broker, request.key_type);
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key);
                match result {
                    Ok(()) => c
                        .with_node_id(node)
                        .with_host(str_bytes(&host))
                        .with_port(port),
                    Err((code, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(str_bytes(""))
                        .with_port(-1)
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes(message))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let response = FindCoordinatorResponse::default();
    match result {
        Ok(()) => response
            .with_node_id(node)
            .with_host(str_bytes(&host))
            .with_port(port),
        Err((code, message)) => {
            let response = response
                .with_error_code(code)
                .with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1);
            if version >= 1 {
                response.with_error_message(Some(str_bytes(message)))
            } else {
                response
            }
        }
    }
}
