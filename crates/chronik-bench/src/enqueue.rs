//! Enqueueing a message into librdkafka through a topic handle: the one place the bench
//! calls librdkafka directly.
//!
//! Why: rdkafka's `send` names the topic per message, so each enqueue allocates a C
//! string and librdkafka looks the topic up under its client-wide lock — about 100 ns of
//! the ~600 ns the sender thread (the bench's bottleneck) spends per message. A topic
//! handle, created once, skips both. The call is the one rdkafka's `send` makes
//! (`rd_kafka_producev`, payload and key copied, the slot number as the opaque), so
//! delivery reports still reach `Reports::delivery` through rdkafka, unchanged.

use std::ffi::{c_void, CString};
use std::ptr::NonNull;

use anyhow::{anyhow, Result};
use rdkafka::bindings as rd;
use rdkafka::bindings::rd_kafka_vtype_t::*;
use rdkafka::producer::{Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::IntoOpaque;

use crate::delivery::Reports;

/// Let librdkafka's partitioner choose (by key).
const PARTITION_UNASSIGNED: i32 = -1;

/// A producer and a handle on the topic it produces to.
pub struct Enqueuer {
    topic: NonNull<rd::rd_kafka_topic_t>,
    producer: ThreadedProducer<Reports>,
}

// SAFETY: librdkafka's client and topic handles may be used from any thread; the
// handle is only released in `drop`, while `producer` (whose client it belongs to) is
// still alive.
unsafe impl Send for Enqueuer {}

impl Enqueuer {
    pub fn new(producer: ThreadedProducer<Reports>, topic: &str) -> Result<Enqueuer> {
        let name = CString::new(topic).map_err(|_| anyhow!("topic name {topic:?} contains NUL"))?;
        // SAFETY: the client pointer is valid while `producer` lives; a null topic
        // configuration means "the producer's defaults", as rdkafka's `send` uses.
        let raw = unsafe {
            rd::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        let topic = NonNull::new(raw).ok_or_else(|| {
            // SAFETY: reads this thread's last librdkafka error; no pointers involved.
            let code = RDKafkaErrorCode::from(unsafe { rd::rd_kafka_last_error() });
            anyhow!("creating a librdkafka handle for topic {topic}: {code}")
        })?;
        Ok(Enqueuer { topic, producer })
    }

    pub fn producer(&self) -> &ThreadedProducer<Reports> {
        &self.producer
    }

    /// Copies `key` and `value` into librdkafka's queue, with `slot` as the delivery
    /// opaque and `timestamp_ms` as CreateTime. On error nothing was enqueued and no
    /// delivery report will come.
    pub fn send(
        &self,
        key: &[u8],
        value: &[u8],
        slot: usize,
        timestamp_ms: i64,
    ) -> Result<(), RDKafkaErrorCode> {
        // SAFETY: `rd_kafka_producev` takes (type, value...) pairs ending with END, each
        // value of the C type librdkafka reads for it: the topic handle, partition and
        // flags as int, pointer + size_t for value and key (copied before the call
        // returns, as RD_KAFKA_MSG_F_COPY says), a pointer-sized opaque, an int64
        // timestamp. The client and topic handles are valid while `self` lives.
        let err = unsafe {
            rd::rd_kafka_producev(
                self.producer.client().native_ptr(),
                RD_KAFKA_VTYPE_RKT,
                self.topic.as_ptr(),
                RD_KAFKA_VTYPE_PARTITION,
                PARTITION_UNASSIGNED,
                RD_KAFKA_VTYPE_MSGFLAGS,
                rd::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                value.as_ptr() as *mut c_void,
                value.len(),
                RD_KAFKA_VTYPE_KEY,
                key.as_ptr() as *const c_void,
                key.len(),
                RD_KAFKA_VTYPE_OPAQUE,
                slot.into_ptr(),
                RD_KAFKA_VTYPE_TIMESTAMP,
                timestamp_ms,
                RD_KAFKA_VTYPE_END,
            )
        };
        match RDKafkaErrorCode::from(err) {
            RDKafkaErrorCode::NoError => Ok(()),
            code => Err(code),
        }
    }
}

impl Drop for Enqueuer {
    fn drop(&mut self) {
        // SAFETY: created by `rd_kafka_topic_new` and released once, here, before the
        // producer (a field, dropped after this) destroys the client.
        unsafe { rd::rd_kafka_topic_destroy(self.topic.as_ptr()) };
    }
}
