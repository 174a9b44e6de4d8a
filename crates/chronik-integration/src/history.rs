//! What a fault test saw, per partition, and the check of it: lost acknowledged writes,
//! duplicates, conflicting or misplaced offsets, torn consumer passes, regressing high
//! watermarks and leader epochs.
//!
//! A test shares one [`History`] (`Arc<History>`; recording takes `&self` behind a mutex, so
//! concurrent producers and consumers record into it directly) and records:
//! - every value it hands to a producer ([`History::record_sent`]); values must be unique
//!   byte strings across the whole history (e.g. `p{partition}-{seq}`, as
//!   [`UniqueProducer`] writes);
//! - each acknowledgement (value → offset, [`History::record_ack`]) or definite failure
//!   ([`History::record_failure`]); a failed value may still have been written, so it is
//!   never reported lost and never reported when read;
//! - what consumers read, (value, offset), grouped in *passes* ([`History::new_pass`]): one
//!   pass is one consumer reading a partition forwards from some offset, so within a pass the
//!   offsets of a partition must increase by exactly one (this holds for the idempotent,
//!   non-transactional writes these tests make: no control batches, no compaction);
//! - high watermarks and leader epochs as observed, in the order observed
//!   ([`History::record_high_watermark`], [`History::record_leader_epoch`]). Record a
//!   partition's observations from one thread right after making them: the check compares
//!   each with the one recorded before it.
//!
//! [`History::check`] returns a [`Report`]; see [`Anomaly`] for what it looks for. The
//! checks are over everything recorded, so a final pass that reads every partition from the
//! start to its end is what makes "acknowledged but never read" mean "lost".
//!
//! [`UniqueProducer`] drives an idempotent acks=all producer in a background thread that
//! records into a `History`; [`read_pass`] reads partitions from the beginning to their high
//! watermark as one pass.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// One observed value of a high watermark or leader epoch, with when it was recorded
/// (time since the history was created).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation<T> {
    pub at: Duration,
    pub value: T,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ReadRecord {
    pass: u64,
    value: Vec<u8>,
    offset: i64,
}

#[derive(Default)]
struct PartitionHistory {
    sent: Vec<Vec<u8>>,
    acks: Vec<(Vec<u8>, i64)>,
    failures: Vec<(Vec<u8>, String)>,
    reads: Vec<ReadRecord>,
    high_watermarks: Vec<Observation<i64>>,
    leader_epochs: Vec<Observation<i32>>,
}

struct Inner {
    partitions: BTreeMap<i32, PartitionHistory>,
    next_pass: u64,
}

/// The record of one fault test; see the module docs.
pub struct History {
    started: Instant,
    inner: Mutex<Inner>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

/// How much a history holds, summed over partitions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: usize,
    pub acked: usize,
    pub failed: usize,
    pub reads: usize,
}

