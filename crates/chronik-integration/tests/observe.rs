//! The HTTP listener of a real broker: `/metrics` checked by Prometheus' own `promtool` and
//! moving by what a known produce and fetch did, `/health` and `/ready` (also on a node that
//! cannot join its cluster), the console page rendered by headless Chromium (a screenshot
//! under the target directory), and DescribeLogDirs (key 35) answered per partition.
//!
//! Needs Debian's `prometheus` (promtool) and `chromium`: scripts/test.sh installs them.

mod core_util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chronik_integration::raw::exchange;
use chronik_integration::Broker;
use core_util::{create_topic, producer};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeLogDirsRequest, DescribeLogDirsResponse, FetchRequest, FetchResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

/// The value of one sample (`name{labels}` exactly as the exposition writes it); 0 if absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

fn scrape(broker: &Broker) -> String {
    let (status, body) = broker.http_get("/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// `promtool check metrics` on `metrics`: parse errors and lint problems both fail.
fn promtool_check(metrics: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's `prometheus` package; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One consumer Fetch (v12) of `partitions` of `topic` from offset 0, on a fresh connection.
fn fetch_from_start(broker: &Broker, topic: &str, partitions: &[i32]) -> FetchResponse {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(10 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(10 << 20)
                    })
                    .collect(),
            )]);
    exchange(&broker.bootstrap(), ApiKey::Fetch, 12, &request).expect("fetch")
}

