//! The run's clock: latencies are measured with monotonic `Instant`s; the send time a
//! message carries (Unix nanoseconds) is derived from its `Instant` through one mapping
//! taken when the run starts.
//!
//! One wall-clock read per run instead of one per message, and since the round-trip
//! consumer maps its arrival `Instant`s through the same `Clock`, send → arrival is a
//! monotonic difference that a wall-clock step during the run cannot distort. Other
//! processes reading the stamp see Unix time as of the run's start, plus elapsed time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_unix_ns: u64,
}

impl Clock {
    pub fn start() -> Clock {
        let origin_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Clock {
            origin: Instant::now(),
            origin_unix_ns,
        }
    }

    /// `at` in Unix nanoseconds.
    pub fn unix_ns(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.origin) {
            Some(after) => self.origin_unix_ns.saturating_add(after.as_nanos() as u64),
            None => self
                .origin_unix_ns
                .saturating_sub(self.origin.duration_since(at).as_nanos() as u64),
        }
    }

    /// Time from a `unix_ns` stamp to `at` (zero if the stamp is later).
    pub fn since(&self, stamp_unix_ns: u64, at: Instant) -> Duration {
        Duration::from_nanos(self.unix_ns(at).saturating_sub(stamp_unix_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_instants_both_sides_of_the_origin() {
        let c = Clock::start();
        let later = c.origin + Duration::from_millis(1500);
        assert_eq!(c.unix_ns(later) - c.unix_ns(c.origin), 1_500_000_000);
        assert_eq!(
            c.since(c.unix_ns(c.origin), later),
            Duration::from_millis(1500)
        );
        assert_eq!(c.since(c.unix_ns(later), c.origin), Duration::ZERO);
        if let Some(earlier) = c.origin.checked_sub(Duration::from_millis(20)) {
            assert_eq!(c.unix_ns(c.origin) - c.unix_ns(earlier), 20_000_000);
        }
    }
}