impl History {
    pub fn new() -> History {
        History {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                partitions: BTreeMap::new(),
                next_pass: 0,
            }),
        }
    }

    fn with<R>(&self, partition: i32, f: impl FnOnce(&mut PartitionHistory) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(inner.partitions.entry(partition).or_default())
    }

    /// A value handed to a producer for `partition`.
    pub fn record_sent(&self, partition: i32, value: &[u8]) {
        self.with(partition, |p| p.sent.push(value.to_vec()));
    }

    /// The broker acknowledged `value` at `offset`.
    pub fn record_ack(&self, partition: i32, value: &[u8], offset: i64) {
        self.with(partition, |p| p.acks.push((value.to_vec(), offset)));
    }

    /// The producer gave up on `value` (it may or may not have been written).
    pub fn record_failure(&self, partition: i32, value: &[u8], error: &str) {
        self.with(partition, |p| {
            p.failures.push((value.to_vec(), error.to_string()))
        });
    }

    /// A new consumer pass id, for [`Self::record_read`].
    pub fn new_pass(&self) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_pass += 1;
        inner.next_pass
    }

    /// Pass `pass` read `value` at `offset` of `partition`.
    pub fn record_read(&self, pass: u64, partition: i32, value: &[u8], offset: i64) {
        self.with(partition, |p| {
            p.reads.push(ReadRecord {
                pass,
                value: value.to_vec(),
                offset,
            })
        });
    }

    /// A high watermark of `partition` as just observed.
    pub fn record_high_watermark(&self, partition: i32, high_watermark: i64) {
        let at = self.started.elapsed();
        self.with(partition, |p| {
            p.high_watermarks.push(Observation {
                at,
                value: high_watermark,
            })
        });
    }

    /// A leader epoch of `partition` as just observed.
    pub fn record_leader_epoch(&self, partition: i32, leader_epoch: i32) {
        let at = self.started.elapsed();
        self.with(partition, |p| {
            p.leader_epochs.push(Observation {
                at,
                value: leader_epoch,
            })
        });
    }

    /// Totals so far (e.g. to wait until a producer made progress).
    pub fn counts(&self) -> Counts {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = Counts::default();
        for p in inner.partitions.values() {
            counts.sent += p.sent.len();
            counts.acked += p.acks.len();
            counts.failed += p.failures.len();
            counts.reads += p.reads.len();
        }
        counts
    }

    /// The acknowledged (value, offset) pairs of `partition`, in acknowledgement order.
    pub fn acks(&self, partition: i32) -> Vec<(Vec<u8>, i64)> {
        self.with(partition, |p| p.acks.clone())
    }

    /// Checks everything recorded so far.
    pub fn check(&self) -> Report {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = Report {
            counts: Counts::default(),
            anomalies: Vec::new(),
        };
        for (&partition, p) in &inner.partitions {
            report.counts.sent += p.sent.len();
            report.counts.acked += p.acks.len();
            report.counts.failed += p.failures.len();
            report.counts.reads += p.reads.len();
            check_partition(partition, p, &mut report.anomalies);
        }
        report
    }
}

fn check_partition(partition: i32, p: &PartitionHistory, out: &mut Vec<Anomaly>) {
    // Offsets each value was read at, and values read at each offset (both deduplicated,
    // in first-read order).
    let mut offsets_of: HashMap<&[u8], Vec<i64>> = HashMap::new();
    let mut values_at: BTreeMap<i64, Vec<&[u8]>> = BTreeMap::new();
    for r in &p.reads {
        let offsets = offsets_of.entry(&r.value).or_default();
        if !offsets.contains(&r.offset) {
            offsets.push(r.offset);
        }
        let values = values_at.entry(r.offset).or_default();
        if !values.contains(&r.value.as_slice()) {
            values.push(&r.value);
        }
    }

    let sent: std::collections::HashSet<&[u8]> = p.sent.iter().map(Vec::as_slice).collect();
    let mut unsent_reported = std::collections::HashSet::new();
    for r in &p.reads {
        if !sent.contains(r.value.as_slice()) && unsent_reported.insert(r.value.as_slice()) {
            out.push(Anomaly::Unsent {
                partition,
                value: r.value.clone(),
                offset: r.offset,
            });
        }
    }

    for (value, &offset) in p.acks.iter().map(|(v, o)| (v.as_slice(), o)) {
        match offsets_of.get(value) {
            None => out.push(Anomaly::Lost {
                partition,
                value: value.to_vec(),
                acked_offset: offset,
            }),
            Some(read) => {
                for &read_offset in read.iter().filter(|&&o| o != offset) {
                    out.push(Anomaly::AckOffsetMismatch {
                        partition,
                        value: value.to_vec(),
                        acked_offset: offset,
                        read_offset,
                    });
                }
            }
        }
    }

    let mut duplicates: Vec<_> = offsets_of
        .iter()
        .filter(|(_, offsets)| offsets.len() > 1)
        .collect();
    duplicates.sort_by_key(|(_, offsets)| offsets[0]);
    for (value, offsets) in duplicates {
        let mut offsets = offsets.clone();
        offsets.sort_unstable();
        out.push(Anomaly::Duplicate {
            partition,
            value: value.to_vec(),
            offsets,
        });
    }

    for (&offset, values) in &values_at {
        if values.len() > 1 {
            out.push(Anomaly::OffsetConflict {
                partition,
                offset,
                values: values.iter().map(|v| v.to_vec()).collect(),
            });
        }
    }

    let mut last_in_pass: HashMap<u64, i64> = HashMap::new();
    for r in &p.reads {
        if let Some(previous) = last_in_pass.insert(r.pass, r.offset) {
            if r.offset <= previous {
                out.push(Anomaly::OutOfOrder {
                    partition,
                    pass: r.pass,
                    previous,
                    offset: r.offset,
                });
            } else if r.offset != previous + 1 {
                out.push(Anomaly::Gap {
                    partition,
                    pass: r.pass,
                    previous,
                    offset: r.offset,
                });
            }
        }
    }

    for w in p.high_watermarks.windows(2) {
        if w[1].value < w[0].value {
            out.push(Anomaly::HighWatermarkRegression {
                partition,
                from: w[0],
                to: w[1],
            });
        }
    }
    for w in p.leader_epochs.windows(2) {
        if w[1].value < w[0].value {
            out.push(Anomaly::LeaderEpochRegression {
                partition,
                from: w[0],
                to: w[1],
            });
        }
    }
}

