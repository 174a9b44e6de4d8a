//! The memory request bodies are allocated from, shared by every connection (Kafka's
//! `queued.max.request.bytes`). A body takes from it as its bytes arrive, never on the word of
//! its size prefix, and gives back when its request has been answered; a connection that finds
//! the pool spent waits (stops reading) until some comes back.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct RequestMemory {
    pool: Arc<Semaphore>,
}

/// Bytes taken from the pool, returned when dropped.
#[derive(Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl RequestMemory {
    pub fn new(bytes: usize) -> Self {
        RequestMemory {
            pool: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Adds `bytes` to `held`, waiting until the pool has them.
    pub async fn reserve(&self, bytes: usize, held: &mut Reservation) {
        let bytes = u32::try_from(bytes).expect("a frame is smaller than 4 GiB");
        let permit = self
            .pool
            .clone()
            .acquire_many_owned(bytes)
            .await
            .expect("the pool is never closed");
        match &mut held.permit {
            Some(p) => p.merge(permit),
            None => held.permit = Some(permit),
        }
    }
}

impl Reservation {
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}
