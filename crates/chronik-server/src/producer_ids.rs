//! Allocation of idempotent-producer ids, unique across the cluster and across restarts.
//!
//! The controller hands out blocks of ids as metadata records (`ProducerIdBlock`, KIP-730);
//! this broker uses its block up, then asks for the next. A crash skips the rest of a block,
//! which is harmless. The legacy `data/meta/producer-id-block` file is only read once, to import.

use std::time::Duration;

use crate::controller::{Controller, ControllerCall, ControllerError, Decided};

pub struct ProducerIdManager {
    node_id: i32,
    /// (next id to hand out, end of the block). Held across the controller call so that one
    /// request fetches a block while the others wait for it.
    block: tokio::sync::Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn new(node_id: i32) -> ProducerIdManager {
        ProducerIdManager {
            node_id,
            block: tokio::sync::Mutex::new((0, 0)),
        }
    }

    pub async fn next_id(
        &self,
        controller: &Controller,
        timeout: Duration,
    ) -> Result<i64, ControllerError> {
        let mut block = self.block.lock().await;
        if block.0 == block.1 {
            let call = ControllerCall::AllocateProducerIds {
                broker: self.node_id,
            };
            match controller.call(call, timeout).await? {
                Decided::ProducerIds { first, size } => *block = (first, first + size),
                other => {
                    return Err(ControllerError::new(
                        kafka_protocol::ResponseError::UnknownServerError,
                        format!("unexpected controller answer {other:?}"),
                    ))
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
