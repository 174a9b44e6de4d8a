//! The messages a producer instance has handed to librdkafka and not yet had reported:
//! a slab of slots whose index travels with the message as its delivery opaque, so the
//! report finds the task, sequence and send time without any per-message allocation.

use std::time::Instant;

/// One message in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Index of the task within its instance.
    pub task: u32,
    pub seq: u64,
    /// When its latency counts from (the scheduled send in open loop).
    pub started: Instant,
}

/// A slab of `InFlight` with a free list; it grows to the most ever outstanding at once.
#[derive(Debug, Default)]
pub struct Slots {
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
}

impl Slots {
    pub fn insert(&mut self, m: InFlight) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(m);
                i
            }
            None => {
                self.slots.push(Some(m));
                self.slots.len() - 1
            }
        }
    }

    /// Frees `slot` and returns what was in it. A slot reported twice, or never handed
    /// out, is a bug that would corrupt the counts: it panics.
    pub fn remove(&mut self, slot: usize) -> InFlight {
        let m = self
            .slots
            .get_mut(slot)
            .and_then(Option::take)
            .unwrap_or_else(|| panic!("delivery report for slot {slot}, which is not in flight"));
        self.free.push(slot);
        m
    }

    /// Messages in flight.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_counted() {
        let t = Instant::now();
        let m = |seq| InFlight {
            task: 1,
            seq,
            started: t,
        };
        let mut s = Slots::default();
        let a = s.insert(m(0));
        let b = s.insert(m(1));
        assert_eq!(s.len(), 2);
        assert_eq!(s.remove(a), m(0));
        assert_eq!(s.len(), 1);
        let c = s.insert(m(2));
        assert_eq!(c, a);
        assert_eq!(s.remove(b).seq, 1);
        assert_eq!(s.remove(c).seq, 2);
        assert_eq!(s.len(), 0);
    }

    #[test]
    #[should_panic(expected = "not in flight")]
    fn a_second_report_for_one_slot_panics() {
        let mut s = Slots::default();
        let a = s.insert(InFlight {
            task: 0,
            seq: 0,
            started: Instant::now(),
        });
        s.remove(a);
        s.remove(a);
    }
}