/// One thing the history shows that a correct broker would not have done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// Acknowledged, never read by any pass.
    Lost {
        partition: i32,
        value: Vec<u8>,
        acked_offset: i64,
    },
    /// One value read at more than one offset: written twice.
    Duplicate {
        partition: i32,
        value: Vec<u8>,
        offsets: Vec<i64>,
    },
    /// Different values read at one offset (by different passes): the log changed under
    /// the consumers.
    OffsetConflict {
        partition: i32,
        offset: i64,
        values: Vec<Vec<u8>>,
    },
    /// Within one pass, an offset not after the one read before it.
    OutOfOrder {
        partition: i32,
        pass: u64,
        previous: i64,
        offset: i64,
    },
    /// Within one pass, offsets skipped between two reads.
    Gap {
        partition: i32,
        pass: u64,
        previous: i64,
        offset: i64,
    },
    /// A value read at another offset than the one it was acknowledged with.
    AckOffsetMismatch {
        partition: i32,
        value: Vec<u8>,
        acked_offset: i64,
        read_offset: i64,
    },
    /// A value read that was never sent to this partition.
    Unsent {
        partition: i32,
        value: Vec<u8>,
        offset: i64,
    },
    /// An observed high watermark below the one observed just before it.
    HighWatermarkRegression {
        partition: i32,
        from: Observation<i64>,
        to: Observation<i64>,
    },
    /// An observed leader epoch below the one observed just before it.
    LeaderEpochRegression {
        partition: i32,
        from: Observation<i32>,
        to: Observation<i32>,
    },
}

impl Anomaly {
    /// A short name of the kind, e.g. `lost`.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::Lost { .. } => "lost",
            Anomaly::Duplicate { .. } => "duplicate",
            Anomaly::OffsetConflict { .. } => "offset-conflict",
            Anomaly::OutOfOrder { .. } => "out-of-order",
            Anomaly::Gap { .. } => "gap",
            Anomaly::AckOffsetMismatch { .. } => "ack-offset-mismatch",
            Anomaly::Unsent { .. } => "unsent",
            Anomaly::HighWatermarkRegression { .. } => "hw-regression",
            Anomaly::LeaderEpochRegression { .. } => "epoch-regression",
        }
    }
}

