//! Delivery reports of one producer instance, handed from librdkafka's polling thread to
//! the instance's sender thread.
//!
//! librdkafka calls `delivery` on the thread that polls the producer (rdkafka's
//! `ThreadedProducer` runs one per instance). It only stamps the time and queues the
//! message's slot number (its `DeliveryOpaque`, a plain `usize`: no allocation per
//! message); the sender thread, which owns every task's state, does all the accounting
//! when it `take`s the queue. The timestamp is taken here, at the report, so the latency
//! does not include how long the report waited to be taken.
//!
//! The queue is a mutex that the two threads take once per report and once per batch
//! of reports respectively. The polling thread wakes the sender only when the sender
//! said it is about to sleep.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;

use crate::client_log::BenchContext;

/// An acknowledged message: its slot and when the report arrived.
#[derive(Debug, Clone, Copy)]
pub struct Acked {
    pub slot: usize,
    pub at: Instant,
}

/// A message librdkafka gave up on.
#[derive(Debug, Clone)]
pub struct Failed {
    pub slot: usize,
    pub at: Instant,
    pub error: KafkaError,
}

#[derive(Default)]
struct Inbox {
    acked: Vec<Acked>,
    failed: Vec<Failed>,
    /// The sender is (about to be) waiting on `Reports::wake`.
    sleeping: bool,
}

/// The producer context of the bench's producers: delivery reports queue up here.
#[derive(Default)]
pub struct Reports {
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

impl Reports {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves every queued report into `acked` / `failed` (which must be empty; their
    /// capacity is kept for the next round, so no allocation in steady state).
    pub fn take(&self, acked: &mut Vec<Acked>, failed: &mut Vec<Failed>) {
        let mut inbox = self.lock();
        std::mem::swap(&mut inbox.acked, acked);
        std::mem::swap(&mut inbox.failed, failed);
    }

    /// Queues one report, waking the sender if it sleeps.
    fn queue(&self, slot: usize, at: Instant, error: Option<KafkaError>) {
        let mut inbox = self.lock();
        match error {
            None => inbox.acked.push(Acked { slot, at }),
            Some(error) => inbox.failed.push(Failed { slot, at, error }),
        }
        let wake = std::mem::take(&mut inbox.sleeping);
        drop(inbox);
        if wake {
            self.wake.notify_one();
        }
    }

    /// Waits until a report is queued or `until` passes, whichever comes first.
    pub fn wait(&self, until: Instant) {
        let mut inbox = self.lock();
        while inbox.acked.is_empty() && inbox.failed.is_empty() {
            let now = Instant::now();
            if now >= until {
                break;
            }
            inbox.sleeping = true;
            inbox = self
                .wake
                .wait_timeout(inbox, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        inbox.sleeping = false;
    }
}

impl ClientContext for Reports {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        BenchContext.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        BenchContext.error(error, reason);
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        let at = Instant::now();
        self.queue(slot, at, result.as_ref().err().map(|(e, _)| e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn wait_returns_on_a_report_or_at_the_deadline() {
        let r = Arc::new(Reports::default());
        let t0 = Instant::now();
        r.wait(t0 + Duration::from_millis(30));
        assert!(t0.elapsed() >= Duration::from_millis(30));

        let r2 = r.clone();
        let pusher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            r2.queue(5, Instant::now(), None);
            r2.queue(6, Instant::now(), Some(KafkaError::Canceled));
        });
        let t0 = Instant::now();
        r.wait(t0 + Duration::from_secs(30));
        assert!(t0.elapsed() < Duration::from_secs(10));
        let (mut acked, mut failed) = (Vec::new(), Vec::new());
        r.take(&mut acked, &mut failed);
        assert_eq!(acked[0].slot, 5);
        // The failure may or may not have been queued before that `take`.
        pusher.join().unwrap();
        let (mut acked2, mut failed2) = (Vec::new(), Vec::new());
        r.take(&mut acked2, &mut failed2);
        assert_eq!(acked.len() + acked2.len(), 1);
        assert_eq!(failed.len() + failed2.len(), 1);
    }
}