/// Sends `count` records to `partition` of `topic` and waits for every acknowledgement.
async fn produce_to(bootstrap: &str, topic: &str, partition: i32, count: usize) {
    let producer = producer(bootstrap, &[("acks", "all")]);
    for i in 0..count {
        let value = format!("value-{partition}-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("{value} not acknowledged: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_by_what_was_produced_and_fetched() {
    let broker = Broker::start();
    let topic = "observed";
    create_topic(&broker.bootstrap(), topic, 2, &[]).await;
    let before = scrape(&broker);
    promtool_check(&before);

    produce_to(&broker.bootstrap(), topic, 0, 7).await;
    let log_size = format!("kafka_log_log_size{{topic=\"{topic}\",partition=\"0\"}}");
    let after_produce = scrape(&broker);
    let stored = sample(&after_produce, &log_size);
    assert!(stored > 0.0, "{after_produce}");

    // One fetch of both partitions, and one of a partition that does not exist.
    let fetched = fetch_from_start(&broker, topic, &[0, 1]);
    let fetched_bytes: usize = fetched.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    let missing = fetch_from_start(&broker, topic, &[9]);
    assert_eq!(missing.responses[0].partitions[0].error_code, 3);

    // A request is counted right after its response is written, so a scrape may come a
    // moment before the last one is.
    let fetches = "kafka_network_requestmetrics_requests_total{request=\"Fetch\"}";
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let after = scrape(&broker);
        if sample(&after, fetches) - sample(&before, fetches) >= 2.0 || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    promtool_check(&after);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);
    let by_topic =
        |name: &str| format!("kafka_server_brokertopicmetrics_{name}_total{{topic=\"{topic}\"}}");
    assert_eq!(delta(&by_topic("messagesin")), 7.0, "{after}");
    // Batches are stored as the producer sent them: bytes in = the log's size.
    assert_eq!(delta(&by_topic("bytesin")), stored);
    assert_eq!(delta(&by_topic("bytesout")), fetched_bytes as f64);
    assert_eq!(fetched_bytes as f64, stored);
    assert_eq!(
        sample(
            &after,
            &format!("kafka_log_log_logendoffset{{topic=\"{topic}\",partition=\"0\"}}")
        ),
        7.0
    );
    assert_eq!(
        sample(
            &after,
            &format!("kafka_cluster_partition_highwatermark{{topic=\"{topic}\",partition=\"0\"}}")
        ),
        7.0
    );
    assert_eq!(delta(fetches), 2.0);
    assert_eq!(
        delta("kafka_network_requestmetrics_errors_total{request=\"Fetch\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"}"),
        1.0,
        "{after}"
    );
    // acks=all, one record per request: 7 produce requests, each timed in every phase.
    let produces = "kafka_network_requestmetrics_requests_total{request=\"Produce\"}";
    assert_eq!(delta(produces), 7.0);
    for phase in [
        "requestqueuetime",
        "localtime",
        "remotetime",
        "responsesendtime",
        "totaltime",
    ] {
        let count =
            format!("kafka_network_requestmetrics_{phase}_seconds_count{{request=\"Produce\"}}");
        assert_eq!(delta(&count), 7.0, "{phase}");
    }
    // Each acks=all produce waited for the journal's fsync: rounds and fsyncs were recorded.
    assert!(delta("kafka_log_logflushstats_logflush_seconds_count") >= 1.0);
    assert!(delta("chronik_journal_round_appends_sum") >= 7.0);
    assert_eq!(
        sample(
            &after,
            "kafka_controller_kafkacontroller_activecontrollercount"
        ),
        1.0
    );
    // The two fetches' connections at least (the producer's too).
    assert!(
        delta("kafka_server_socketservermetrics_connection_creation_total{listener=\"PLAINTEXT\"}")
            >= 3.0
    );
}

#[test]
fn health_and_ready_answer_and_a_node_without_its_quorum_is_not_ready() {
    let broker = Broker::start();
    assert_eq!(broker.http_get("/health").unwrap().0, 200);
    assert_eq!(broker.http_get("/ready").unwrap().0, 200);
    assert_eq!(broker.http_get("/no-such-page").unwrap().0, 404);

    // Node 1 of three voters, started alone: up, but never registered.
    let voters = (1..=3)
        .map(|id| format!("{id}@127.0.0.1:{}", chronik_integration::free_port()))
        .collect::<Vec<_>>()
        .join(",");
    let mut lonely = Broker::prepare(&["--node-id", "1", "--controller-quorum-voters", &voters]);
    lonely.spawn_without_waiting();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        match lonely.http_get("/health") {
            Ok((status, _)) => break status,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no /health from the lone node: {e}; log:\n{}", lonely.log()),
        }
    };
    assert_eq!(health, 200);
    // Still waiting for its quorum a few seconds later.
    std::thread::sleep(Duration::from_secs(2));
    assert!(lonely.is_running(), "{}", lonely.log());
    assert_eq!(lonely.http_get("/ready").unwrap().0, 503);
    assert_eq!(lonely.http_get("/metrics").unwrap().0, 503);
}

/// Where this test run writes its files: `<target dir>/observe/`.
fn output_dir() -> PathBuf {
    let dir = chronik_integration::target_bin_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
        .join("observe");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with `args`; its stdout.
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium (Debian's `chromium` package; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the cell of class `class` in the row that starts with `row_start`.
fn cell<'a>(dom: &'a str, row_start: &str, class: &str) -> Option<&'a str> {
    let row = &dom[dom.find(row_start)?..];
    let row = &row[..row.find("</tr>")?];
    let open = format!("<td class=\"{class}\">");
    let value = &row[row.find(&open)? + open.len()..];
    Some(&value[..value.find("</td>")?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_shows_topics_leaders_and_consumer_lag_in_chromium() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let topic = "console-topic";
    create_topic(&bootstrap, topic, 3, &[]).await;
    let produced = [5, 3, 0];
    for (partition, &count) in produced.iter().enumerate() {
        produce_to(&bootstrap, topic, partition as i32, count).await;
    }
    // A group that consumed 2 of partition 0's records and 3 of partition 1's.
    let committed = [(0, 2), (1, 3)];
    let group = "console-group";
    let consumer: BaseConsumer = core_util::config(
        &bootstrap,
        &[("group.id", group), ("enable.auto.commit", "false")],
    )
    .create()
    .unwrap();
    let mut offsets = TopicPartitionList::new();
    for (partition, offset) in committed {
        offsets
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .unwrap();
    }
    consumer.commit(&offsets, CommitMode::Sync).expect("commit");

    let url = broker.http_url("/");
    let screenshot = output_dir().join("console.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        &url,
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,900",
        ],
    );
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 0),
        "no screenshot at {}",
        screenshot.display()
    );
    let dom = chromium(&url, &["--dump-dom"]);
    for partition in 0..3 {
        let row = format!("<tr data-topic=\"{topic}\" data-partition=\"{partition}\">");
        assert_eq!(cell(&dom, &row, "leader"), Some("1"), "{dom}");
    }
    for (partition, offset) in committed {
        let row = format!(
            "<tr data-group=\"{group}\" data-topic=\"{topic}\" data-partition=\"{partition}\">"
        );
        let lag = produced[partition as usize] as i64 - offset;
        assert_eq!(
            cell(&dom, &row, "lag"),
            Some(lag.to_string().as_str()),
            "{dom}"
        );
    }
    let (status, json) = broker.http_get("/console.json").unwrap();
    assert_eq!(status, 200);
    assert!(json.contains(&format!("\"group\":\"{group}\"")), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_reports_each_partition_size_and_lag() {
    let broker = Broker::start();
    let topic = "log-dirs";
    create_topic(&broker.bootstrap(), topic, 2, &[]).await;
    produce_to(&broker.bootstrap(), topic, 1, 4).await;

    let all: DescribeLogDirsResponse = exchange(
        &broker.bootstrap(),
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    )
    .unwrap();
    assert_eq!(all.error_code, 0);
    assert_eq!(all.results.len(), 1);
    let dir = &all.results[0];
    assert_eq!(dir.error_code, 0);
    assert_eq!(
        PathBuf::from(dir.log_dir.as_str()),
        broker.storage_dir().canonicalize().unwrap()
    );
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
    let ours = dir
        .topics
        .iter()
        .find(|t| t.name.as_str() == topic)
        .expect("the topic is listed");
    assert_eq!(ours.partitions.len(), 2);
    for p in &ours.partitions {
        // The size on disk: every segment file of the partition's directory.
        let partition_dir = broker
            .storage_dir()
            .join(format!("{topic}-{}", p.partition_index));
        let on_disk: u64 = std::fs::read_dir(&partition_dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(
            p.partition_size as u64, on_disk,
            "partition {}",
            p.partition_index
        );
        assert_eq!(p.offset_lag, 0);
        assert!(!p.is_future_key);
    }
    assert!(ours.partitions.iter().any(|p| p.partition_size > 0));

    // Asking for one partition (and one that does not exist) names only that one.
    let request =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("log-dirs")))
                .with_partitions(vec![1, 7])]));
    let one: DescribeLogDirsResponse =
        exchange(&broker.bootstrap(), ApiKey::DescribeLogDirs, 1, &request).unwrap();
    let topics = &one.results[0].topics;
    assert_eq!(topics.len(), 1);
    assert_eq!(
        topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn logs_carry_no_colour_codes_in_a_file_and_can_be_json() {
    let text = Broker::start();
    let log = text.log();
    assert!(log.contains("broker started"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a log file:\n{log}"
    );

    let json = Broker::start_with(&["--log-format", "json"]);
    let log = json.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":"),
            "not a JSON log line: {line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("broker started")));
}

#[test]
fn every_node_of_a_cluster_is_ready_and_exactly_one_is_the_active_controller() {
    let cluster = chronik_integration::Cluster::start(3, &[]);
    let mut active = 0.0;
    for node in &cluster.nodes {
        assert_eq!(node.http_get("/ready").unwrap().0, 200);
        let metrics = scrape(node);
        promtool_check(&metrics);
        active += sample(
            &metrics,
            "kafka_controller_kafkacontroller_activecontrollercount",
        );
        assert_eq!(
            sample(
                &metrics,
                "kafka_controller_kafkacontroller_activebrokercount"
            ),
            3.0
        );
        assert!(sample(&metrics, "kafka_server_raftmetrics_current_epoch") >= 1.0);
    }
    assert_eq!(active, 1.0);
}