fn show(value: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(value))
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::Lost {
                partition,
                value,
                acked_offset,
            } => write!(
                f,
                "p{partition}: {} acknowledged at {acked_offset}, never read",
                show(value)
            ),
            Anomaly::Duplicate {
                partition,
                value,
                offsets,
            } => write!(
                f,
                "p{partition}: {} read at offsets {offsets:?}",
                show(value)
            ),
            Anomaly::OffsetConflict {
                partition,
                offset,
                values,
            } => {
                let values: Vec<String> = values.iter().map(|v| show(v)).collect();
                write!(
                    f,
                    "p{partition}: offset {offset} read as {}",
                    values.join(" and ")
                )
            }
            Anomaly::OutOfOrder {
                partition,
                pass,
                previous,
                offset,
            } => write!(
                f,
                "p{partition}: pass {pass} read offset {offset} after {previous}"
            ),
            Anomaly::Gap {
                partition,
                pass,
                previous,
                offset,
            } => write!(
                f,
                "p{partition}: pass {pass} skipped from {previous} to {offset}"
            ),
            Anomaly::AckOffsetMismatch {
                partition,
                value,
                acked_offset,
                read_offset,
            } => write!(
                f,
                "p{partition}: {} acknowledged at {acked_offset}, read at {read_offset}",
                show(value)
            ),
            Anomaly::Unsent {
                partition,
                value,
                offset,
            } => write!(
                f,
                "p{partition}: {} read at {offset} was never sent to this partition",
                show(value)
            ),
            Anomaly::HighWatermarkRegression {
                partition,
                from,
                to,
            } => write!(
                f,
                "p{partition}: high watermark {} at {:?} then {} at {:?}",
                from.value, from.at, to.value, to.at
            ),
            Anomaly::LeaderEpochRegression {
                partition,
                from,
                to,
            } => write!(
                f,
                "p{partition}: leader epoch {} at {:?} then {} at {:?}",
                from.value, from.at, to.value, to.at
            ),
        }
    }
}

/// The result of [`History::check`].
#[derive(Clone, Debug)]
pub struct Report {
    pub counts: Counts,
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// The anomalies of one kind (see [`Anomaly::kind`]).
    pub fn of_kind(&self, kind: &str) -> Vec<&Anomaly> {
        self.anomalies.iter().filter(|a| a.kind() == kind).collect()
    }

    /// Panics with the report unless it is clean.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(self.is_clean(), "history check failed:\n{self}");
    }
}

/// Counts, then each kind with its number of anomalies and at most 20 of them.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.counts;
        writeln!(
            f,
            "sent {}, acknowledged {}, failed {}, read {}: {} anomalies",
            c.sent,
            c.acked,
            c.failed,
            c.reads,
            self.anomalies.len()
        )?;
        let mut kinds: Vec<&str> = self.anomalies.iter().map(Anomaly::kind).collect();
        kinds.dedup();
        kinds.sort_unstable();
        kinds.dedup();
        for kind in kinds {
            let of_kind = self.of_kind(kind);
            writeln!(f, "  {kind}: {}", of_kind.len())?;
            for a in of_kind.iter().take(20) {
                writeln!(f, "    {a}")?;
            }
            if of_kind.len() > 20 {
                writeln!(f, "    ...")?;
            }
        }
        Ok(())
    }
}

/// Records deliveries of a [`UniqueProducer`] into its history.
struct Recorder {
    history: Arc<History>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.history
                    .record_ack(m.partition(), m.payload().unwrap_or_default(), m.offset())
            }
            Err((e, m)) => self.history.record_failure(
                m.partition(),
                m.payload().unwrap_or_default(),
                &e.to_string(),
            ),
        }
    }
}

/// What a [`UniqueProducer`] did, returned by [`UniqueProducer::stop`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerStats {
    /// Values the producer accepted (each recorded as sent).
    pub sent: u64,
    /// Whether every sent value was acknowledged or failed before `stop` gave up waiting.
    pub flushed: bool,
}

/// An idempotent, acks=all producer writing unique values `p{partition}-{seq}` to some
/// partitions of a topic at a steady rate from a background thread, recording every send,
/// acknowledgement and failure into a [`History`].
pub struct UniqueProducer {
    stop: Arc<AtomicBool>,
    /// How long the thread flushes once stopped, set before `stop`.
    flush_timeout_ms: Arc<AtomicU64>,
    thread: Option<JoinHandle<ProducerStats>>,
}

