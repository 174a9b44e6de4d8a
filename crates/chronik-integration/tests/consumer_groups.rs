//! Consumer groups with real librdkafka consumers against a real broker process: rebalances on
//! join, clean leave and crash (a SIGKILLed helper process, so only the session timeout can
//! notice), both assignors, static membership, and committed offsets across a broker restart.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chronik_integration::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const HELPER_ENV: &str = "CHRONIK_GROUP_HELPER";

fn start_broker() -> Broker {
    Broker::start_with(&["--group-initial-rebalance-delay-ms", "0"])
}

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    for r in results {
        r.unwrap();
    }
}

fn produce(bootstrap: &str, topic: &str, ids: std::ops::Range<u64>) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for id in ids {
        let payload = id.to_string();
        producer
            .send(BaseRecord::to(topic).key(&payload).payload(&payload))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Counts rebalance callbacks, so a test can tell that none happened.
#[derive(Default)]
struct Counting {
    rebalances: AtomicUsize,
}

impl ClientContext for Counting {}
impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "1000");
    config
}

/// Polls, records each message id with `record`, then commits it synchronously. Returns the
/// ids whose commit failed (a rebalance raced the commit): those may be processed again.
fn consume_loop(
    consumer: &BaseConsumer<Counting>,
    stop: &AtomicBool,
    mut record: impl FnMut(u64),
) -> Vec<u64> {
    let mut uncommitted = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(100)) {
            let id: u64 = std::str::from_utf8(msg.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            record(id);
            if consumer.commit_message(&msg, CommitMode::Sync).is_err() {
                uncommitted.push(id);
            }
        }
    }
    uncommitted
}

struct InProcessConsumer {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<u64>>,
}

fn spawn_consumer(
    bootstrap: &str,
    group: &str,
    topic: &str,
    seen: Arc<Mutex<Vec<u64>>>,
) -> InProcessConsumer {
    let stop = Arc::new(AtomicBool::new(false));
    let config = consumer_config(bootstrap, group);
    let topic = topic.to_string();
    let thread_stop = stop.clone();
    let handle = std::thread::spawn(move || {
        let consumer: BaseConsumer<Counting> =
            config.create_with_context(Counting::default()).unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let failed = consume_loop(&consumer, &thread_stop, |id| seen.lock().unwrap().push(id));
        // Dropping closes the consumer: it leaves the group cleanly.
        drop(consumer);
        failed
    });
    InProcessConsumer { stop, handle }
}

