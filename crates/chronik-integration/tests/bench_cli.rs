//! `chronik-bench` end to end: each mode runs briefly against a real `chronik-server` and
//! its totals must be non-zero and consistent (what was acknowledged was read back);
//! bad flags must fail with a clear message.
//!
//! Needs `target/debug/chronik-bench` and `target/debug/chronik-server`
//! (`cargo build -p chronik-bench -p chronik-server`).

use std::path::Path;
use std::process::{Command, Output};

use chronik_integration::{bench_bin, free_port, Broker};

fn bench(args: &[&str]) -> Output {
    let bin = bench_bin();
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p chronik-bench`",
        bin.display()
    );
    Command::new(bin)
        .args(args)
        .env_remove("KAFKA_BOOTSTRAP_SERVERS")
        .output()
        .expect("run chronik-bench")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The number after `"key": ` at the given indentation of the pretty JSON report
/// (2 spaces: top level; 4: inside `validation` / `latency`). The integration crate has
/// no JSON parser, and the report's layout is ours.
fn field(json: &str, indent: usize, key: &str) -> u64 {
    let needle = format!("\n{}\"{key}\": ", " ".repeat(indent));
    let start = json
        .find(&needle)
        .unwrap_or_else(|| panic!("no {key} in report:\n{json}"))
        + needle.len();
    let digits: String = json[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a whole number in report:\n{json}"))
}

fn report(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()))
}

#[test]
fn bad_flags_fail_with_a_clear_error() {
    let cases: &[(&[&str], &str)] = &[
        (&["--acks", "2"], "acks"),
        (&["-m", "bogus"], "bogus"),
        (&["-d", "ten"], "duration"),
        (&["--compression", "brotli"], "brotli"),
        (&["--validate", "-s", "16"], "too small"),
        (&["-m", "consume", "--validate"], "--validate"),
        (&["--rate-limit", "0"], "rate-limit"),
        (&["--no-such-flag"], "no-such-flag"),
    ];
    for (args, expect) in cases {
        let out = bench(args);
        assert!(
            !out.status.success(),
            "{args:?} accepted\n{}",
            describe(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expect),
            "{args:?}: stderr does not mention {expect:?}\n{}",
            describe(&out)
        );
    }
}

#[test]
fn nothing_acknowledged_is_a_failure() {
    // Nobody listens on this port: no message can be acknowledged.
    let bootstrap = format!("127.0.0.1:{}", free_port());
    let out = bench(&["-b", &bootstrap, "-d", "1s", "--message-timeout-ms", "1500"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing was acknowledged"),
        "{}",
        describe(&out)
    );
}

#[test]
fn produce_with_validate_reads_back_everything_acknowledged() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("produce.json");
    let csv = dir.path().join("produce.csv");
    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-t",
        "bench-produce",
        "--create-topic",
        "-p",
        "3",
        "-c",
        "8",
        "--in-flight",
        "2",
        "-s",
        "128",
        "-d",
        "2s",
        "--validate",
        "--json-output",
        json.to_str().unwrap(),
        "--csv-output",
        csv.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let j = report(&json);
    let measured = field(&j, 2, "messages");
    let warmup = field(&j, 2, "warmup_messages");
    let acked = field(&j, 2, "acknowledged");
    let sent = field(&j, 2, "sent");
    assert!(measured > 0, "{j}");
    assert_eq!(acked, measured + warmup, "{j}");
    assert_eq!(sent, acked + field(&j, 2, "errors"), "{j}");
    assert_eq!(field(&j, 2, "bytes"), measured * 128, "{j}");
    assert_eq!(field(&j, 4, "acknowledged"), acked, "{j}");
    assert_eq!(field(&j, 4, "matched"), acked, "{j}");
    assert_eq!(field(&j, 4, "missing"), 0, "{j}");
    assert_eq!(field(&j, 4, "corrupt"), 0, "{j}");
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(csv.starts_with("elapsed_s,msgs,bytes,errors"), "{csv}");
    assert!(csv.lines().count() >= 2, "{csv}");
}

#[test]
fn produce_then_consume_counts_match() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let pjson = dir.path().join("p.json");
    let cjson = dir.path().join("c.json");
    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-t",
        "bench-consume",
        "--create-topic",
        "-p",
        "2",
        "-c",
        "4",
        "-n",
        "1000",
        "--validate",
        "--json-output",
        pjson.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let p = report(&pjson);
    assert_eq!(field(&p, 2, "acknowledged"), 1000, "{p}");
    assert_eq!(field(&p, 4, "matched"), 1000, "{p}");

    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-t",
        "bench-consume",
        "-m",
        "consume",
        "-c",
        "2",
        "-n",
        "1000",
        "--json-output",
        cjson.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let c = report(&cjson);
    assert_eq!(field(&c, 2, "messages"), 1000, "{c}");
    assert_eq!(field(&c, 2, "errors"), 0, "{c}");
    assert!(
        c.contains("content: 1000 bench messages intact, 0 corrupt"),
        "{c}"
    );
}

#[test]
fn round_trip_measures_arrivals_of_everything_acknowledged() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rt.json");
    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-t",
        "bench-rt",
        "--create-topic",
        "-m",
        "round-trip",
        "-c",
        "4",
        "-d",
        "2s",
        "--validate",
        "--json-output",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let j = report(&json);
    let arrived = field(&j, 2, "messages") + field(&j, 2, "warmup_messages");
    assert!(arrived > 0, "{j}");
    assert_eq!(arrived, field(&j, 2, "acknowledged"), "{j}");
    assert_eq!(field(&j, 4, "missing"), 0, "{j}");
}

#[test]
fn open_loop_rate_limit_paces_sends() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rate.json");
    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-t",
        "bench-rate",
        "--create-topic",
        "-c",
        "2",
        "--rate-limit",
        "200",
        "-d",
        "2s",
        "--validate",
        "--json-output",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let j = report(&json);
    let acked = field(&j, 2, "acknowledged");
    assert!(
        (300..=500).contains(&acked),
        "expected ~400 at 200 msg/s for 2 s:\n{j}"
    );
    assert_eq!(field(&j, 4, "missing"), 0, "{j}");
}

#[test]
fn metadata_mode_completes_cycles() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("meta.json");
    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-m",
        "metadata",
        "-c",
        "2",
        "-p",
        "2",
        "-d",
        "2s",
        "--json-output",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let j = report(&json);
    assert!(field(&j, 2, "messages") > 0, "{j}");
    assert_eq!(field(&j, 2, "errors"), 0, "{j}");
}

#[test]
fn consume_with_a_group_reads_everything() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("group.json");
    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-t",
        "bench-group",
        "--create-topic",
        "-p",
        "4",
        "-c",
        "4",
        "-n",
        "2000",
        "--validate",
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let out = bench(&[
        "-b",
        &broker.bootstrap(),
        "-t",
        "bench-group",
        "-m",
        "consume",
        "-c",
        "2",
        "--consumer-group",
        "bench-group-1",
        "-n",
        "2000",
        "-d",
        "20s",
        "--json-output",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let j = report(&json);
    assert_eq!(
        field(&j, 2, "messages") + field(&j, 2, "warmup_messages"),
        2000,
        "{j}"
    );
}

#[test]
fn acknowledged_messages_survive_a_broker_crash_mid_run() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("crash.json");
    let child = Command::new(bench_bin())
        .args([
            "-b",
            &broker.bootstrap(),
            "-t",
            "bench-crash",
            "--create-topic",
            "-p",
            "2",
            "-c",
            "8",
            "-d",
            "4s",
            "--validate",
            "--json-output",
            json.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run chronik-bench");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SIGKILL and start again on the same port and data directory.
    broker.restart();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(&out),
        broker.log()
    );
    let j = report(&json);
    let acked = field(&j, 2, "acknowledged");
    assert!(acked > 0, "{j}");
    assert_eq!(field(&j, 4, "matched"), acked, "{j}");
    assert_eq!(field(&j, 4, "missing"), 0, "{j}");
    assert_eq!(field(&j, 4, "corrupt"), 0, "{j}");
}