impl UniqueProducer {
    /// Starts producing `rate_per_sec` values a second in all, round-robin over `partitions`.
    /// `config` carries `bootstrap.servers` and anything else the test wants; this sets
    /// `enable.idempotence=true` and `acks=all` over it (so librdkafka retries, without
    /// duplicates, until `message.timeout.ms`, which the test may set). Panics if the
    /// producer cannot be created.
    pub fn start(
        config: &ClientConfig,
        topic: &str,
        partitions: &[i32],
        rate_per_sec: u32,
        history: Arc<History>,
    ) -> UniqueProducer {
        assert!(!partitions.is_empty() && rate_per_sec > 0);
        let mut config = config.clone();
        config.set("enable.idempotence", "true").set("acks", "all");
        let producer: BaseProducer<Recorder> = config
            .create_with_context(Recorder {
                history: history.clone(),
            })
            .expect("creating the producer");
        let stop = Arc::new(AtomicBool::new(false));
        let flush_timeout_ms = Arc::new(AtomicU64::new(0));
        let thread = {
            let stop = stop.clone();
            let flush_timeout_ms = flush_timeout_ms.clone();
            let topic = topic.to_string();
            let partitions = partitions.to_vec();
            std::thread::Builder::new()
                .name(format!("unique-producer-{topic}"))
                .spawn(move || {
                    let stats = produce(
                        &producer,
                        &topic,
                        &partitions,
                        rate_per_sec,
                        &history,
                        &stop,
                    );
                    let timeout = Duration::from_millis(flush_timeout_ms.load(Ordering::SeqCst));
                    ProducerStats {
                        flushed: producer.flush(timeout).is_ok(),
                        ..stats
                    }
                })
                .expect("spawning the producer thread")
        };
        UniqueProducer {
            stop,
            flush_timeout_ms,
            thread: Some(thread),
        }
    }

    /// Stops sending, waits up to `flush_timeout` for outstanding values to be acknowledged
    /// or to fail, and returns what was done.
    pub fn stop(mut self, flush_timeout: Duration) -> ProducerStats {
        self.stop_inner(flush_timeout)
    }

