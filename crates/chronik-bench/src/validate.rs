//! `--validate`: read the topic back from the beginning and check every acknowledged
//! message of this run arrived exactly, with intact content.
//!
//! The read goes up to the high watermarks taken after the last acknowledgement; if
//! acknowledged messages are still missing there, the watermarks are read again (with
//! acks=1 in a replicated cluster the high watermark may trail the acknowledgement) until
//! they stop moving or `--validate-timeout` passes. Messages of other runs or other
//! writers on the same topic are counted as foreign and otherwise ignored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::cli::Args;
use crate::client::{consumer_config, partitions_blocking, watermarks_blocking};
use crate::client_log::BenchContext;
use crate::payload::{decode, DecodeError};

/// Outcome of a read-back.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ValidationReport {
    /// Acknowledged messages of this run (warm-up included).
    pub acknowledged: u64,
    /// Messages read back (all writers).
    pub read: u64,
    /// Acknowledged messages read back with intact content.
    pub matched: u64,
    /// Acknowledged but not read back.
    pub missing: u64,
    /// Read back with our header but a bad length or checksum.
    pub corrupt: u64,
    /// Extra copies of a message already read (e.g. a retried batch stored twice).
    pub duplicates: u64,
    /// Present although its send was not acknowledged (timed out, yet stored): harmless.
    pub unacked_present: u64,
    /// Intact header of this run but a producer id / sequence that was never sent.
    pub unexpected: u64,
    /// Not written by this run.
    pub foreign: u64,
    /// Errors the consumer reported while reading.
    pub read_errors: u64,
    /// The read did not reach the high watermarks in time.
    pub timed_out: bool,
    /// Up to 10 missing (producer id, sequence) pairs, to start an investigation.
    pub first_missing: Vec<(u32, u64)>,
    pub first_read_error: Option<String>,
    pub read_secs: f64,
}

impl ValidationReport {
    /// Whether the run can be trusted: nothing acknowledged is missing or damaged.
    pub fn passed(&self) -> bool {
        self.missing == 0 && self.corrupt == 0 && self.unexpected == 0 && !self.timed_out
    }
}

/// Tallies what was read against what was acknowledged. Pure, so it is unit-tested.
pub struct Tally {
    run_id: u32,
    acked: Vec<Vec<bool>>,
    seen: Vec<Vec<u8>>,
    report: ValidationReport,
}

impl Tally {
    /// `acked[producer][seq]` says whether that message was acknowledged.
    pub fn new(run_id: u32, acked: Vec<Vec<bool>>) -> Tally {
        let seen = acked.iter().map(|a| vec![0u8; a.len()]).collect();
        let acknowledged = acked.iter().flatten().filter(|a| **a).count() as u64;
        Tally {
            run_id,
            acked,
            seen,
            report: ValidationReport {
                acknowledged,
                ..Default::default()
            },
        }
    }

    pub fn add(&mut self, value: Option<&[u8]>) {
        self.report.read += 1;
        match value.map(decode) {
            None | Some(Err(DecodeError::Foreign)) => self.report.foreign += 1,
            Some(Err(DecodeError::Corrupt)) => self.report.corrupt += 1,
            Some(Ok(h)) if h.run_id != self.run_id => self.report.foreign += 1,
            Some(Ok(h)) => match self
                .seen
                .get_mut(h.producer_id as usize)
                .and_then(|s| s.get_mut(h.sequence as usize))
            {
                Some(n) => *n = n.saturating_add(1),
                None => self.report.unexpected += 1,
            },
        }
    }

    /// Acknowledged messages not seen yet.
    pub fn missing_now(&self) -> u64 {
        let mut missing = 0;
        for (acked, seen) in self.acked.iter().zip(&self.seen) {
            for (a, s) in acked.iter().zip(seen) {
                if *a && *s == 0 {
                    missing += 1;
                }
            }
        }
        missing
    }

    pub fn finish(mut self) -> ValidationReport {
        let r = &mut self.report;
        for (pid, (acked, seen)) in self.acked.iter().zip(&self.seen).enumerate() {
            for (seq, (a, s)) in acked.iter().zip(seen).enumerate() {
                match (*a, *s) {
                    (true, 0) => {
                        r.missing += 1;
                        if r.first_missing.len() < 10 {
                            r.first_missing.push((pid as u32, seq as u64));
                        }
                    }
                    (true, n) => {
                        r.matched += 1;
                        r.duplicates += u64::from(n) - 1;
                    }
                    (false, 0) => {}
                    (false, n) => {
                        r.unacked_present += 1;
                        r.duplicates += u64::from(n) - 1;
                    }
                }
            }
        }
        self.report
    }
}

