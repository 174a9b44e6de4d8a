//! Enforcement of client quotas (KIP-13, KIP-124): each request's produce bytes, fetch bytes
//! and handler time are counted against the quota that applies to its user and client id
//! (`metadata::client_quotas::ClientQuotas::resolve`), over Kafka's windowed rate (11 samples
//! of 1 s), and a request that takes its client over the quota gets a throttle time as Kafka
//! computes it: `(rate - quota) / quota * window`. The network layer then delays the response
//! by that much and reads nothing more from the connection meanwhile.
//!
//! Nothing is counted while no quota is set, and only entities a quota applies to get a rate,
//! so the table stays as small as the set of throttled clients seen in the last window.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::metadata::client_quotas::ClientQuotas;

/// Kafka's quota.window.num and quota.window.size.seconds.
const SAMPLES: u64 = 11;
const WINDOW: Duration = Duration::from_secs(1);
/// Rates idle this long are dropped.
const IDLE: Duration = Duration::from_secs(SAMPLES * WINDOW.as_secs() * 2);
/// Past this many rates, idle ones are dropped on the next count.
const PRUNE_AT: usize = 1024;

/// The usage counted for one request.
pub struct Usage<'a> {
    pub user: &'a str,
    pub client_id: &'a str,
    pub produce_bytes: usize,
    pub fetch_bytes: usize,
    pub handler_time: Duration,
}

pub struct QuotaManager {
    start: Instant,
    rates: Mutex<HashMap<(&'static str, String, String), Rate>>,
}

impl Default for QuotaManager {
    fn default() -> Self {
        QuotaManager {
            start: Instant::now(),
            rates: Mutex::new(HashMap::new()),
        }
    }
}

impl QuotaManager {
    /// Counts a request's usage and returns how long its response is to be held back (the
    /// longest of its quotas' throttle times; zero within quota or without quotas).
    pub fn record(&self, quotas: &ClientQuotas, usage: &Usage<'_>) -> Duration {
        use crate::metadata::client_quotas::{
            CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE,
        };
        if quotas.is_empty() {
            return Duration::ZERO;
        }
        let now = self.start.elapsed();
        // request_percentage is a percentage of one thread: 100 = one second per second.
        let counted = [
            (PRODUCER_BYTE_RATE, usage.produce_bytes as f64),
            (CONSUMER_BYTE_RATE, usage.fetch_bytes as f64),
            (REQUEST_PERCENTAGE, usage.handler_time.as_secs_f64() * 100.0),
        ];
        let mut rates = self.rates.lock();
        if rates.len() > PRUNE_AT {
            rates.retain(|_, r| now.saturating_sub(r.last_used) < IDLE);
        }
        let mut throttle = Duration::ZERO;
        for (key, amount) in counted {
            if amount == 0.0 {
                continue;
            }
            let Some((quota, user, client_id)) = quotas.resolve(key, usage.user, usage.client_id)
            else {
                continue;
            };
            let rate = rates.entry((key, user, client_id)).or_default();
            rate.record(amount, now);
            throttle = throttle.max(rate.throttle(quota, now));
        }
        throttle
    }
}

/// A windowed rate: per-second sums of the last `SAMPLES` windows.
#[derive(Default)]
struct Rate {
    /// (window number, sum in it), oldest first.
    samples: Vec<(u64, f64)>,
    last_used: Duration,
}

impl Rate {
    fn record(&mut self, amount: f64, now: Duration) {
        let window = now.as_millis() as u64 / WINDOW.as_millis() as u64;
        self.samples.retain(|(w, _)| w + SAMPLES > window);
        match self.samples.last_mut() {
            Some((w, sum)) if *w == window => *sum += amount,
            _ => self.samples.push((window, amount)),
        }
        self.last_used = now;
    }

    /// The time the rate is measured over, as Kafka's `Rate.windowSize`: from the oldest
    /// sample's window start, but never under SAMPLES - 1 whole windows (so a client's first
    /// second does not count as its whole history).
    fn window_size(&self, now: Duration) -> Duration {
        let oldest = self.samples.first().map_or(0, |(w, _)| *w);
        let elapsed = now.saturating_sub(WINDOW * oldest as u32);
        elapsed.max(WINDOW * (SAMPLES as u32 - 1))
    }

    fn throttle(&self, quota: f64, now: Duration) -> Duration {
        let window = self.window_size(now);
        let total: f64 = self.samples.iter().map(|(_, s)| s).sum();
        let rate = total / window.as_secs_f64();
        if rate <= quota {
            return Duration::ZERO;
        }
        let ms = (rate - quota) / quota * window.as_millis() as f64;
        // Never longer than the whole window: the rate has decayed by then.
        Duration::from_millis(ms as u64).min(WINDOW * SAMPLES as u32)
    }
}

/// Wraps a future and adds the time spent inside its `poll` to a shared total: a request's
/// handler time (what request_percentage limits), without the time it waited.
pub struct PollTimed<F> {
    inner: Pin<Box<F>>,
    busy: Arc<BusyTime>,
}

/// Time spent polling so far, readable from inside the future itself.
#[derive(Default)]
pub struct BusyTime {
    state: Mutex<(Duration, Option<Instant>)>,
}

impl BusyTime {
    /// Time polled so far, the current poll included.
    pub fn elapsed(&self) -> Duration {
        let (total, current) = *self.state.lock();
        total + current.map_or(Duration::ZERO, |since| since.elapsed())
    }
}

impl<F: Future> PollTimed<F> {
    pub fn new(inner: F, busy: Arc<BusyTime>) -> Self {
        PollTimed {
            inner: Box::pin(inner),
            busy,
        }
    }
}

impl<F: Future> Future for PollTimed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        self.busy.state.lock().1 = Some(started);
        let result = self.inner.as_mut().poll(cx);
        let mut state = self.busy.state.lock();
        state.0 += started.elapsed();
        state.1 = None;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::client_quotas::{QuotaEntity, CLIENT_ID, PRODUCER_BYTE_RATE};

    #[test]
    fn a_client_over_its_byte_rate_is_throttled_as_kafka_computes_it() {
        let mut rate = Rate::default();
        let now = Duration::from_secs(100);
        rate.record(20_000.0, now);
        // 20,000 bytes over the minimum 10 s window: 2,000 B/s against a 1,000 B/s quota.
        assert_eq!(rate.throttle(1000.0, now), Duration::from_secs(10));
        assert_eq!(rate.throttle(2000.0, now), Duration::ZERO);
        // The sample leaves the window after SAMPLES seconds.
        rate.record(1.0, now + Duration::from_secs(SAMPLES));
        assert_eq!(
            rate.throttle(1000.0, now + Duration::from_secs(SAMPLES)),
            Duration::ZERO
        );
    }

    #[test]
    fn only_clients_with_a_quota_are_counted() {
        let manager = QuotaManager::default();
        let mut quotas = ClientQuotas::default();
        let slow = QuotaEntity::from_components([(CLIENT_ID, Some("slow"))]).unwrap();
        quotas.set(&slow, PRODUCER_BYTE_RATE, Some(1000.0));
        let usage = |client_id| Usage {
            user: "ANONYMOUS",
            client_id,
            produce_bytes: 1_000_000,
            fetch_bytes: 0,
            handler_time: Duration::ZERO,
        };
        assert!(manager.record(&quotas, &usage("slow")) > Duration::ZERO);
        assert_eq!(manager.record(&quotas, &usage("fast")), Duration::ZERO);
        assert_eq!(manager.rates.lock().len(), 1);
    }
}
