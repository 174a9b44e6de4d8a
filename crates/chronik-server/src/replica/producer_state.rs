//! Idempotent-producer state of one partition: per producer id, its epoch and the last five
//! batches it wrote, so a retried batch is answered with its original offsets instead of being
//! written twice, and a gap in sequence numbers is refused.
//!
//! Persisted as snapshots (`producer_snapshot.rs`) taken when a segment rolls and at a clean
//! close; at start the partition loads the latest snapshot at or below its log end and replays
//! only the batch headers after it (`Log::scan_batch_headers`), so the table survives restart
//! exactly as far as the log does without a read per batch of the whole log.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Kafka keeps the metadata of this many recent batches per producer for duplicate detection.
const RECENT_BATCHES: usize = 5;

/// Where a producer's batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    recent: VecDeque<BatchMeta>,
}

/// What to do with an incoming batch of an idempotent producer.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already written: answer with the original offsets.
    Duplicate(BatchMeta),
    /// A gap or a reordering (OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder,
    /// The producer was fenced by a newer epoch (INVALID_PRODUCER_EPOCH).
    Fenced,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateTable {
    /// Decides what to do with a batch of `producer_id` at `epoch` spanning sequences
    /// `first_seq..=last_seq`.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> SequenceCheck {
        let Some(entry) = self.producers.get(&producer_id) else {
            // Unknown producer (new, or its batches were removed by retention): accept.
            return SequenceCheck::Append;
        };
        if epoch < entry.epoch {
            return SequenceCheck::Fenced;
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        if let Some(dup) = entry
            .recent
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        match entry.recent.back() {
            Some(last) if first_seq == next_sequence(last.last_seq) => SequenceCheck::Append,
            Some(_) => SequenceCheck::OutOfOrder,
            None => SequenceCheck::Append,
        }
    }

    /// Records a batch that was appended (or found in the log at start).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.epoch = epoch;
            entry.recent.clear();
        }
        if entry.recent.len() == RECENT_BATCHES {
            entry.recent.pop_front();
        }
        entry.recent.push_back(batch);
    }

    /// Forgets batches at or beyond `offset` (after a log truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.recent.retain(|b| b.last_offset < offset);
        }
    }
}

/// Sequence numbers wrap from i32::MAX to 0.
fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq,
            first_offset,
            last_offset: first_offset + (last_seq - first_seq) as i64,
        }
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut table = ProducerStateTable::default();
        assert_eq!(table.check(7, 0, 0, 4), SequenceCheck::Append);
        table.record(7, 0, meta(0, 4, 100));
        assert_eq!(table.check(7, 0, 5, 9), SequenceCheck::Append);
        table.record(7, 0, meta(5, 9, 105));
        assert_eq!(
            table.check(7, 0, 0, 4),
            SequenceCheck::Duplicate(meta(0, 4, 100))
        );
        assert_eq!(table.check(7, 0, 11, 12), SequenceCheck::OutOfOrder);
        assert_eq!(table.check(7, 1, 3, 4), SequenceCheck::OutOfOrder);
        assert_eq!(table.check(7, 1, 0, 0), SequenceCheck::Append);
        table.record(7, 1, meta(0, 0, 110));
        assert_eq!(table.check(7, 0, 10, 10), SequenceCheck::Fenced);
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(1, 0, meta(i, i, i as i64));
        }
        assert!(matches!(
            table.check(1, 0, 2, 2),
            SequenceCheck::Duplicate(_)
        ));
        assert_eq!(table.check(1, 0, 1, 1), SequenceCheck::OutOfOrder);
        assert_eq!(table.check(1, 0, 7, 7), SequenceCheck::Append);
        assert_eq!(next_sequence(i32::MAX), 0);
    }
}