impl InProcessConsumer {
    fn leave(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// A consumer in a child process (this test binary re-run as a helper): it appends each id to
/// a file before committing it, and is killed with SIGKILL so it never leaves the group.
fn spawn_crashing_consumer(
    bootstrap: &str,
    group: &str,
    topic: &str,
    out: &std::path::Path,
) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_helper_consumer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HELPER_ENV,
            format!("{bootstrap}|{group}|{topic}|{}", out.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Entry point of the helper process (ignored unless run by `spawn_crashing_consumer`).
#[test]
#[ignore]
fn crash_helper_consumer() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let (bootstrap, group, topic, path) = (parts[0], parts[1], parts[2], parts[3]);
    let consumer: BaseConsumer<Counting> = consumer_config(bootstrap, group)
        .create_with_context(Counting::default())
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let stop = AtomicBool::new(false);
    consume_loop(&consumer, &stop, |id| {
        writeln!(file, "{id}").unwrap();
        file.flush().unwrap();
    });
}

fn read_ids(path: &std::path::Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `group` is Stable with `members` members.
fn wait_for_stable_group(bootstrap: &str, group: &str, members: usize) {
    let admin: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    wait_until(Duration::from_secs(25), "a stable group", || {
        admin
            .fetch_group_list(Some(group), Duration::from_secs(2))
            .ok()
            .and_then(|list| {
                list.groups()
                    .first()
                    .map(|g| g.state() == "Stable" && g.members().len() == members)
            })
            .unwrap_or(false)
    });
}

#[test]
fn join_leave_and_crash_lose_nothing_and_duplicate_only_after_the_crash() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("groups-e2e", "g-e2e");
    create_topic(&bootstrap, topic, 6);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let dir = tempfile::tempdir().unwrap();
    let crash_file = dir.path().join("crashed.txt");

    let a = spawn_consumer(&bootstrap, group, topic, seen.clone());
    let b = spawn_consumer(&bootstrap, group, topic, seen.clone());
    let mut crasher = spawn_crashing_consumer(&bootstrap, group, topic, &crash_file);
    wait_for_stable_group(&bootstrap, group, 3);
    produce(&bootstrap, topic, 0..300);
    let total = |seen: &Arc<Mutex<Vec<u64>>>| {
        let mut all: HashSet<u64> = seen.lock().unwrap().iter().copied().collect();
        all.extend(read_ids(&crash_file));
        all.len()
    };
    wait_until(Duration::from_secs(20), "the first 300 messages", || {
        total(&seen) >= 300
    });
    assert!(
        !read_ids(&crash_file).is_empty(),
        "the helper consumer got no partitions"
    );

    // A member joins.
    let d = spawn_consumer(&bootstrap, group, topic, seen.clone());
    produce(&bootstrap, topic, 300..600);
    wait_until(Duration::from_secs(20), "600 messages", || {
        total(&seen) >= 600
    });

    // A member leaves cleanly, then one crashes.
    let mut uncommitted = a.leave();
    produce(&bootstrap, topic, 600..900);
    wait_until(Duration::from_secs(20), "900 messages", || {
        total(&seen) >= 900
    });
    crasher.kill().unwrap();
    crasher.wait().unwrap();
    let crashed: Vec<u64> = read_ids(&crash_file);
    produce(&bootstrap, topic, 900..1200);
    wait_until(
        Duration::from_secs(25),
        "1200 messages after the crash",
        || total(&seen) >= 1200,
    );

    uncommitted.extend(b.leave());
    uncommitted.extend(d.leave());
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for id in seen.lock().unwrap().iter().chain(crashed.iter()) {
        *counts.entry(*id).or_default() += 1;
    }
    assert_eq!(counts.len(), 1200, "every produced message is processed");
    let crashed: HashSet<u64> = crashed.into_iter().collect();
    let duplicates: Vec<u64> = counts
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(id, _)| *id)
        .collect();
    for id in &duplicates {
        assert!(
            crashed.contains(id) || uncommitted.contains(id),
            "message {id} processed twice, but it was committed by a live member"
        );
    }
    // The crashed member commits after every message: at most one uncommitted per partition.
    let crash_dups = duplicates.iter().filter(|id| crashed.contains(id)).count();
    assert!(
        crash_dups <= 6,
        "{crash_dups} duplicates from the crashed member"
    );
}

/// Two consumers with `strategy` complete a rebalance: together they own every partition and
/// the group is Stable with that protocol.
fn assignor_completes(strategy: &str, protocol: &str) {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let topic = format!("assignor-{protocol}");
    let group = format!("g-{protocol}");
    create_topic(&bootstrap, &topic, 4);
    let consumers: Vec<BaseConsumer<Counting>> = (0..2)
        .map(|_| {
            let c: BaseConsumer<Counting> = consumer_config(&bootstrap, &group)
                .set("partition.assignment.strategy", strategy)
                .create_with_context(Counting::default())
                .unwrap();
            c.subscribe(&[&topic]).unwrap();
            c
        })
        .collect();
    wait_until(Duration::from_secs(25), "both consumers assigned", || {
        for c in &consumers {
            let _ = c.poll(Duration::from_millis(50));
        }
        let owned: Vec<usize> = consumers
            .iter()
            .map(|c| c.assignment().unwrap().count())
            .collect();
        owned.iter().all(|n| *n > 0) && owned.iter().sum::<usize>() == 4
    });
    let groups = consumers[0]
        .fetch_group_list(Some(&group), Duration::from_secs(5))
        .unwrap();
    let info = &groups.groups()[0];
    assert_eq!(info.state(), "Stable");
    assert_eq!(info.protocol(), protocol);
    assert_eq!(info.members().len(), 2);
}

#[test]
fn range_assignor_completes_rebalances() {
    assignor_completes("range", "range");
}

#[test]
fn cooperative_sticky_assignor_completes_rebalances() {
    assignor_completes("cooperative-sticky", "cooperative-sticky");
}

#[test]
fn static_member_restart_within_session_timeout_causes_no_rebalance() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("static-topic", "g-static");
    create_topic(&bootstrap, topic, 4);
    let make = |instance: &str| {
        let c: BaseConsumer<Counting> = consumer_config(&bootstrap, group)
            .set("group.instance.id", instance)
            .create_with_context(Counting::default())
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        c
    };
    let a = make("static-a");
    let b = make("static-b");
    let poll_until_assigned = |cs: &[&BaseConsumer<Counting>]| {
        wait_until(Duration::from_secs(25), "static members assigned", || {
            for c in cs {
                let _ = c.poll(Duration::from_millis(50));
            }
            cs.iter()
                .map(|c| c.assignment().unwrap().count())
                .sum::<usize>()
                == 4
                && cs.iter().all(|c| c.assignment().unwrap().count() > 0)
        });
    };
    poll_until_assigned(&[&a, &b]);
    // Let any second rebalance (b joining after a) settle, then take b's count.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        let _ = a.poll(Duration::from_millis(50));
        let _ = b.poll(Duration::from_millis(50));
    }
    let before = b.context().rebalances.load(Ordering::SeqCst);
    let a_partitions = a.assignment().unwrap().count();
    drop(a); // a static member does not leave the group on close
    let a = make("static-a");
    wait_until(
        Duration::from_secs(10),
        "the restarted static member's assignment",
        || {
            let _ = a.poll(Duration::from_millis(50));
            let _ = b.poll(Duration::from_millis(50));
            a.assignment().unwrap().count() == a_partitions
        },
    );
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        let _ = a.poll(Duration::from_millis(50));
        let _ = b.poll(Duration::from_millis(50));
    }
    assert_eq!(
        b.context().rebalances.load(Ordering::SeqCst),
        before,
        "the other member saw a rebalance"
    );
    let groups = b
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .unwrap();
    assert_eq!(groups.groups()[0].state(), "Stable");
    assert_eq!(groups.groups()[0].members().len(), 2);
}

