//! How many connections the broker holds, in total (Kafka's `max.connections`) and per client
//! IP address (`max.connections.per.ip`). A connection counts until its `Admission` drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Whether the broker is at `max.connections` (then it stops accepting, as Kafka does).
    pub fn full(&self) -> bool {
        self.counts.lock().total >= self.max_total
    }

    /// Admits a connection from `ip`, or None when that address is at its limit (Kafka closes
    /// such a connection at once) or the broker is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let mut counts = self.counts.lock();
        if counts.total >= self.max_total {
            return None;
        }
        let per_ip = counts.per_ip.entry(ip).or_default();
        if *per_ip >= self.max_per_ip {
            return None;
        }
        *per_ip += 1;
        counts.total += 1;
        Some(Admission {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock();
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_ip_and_in_total_and_free_on_drop() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert!(limits.admit(a).is_none(), "per-ip limit");
        let _b1 = limits.admit(b).unwrap();
        assert!(limits.full());
        assert!(limits.admit(b).is_none(), "total limit");
        drop(a1);
        assert!(!limits.full());
        assert!(limits.admit(a).is_some());
    }
}