/// Reads `topic` from the beginning and tallies it. Blocking: run it on
/// `spawn_blocking`.
pub fn read_back(
    args: &Args,
    topic: &str,
    run_id: u32,
    acked: Vec<Vec<bool>>,
) -> Result<ValidationReport> {
    let started = Instant::now();
    let deadline = started + args.validate_timeout;
    let consumer: BaseConsumer<BenchContext> = consumer_config(args, None)
        .set("fetch.max.bytes", "52428800")
        .create_with_context(BenchContext)
        .context("creating the validation consumer")?;
    let partitions = partitions_blocking(&consumer, topic)?;
    let mut high: Vec<i64> = watermarks_blocking(&consumer, topic, &partitions)?
        .into_iter()
        .map(|(_, h)| h)
        .collect();
    let index: HashMap<i32, usize> = partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i))
        .collect();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .context("building the assignment")?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;

    let mut tally = Tally::new(run_id, acked);
    // Next offset to read per partition (-1: nothing read yet).
    let mut next: Vec<i64> = vec![-1; partitions.len()];
    let mut read_errors = 0u64;
    let mut first_read_error = None;
    let mut timed_out = false;
    loop {
        let caught_up = next.iter().zip(&high).all(|(n, h)| *h <= 0 || *n >= *h);
        if caught_up {
            if tally.missing_now() == 0 {
                break;
            }
            // Something acknowledged is still missing: has the high watermark moved?
            let fresh: Vec<i64> = watermarks_blocking(&consumer, topic, &partitions)?
                .into_iter()
                .map(|(_, h)| h)
                .collect();
            if fresh == high {
                break;
            }
            high = fresh;
            continue;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                if let Some(&i) = index.get(&m.partition()) {
                    next[i] = next[i].max(m.offset() + 1);
                }
                tally.add(m.payload());
            }
            Some(Err(e)) => {
                read_errors += 1;
                first_read_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let mut report = tally.finish();
    report.read_errors = read_errors;
    report.first_read_error = first_read_error;
    report.timed_out = timed_out;
    report.read_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{KeyPattern, PayloadPattern};
    use crate::message::{Filler, MessageBuilder};
    use crate::payload::HEADER_LEN;

    fn msg(run: u32, pid: u32, seq: u64) -> Vec<u8> {
        let filler = Filler::with_pool(PayloadPattern::Random, 64 - HEADER_LEN, 1024);
        let mut b = MessageBuilder::new(run, pid, 64, true, filler, KeyPattern::Fixed);
        b.build(seq, 0).1.to_vec()
    }

    #[test]
    fn everything_present() {
        let mut t = Tally::new(9, vec![vec![true, true], vec![true]]);
        for (p, s) in [(0, 0), (0, 1), (1, 0)] {
            t.add(Some(&msg(9, p, s)));
        }
        assert_eq!(t.missing_now(), 0);
        let r = t.finish();
        assert!(r.passed(), "{r:?}");
        assert_eq!((r.acknowledged, r.read, r.matched), (3, 3, 3));
    }

    #[test]
    fn missing_corrupt_duplicate_foreign() {
        let mut t = Tally::new(9, vec![vec![true, true, false, true]]);
        t.add(Some(&msg(9, 0, 0)));
        t.add(Some(&msg(9, 0, 0))); // duplicate
        let mut bad = msg(9, 0, 1);
        bad[50] ^= 0xff;
        t.add(Some(&bad)); // corrupt, so seq 1 is also missing
        t.add(Some(&msg(9, 0, 2))); // not acked but stored
        t.add(Some(&msg(8, 0, 3))); // another run
        t.add(Some(b"hello")); // another writer
        t.add(None); // tombstone
        t.add(Some(&msg(9, 5, 0))); // producer never existed
        assert_eq!(t.missing_now(), 2);
        let r = t.finish();
        assert!(!r.passed());
        assert_eq!(r.acknowledged, 3);
        assert_eq!(r.read, 8);
        assert_eq!(r.matched, 1);
        assert_eq!(r.missing, 2);
        assert_eq!(r.first_missing, vec![(0, 1), (0, 3)]);
        assert_eq!(r.corrupt, 1);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.unacked_present, 1);
        assert_eq!(r.foreign, 3);
        assert_eq!(r.unexpected, 1);
    }
}