#[test]
fn committed_offsets_survive_a_broker_restart() {
    let mut broker = start_broker();
    let bootstrap = broker.bootstrap();
    let (topic, group) = ("restart-topic", "g-restart");
    create_topic(&bootstrap, topic, 1);
    produce(&bootstrap, topic, 0..20);
    {
        let c: BaseConsumer<Counting> = consumer_config(&bootstrap, group)
            .create_with_context(Counting::default())
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        let mut got = 0;
        wait_until(Duration::from_secs(20), "10 messages", || {
            if let Some(Ok(msg)) = c.poll(Duration::from_millis(100)) {
                got += 1;
                if got == 10 {
                    assert_eq!(msg.offset(), 9);
                    c.commit_message(&msg, CommitMode::Sync).unwrap();
                }
            }
            got >= 10
        });
        let committed = c.committed(Duration::from_secs(5)).unwrap();
        assert_eq!(
            committed.find_partition(topic, 0).unwrap().offset(),
            Offset::Offset(10)
        );
    }
    broker.restart(); // SIGKILL, then start again on the same data
    let c: BaseConsumer<Counting> = consumer_config(&bootstrap, group)
        .create_with_context(Counting::default())
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    assert_eq!(
        committed.find_partition(topic, 0).unwrap().offset(),
        Offset::Offset(10)
    );
    c.subscribe(&[topic]).unwrap();
    let mut first = None;
    wait_until(
        Duration::from_secs(20),
        "the first message after restart",
        || {
            if let Some(Ok(msg)) = c.poll(Duration::from_millis(100)) {
                first = Some(msg.offset());
            }
            first.is_some()
        },
    );
    assert_eq!(
        first,
        Some(10),
        "the consumer resumes exactly at the committed offset"
    );
}
