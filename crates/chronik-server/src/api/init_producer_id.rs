//! InitProducerId (key 22) for idempotent producers: a fresh producer id at epoch 0, or, when a
//! producer re-initialises its own id (KIP-360), the same id at the next epoch, which fences the
//! old epoch. Transactional ids are refused until transactions are built. Without one, Kafka's
//! rule applies: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic, else
//! CLUSTER_AUTHORIZATION_FAILED.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::controller::Controller;
use crate::producer_ids::ProducerIdManager;
use crate::security::Authorizer;
use crate::security::{AclOperation, ResourceType, Session};

pub async fn handle(
    producer_ids: &ProducerIdManager,
    controller: &Controller,
    authorizer: &Authorizer,
    session: &Session,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    if request.transactional_id.is_some() {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !authorizer.cluster(session, AclOperation::IdempotentWrite)
        && !authorizer.authorize_by_resource_type(session, AclOperation::Write, ResourceType::Topic)
    {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return response
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    let timeout = crate::controller::DEFAULT_TIMEOUT;
    match producer_ids.next_id(controller, timeout).await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e.message, "allocating a producer id");
            response.with_error_code(e.code)
        }
    }
}
