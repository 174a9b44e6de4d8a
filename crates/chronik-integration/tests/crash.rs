//! `kill -9` in the middle of an acks=1 produce stream: every acknowledged record must survive at
//! the offset it was acknowledged with, offsets stay contiguous from 0, nothing is duplicated.
//!
//! The producer does not retry (a retried acks=1 send may legitimately be written twice), so a
//! duplicate here can only come from the broker.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chronik_integration::Broker;
use core_util::{config, consume_all, create_topic};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// Records every acknowledged (partition, offset, payload).
#[derive(Clone, Default)]
struct AckLog {
    acked: Arc<Mutex<Vec<(i32, i64, String)>>>,
    failed: Arc<Mutex<usize>>,
}

impl ClientContext for AckLog {}

impl ProducerContext for AckLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                let payload = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                self.acked
                    .lock()
                    .unwrap()
                    .push((m.partition(), m.offset(), payload));
            }
            Err(_) => *self.failed.lock().unwrap() += 1,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_acks_one_stream_keeps_every_acknowledged_record() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "crash";
    let partitions = 3;
    create_topic(&bootstrap, topic, partitions, &[]).await;

    let log = AckLog::default();
    let producer: BaseProducer<AckLog> = config(
        &bootstrap,
        &[
            ("acks", "1"),
            ("linger.ms", "1"),
            ("message.send.max.retries", "0"),
            ("enable.idempotence", "false"),
            ("message.timeout.ms", "2000"),
            ("reconnect.backoff.ms", "50"),
        ],
    )
    .create_with_context(log.clone())
    .expect("producer");

    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        let topic = topic.to_string();
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let payload = format!("m{sent}");
                let partition = (sent % partitions as u64) as i32;
                let record = BaseRecord::<(), str>::to(&topic)
                    .partition(partition)
                    .payload(payload.as_str());
                match producer.send(record) {
                    Ok(()) => sent += 1,
                    Err(_) => {
                        producer.poll(Duration::from_millis(5));
                    }
                }
                producer.poll(Duration::ZERO);
                if sent.is_multiple_of(200) {
                    // Keep a steady stream rather than a single burst.
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            // Everything still queued fails within message.timeout.ms (the broker is down).
            let _ = producer.flush(Duration::from_secs(15));
            sent
        })
    };

    // Let the stream run, then SIGKILL the broker while it is writing.
    let start = Instant::now();
    while log.acked.lock().unwrap().len() < 3000 && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        log.acked.lock().unwrap().len() >= 3000,
        "producer made no progress"
    );
    broker.kill();
    let acked_at_kill = log.acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    broker.restart();

    let acked = log.acked.lock().unwrap().clone();
    let failed = *log.failed.lock().unwrap();
    assert!(
        failed > 0 || acked.len() as u64 == sent,
        "sent {sent}, acked {}",
        acked.len()
    );
    eprintln!(
        "sent {sent}, acked {} ({acked_at_kill} at kill), failed {failed}",
        acked.len()
    );

    // Read everything that is stored: at least every acknowledged record.
    let read = consume_all(&bootstrap, topic, partitions, acked.len());
    let mut stored: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let mut seen_payloads: HashMap<String, (i32, i64)> = HashMap::new();
    for m in &read {
        let payload = String::from_utf8(m.value.clone()).unwrap();
        if let Some(first) = seen_payloads.insert(payload.clone(), (m.partition, m.offset)) {
            panic!(
                "{payload} stored twice: at {first:?} and {:?}",
                (m.partition, m.offset)
            );
        }
        assert!(
            stored.insert((m.partition, m.offset), payload).is_none(),
            "offset {:?} delivered twice",
            (m.partition, m.offset)
        );
    }
    for p in 0..partitions {
        let offsets: Vec<i64> = stored
            .keys()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        assert_eq!(
            offsets,
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "partition {p}: offsets not contiguous from 0"
        );
    }
    for (p, o, payload) in &acked {
        assert_eq!(
            stored.get(&(*p, *o)),
            Some(payload),
            "acknowledged {payload} at {p}/{o} lost or moved"
        );
    }
}