    fn stop_inner(&mut self, flush_timeout: Duration) -> ProducerStats {
        let Some(thread) = self.thread.take() else {
            return ProducerStats::default();
        };
        self.flush_timeout_ms
            .store(flush_timeout.as_millis() as u64, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
        thread.join().expect("the producer thread panicked")
    }
}

impl Drop for UniqueProducer {
    fn drop(&mut self) {
        self.stop_inner(Duration::from_secs(5));
    }
}

/// Sends until `stop`; the caller flushes.
fn produce(
    producer: &BaseProducer<Recorder>,
    topic: &str,
    partitions: &[i32],
    rate_per_sec: u32,
    history: &History,
    stop: &AtomicBool,
) -> ProducerStats {
    let start = Instant::now();
    let mut seqs = vec![0u64; partitions.len()];
    let mut sent = 0u64;
    while !stop.load(Ordering::SeqCst) {
        // Value number `sent` is due at start + sent / rate.
        let due = start + Duration::from_secs_f64(sent as f64 / rate_per_sec as f64);
        let now = Instant::now();
        if due > now {
            producer.poll((due - now).min(Duration::from_millis(50)));
            continue;
        }
        let slot = (sent % partitions.len() as u64) as usize;
        let partition = partitions[slot];
        let value = format!("p{partition}-{}", seqs[slot]);
        let mut record = BaseRecord::<(), str>::to(topic)
            .partition(partition)
            .payload(value.as_str());
        let accepted = loop {
            match producer.send(record) {
                Ok(()) => break true,
                Err((_, back)) => {
                    // Queue full: let deliveries drain, then retry the same value.
                    record = back;
                    producer.poll(Duration::from_millis(10));
                    if stop.load(Ordering::SeqCst) {
                        break false;
                    }
                }
            }
        };
        if !accepted {
            break;
        }
        // Deliveries are reported by `poll` on this thread, so this comes before the ack.
        history.record_sent(partition, value.as_bytes());
        seqs[slot] += 1;
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    ProducerStats {
        sent,
        flushed: false,
    }
}

/// Reads `partitions` of `topic` from the beginning up to the high watermark each has when
/// the pass starts (observed and recorded first), as one pass recorded into `history`; gives
/// up at `timeout`. `config` needs `bootstrap.servers` (a `group.id` is set if missing; no
/// offsets are committed). Returns the pass id and whether every partition was read to its
/// high watermark.
pub fn read_pass(
    config: &ClientConfig,
    topic: &str,
    partitions: &[i32],
    history: &History,
    timeout: Duration,
) -> (u64, bool) {
    let deadline = Instant::now() + timeout;
    let mut config = config.clone();
    if config.get("group.id").is_none() {
        config.set("group.id", "chronik-history-read-pass");
    }
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().expect("creating the consumer");
    let pass = history.new_pass();
    // Where each partition's pass ends: its high watermark now.
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for &partition in partitions {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match consumer.fetch_watermarks(topic, partition, left.min(Duration::from_secs(5))) {
                Ok((_, high)) => {
                    history.record_high_watermark(partition, high);
                    if high > 0 {
                        remaining.insert(partition, high);
                    }
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(_) => return (pass, false),
            }
        }
    }
    let mut assignment = TopicPartitionList::new();
    for &partition in remaining.keys() {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("adding a partition");
    }
    consumer.assign(&assignment).expect("assigning partitions");
    while !remaining.is_empty() && Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(message) = message else { continue };
        let partition = message.partition();
        let Some(&end) = remaining.get(&partition) else {
            continue;
        };
        if message.offset() < end {
            history.record_read(
                pass,
                partition,
                message.payload().unwrap_or_default(),
                message.offset(),
            );
        }
        if message.offset() + 1 >= end {
            remaining.remove(&partition);
        }
    }
    (pass, remaining.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history where p0 got values v0..v4 acknowledged at 0..4 and read back by one pass.
    fn clean_history() -> History {
        let h = History::new();
        for i in 0..5 {
            let v = format!("v{i}");
            h.record_sent(0, v.as_bytes());
            h.record_ack(0, v.as_bytes(), i);
        }
        let pass = h.new_pass();
        for i in 0..5 {
            h.record_read(pass, 0, format!("v{i}").as_bytes(), i);
        }
        h
    }

    fn kinds(h: &History) -> Vec<&'static str> {
        h.check().anomalies.iter().map(Anomaly::kind).collect()
    }

    #[test]
    fn a_clean_history_has_no_anomalies() {
        let h = clean_history();
        // A second full pass, observations moving forward, a failed value never read.
        let pass = h.new_pass();
        for i in 0..5 {
            h.record_read(pass, 0, format!("v{i}").as_bytes(), i);
        }
        h.record_sent(0, b"v5");
        h.record_failure(0, b"v5", "timed out");
        for (hw, epoch) in [(3, 0), (5, 0), (5, 1)] {
            h.record_high_watermark(0, hw);
            h.record_leader_epoch(0, epoch);
        }
        let report = h.check();
        report.assert_clean();
        assert_eq!(
            report.counts,
            Counts {
                sent: 6,
                acked: 5,
                failed: 1,
                reads: 10
            }
        );
        assert_eq!(h.counts(), report.counts);
    }

    #[test]
    fn an_acknowledged_value_never_read_is_lost() {
        let h = clean_history();
        h.record_sent(0, b"v5");
        h.record_ack(0, b"v5", 5);
        // An unacknowledged or failed value that is never read is not lost.
        h.record_sent(0, b"v6");
        h.record_sent(0, b"v7");
        h.record_failure(0, b"v7", "boom");
        let report = h.check();
        assert_eq!(
            report.anomalies,
            [Anomaly::Lost {
                partition: 0,
                value: b"v5".to_vec(),
                acked_offset: 5
            }]
        );
        assert!(report.to_string().contains("lost: 1"), "{report}");
        assert!(
            report
                .to_string()
                .contains("\"v5\" acknowledged at 5, never read"),
            "{report}"
        );
    }

    #[test]
    fn a_value_at_two_offsets_is_a_duplicate() {
        let h = clean_history();
        h.record_read(h.new_pass(), 0, b"v4", 5);
        let report = h.check();
        assert!(report.anomalies.contains(&Anomaly::Duplicate {
            partition: 0,
            value: b"v4".to_vec(),
            offsets: vec![4, 5],
        }));
        // The copy at 5 also differs from the acknowledged offset.
        assert_eq!(kinds(&h), ["ack-offset-mismatch", "duplicate"]);
    }

    #[test]
    fn two_values_at_one_offset_conflict() {
        let h = clean_history();
        h.record_sent(0, b"other");
        h.record_read(h.new_pass(), 0, b"other", 2);
        let report = h.check();
        assert_eq!(
            report.of_kind("offset-conflict"),
            [&Anomaly::OffsetConflict {
                partition: 0,
                offset: 2,
                values: vec![b"v2".to_vec(), b"other".to_vec()],
            }]
        );
    }

    #[test]
    fn a_pass_going_backwards_or_skipping_is_reported() {
        let h = clean_history();
        let pass = h.new_pass();
        for offset in [0, 1, 3, 4, 2] {
            h.record_read(pass, 0, format!("v{offset}").as_bytes(), offset);
        }
        let report = h.check();
        assert_eq!(
            report.anomalies,
            [
                Anomaly::Gap {
                    partition: 0,
                    pass,
                    previous: 1,
                    offset: 3
                },
                Anomaly::OutOfOrder {
                    partition: 0,
                    pass,
                    previous: 4,
                    offset: 2
                },
            ]
        );
        // Passes are independent: interleaved reads of two passes are fine.
        let h = clean_history();
        let (a, b) = (h.new_pass(), h.new_pass());
        for i in 0..5 {
            h.record_read(a, 0, format!("v{i}").as_bytes(), i);
            h.record_read(b, 0, format!("v{i}").as_bytes(), i);
        }
        h.check().assert_clean();
    }

    #[test]
    fn a_value_read_elsewhere_than_acknowledged_is_a_mismatch() {
        let h = History::new();
        h.record_sent(1, b"a");
        h.record_sent(1, b"b");
        h.record_ack(1, b"a", 0);
        h.record_ack(1, b"b", 1);
        let pass = h.new_pass();
        h.record_read(pass, 1, b"b", 0);
        h.record_read(pass, 1, b"a", 1);
        assert_eq!(
            h.check().anomalies,
            [
                Anomaly::AckOffsetMismatch {
                    partition: 1,
                    value: b"a".to_vec(),
                    acked_offset: 0,
                    read_offset: 1
                },
                Anomaly::AckOffsetMismatch {
                    partition: 1,
                    value: b"b".to_vec(),
                    acked_offset: 1,
                    read_offset: 0
                },
            ]
        );
    }

    #[test]
    fn a_value_never_sent_to_the_partition_is_reported() {
        let h = clean_history();
        h.record_sent(1, b"elsewhere");
        h.record_read(h.new_pass(), 0, b"elsewhere", 5);
        assert_eq!(kinds(&h), ["unsent"]);
    }

    #[test]
    fn regressing_high_watermarks_and_leader_epochs_are_reported() {
        let h = clean_history();
        for hw in [1, 4, 4, 2, 5] {
            h.record_high_watermark(0, hw);
        }
        for epoch in [0, 2, 1, 1, 3] {
            h.record_leader_epoch(0, epoch);
        }
        h.record_high_watermark(1, 9); // another partition's are separate
        let report = h.check();
        let hw = report.of_kind("hw-regression");
        assert!(
            matches!(hw[..], [Anomaly::HighWatermarkRegression { partition: 0, from, to }]
                if from.value == 4 && to.value == 2 && from.at <= to.at),
            "{report}"
        );
        let epochs = report.of_kind("epoch-regression");
        assert!(
            matches!(epochs[..], [Anomaly::LeaderEpochRegression { partition: 0, from, to }]
                if from.value == 2 && to.value == 1),
            "{report}"
        );
        assert_eq!(report.anomalies.len(), 2);
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let h = Arc::new(History::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let v = format!("p{t}-{i}");
                        h.record_sent(t, v.as_bytes());
                        h.record_ack(t, v.as_bytes(), i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let counts = h.counts();
        assert_eq!((counts.sent, counts.acked), (4000, 4000));
        assert_eq!(h.check().of_kind("lost").len(), 4000);
    }
}
