//! `chronik-bench` end to end: each mode runs briefly against a real `chronik-server` and
//! its totals must be non-zero and consistent (what was acknowledged was read back);
//! bad flags must fail with a clear message.
//!
//! The tests share the running ([`run`], [`run_report`]: flags against a broker, success
//! asserted with the broker's log), the JSON report ([`Report`]) and the validation
//! invariants ([`Report::assert_none_missing`], [`Report::assert_read_back`]).
//!
//! Needs `target/debug/chronik-bench` and `target/debug/chronik-server`
//! (`cargo build -p chronik-bench -p chronik-server`).

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chronik_integration::{bench_bin, free_port, Broker};

/// chronik-bench with `args`, ignoring `KAFKA_BOOTSTRAP_SERVERS` from the environment.
fn bench_command(args: &[impl AsRef<OsStr>]) -> Command {
    let bin = bench_bin();
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p chronik-bench`",
        bin.display()
    );
    let mut command = Command::new(bin);
    command.args(args).env_remove("KAFKA_BOOTSTRAP_SERVERS");
    command
}

fn bench(args: &[impl AsRef<OsStr>]) -> Output {
    bench_command(args).output().expect("run chronik-bench")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The flags of a run against `broker`: `-b <bootstrap>`, `args`, then `--json-output
/// <json>` when given.
fn flags(broker: &Broker, args: &[&str], json: Option<&Path>) -> Vec<String> {
    let mut flags = vec!["-b".to_string(), broker.bootstrap()];
    flags.extend(args.iter().map(|a| a.to_string()));
    if let Some(json) = json {
        flags.push("--json-output".to_string());
        flags.push(json.to_str().unwrap().to_string());
    }
    flags
}

fn assert_succeeded(out: &Output, broker: &Broker) {
    assert!(
        out.status.success(),
        "{}\nbroker log:\n{}",
        describe(out),
        broker.log()
    );
}

/// The flags of a command line without quoting (none of ours have spaces).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs chronik-bench against `broker` with `args` and asserts that it succeeded.
fn run(broker: &Broker, args: &[&str]) {
    assert_succeeded(&bench(&flags(broker, args, None)), broker);
}

/// [`run`], with the JSON report written to a temporary file: returns that report.
fn run_report(broker: &Broker, args: &[&str]) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    assert_succeeded(&bench(&flags(broker, args, Some(&json))), broker);
    Report::read(&json)
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

/// A chronik-bench JSON report; it displays as its text, for assertion messages.
struct Report(String);

impl Report {
    fn read(path: &Path) -> Report {
        Report(
            std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display())),
        )
    }

    /// A top-level number (`messages`, `acknowledged`, ...).
    fn top(&self, key: &str) -> u64 {
        field(&self.0, 2, key)
    }

    /// The first number named `key` one level down (in `validation` or `latency`).
    fn nested(&self, key: &str) -> u64 {
        field(&self.0, 4, key)
    }

    /// Measured plus warm-up messages.
    fn all_messages(&self) -> u64 {
        self.top("messages") + self.top("warmup_messages")
    }

    /// Validation found no acknowledged message missing.
    fn assert_none_missing(&self) {
        assert_eq!(self.nested("missing"), 0, "{self}");
    }

    /// Something was acknowledged and validation read all of it back intact; returns the
    /// number acknowledged.
    fn assert_read_back(&self) -> u64 {
        let acked = self.top("acknowledged");
        assert!(acked > 0, "{self}");
        assert_eq!(self.nested("matched"), acked, "{self}");
        self.assert_none_missing();
        assert_eq!(self.nested("corrupt"), 0, "{self}");
        acked
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
    let csv = dir.path().join("produce.csv");
    let mut args =
        words("-t bench-produce --create-topic -p 3 -c 8 --in-flight 2 -s 128 -d 2s --validate");
    args.extend(["--csv-output", csv.to_str().unwrap()]);
    let j = run_report(&broker, &args);
    let measured = j.top("messages");
    let acked = j.top("acknowledged");
    assert!(measured > 0, "{j}");
    assert_eq!(acked, measured + j.top("warmup_messages"), "{j}");
    assert_eq!(j.top("sent"), acked + j.top("errors"), "{j}");
    assert_eq!(j.top("bytes"), measured * 128, "{j}");
    assert_eq!(j.nested("acknowledged"), acked, "{j}");
    j.assert_read_back();
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(csv.starts_with("elapsed_s,msgs,bytes,errors"), "{csv}");
    assert!(csv.lines().count() >= 2, "{csv}");
}

#[test]
fn produce_then_consume_counts_match() {
    let broker = Broker::start();
    let p = run_report(
        &broker,
        &words("-t bench-consume --create-topic -p 2 -c 4 -n 1000 --validate"),
    );
    assert_eq!(p.top("acknowledged"), 1000, "{p}");
    assert_eq!(p.nested("matched"), 1000, "{p}");

    let c = run_report(&broker, &words("-t bench-consume -m consume -c 2 -n 1000"));
    assert_eq!(c.top("messages"), 1000, "{c}");
    assert_eq!(c.top("errors"), 0, "{c}");
    assert!(
        c.0.contains("content: 1000 bench messages intact, 0 corrupt"),
        "{c}"
    );
}

#[test]
fn round_trip_measures_arrivals_of_everything_acknowledged() {
    let broker = Broker::start();
    let j = run_report(
        &broker,
        &words("-t bench-rt --create-topic -m round-trip -c 4 -d 2s --validate"),
    );
    let arrived = j.all_messages();
    assert!(arrived > 0, "{j}");
    assert_eq!(arrived, j.top("acknowledged"), "{j}");
    j.assert_none_missing();
}

#[test]
fn open_loop_rate_limit_paces_sends() {
    let broker = Broker::start();
    let j = run_report(
        &broker,
        &words("-t bench-rate --create-topic -c 2 --rate-limit 200 -d 2s --validate"),
    );
    let acked = j.top("acknowledged");
    assert!(
        (300..=500).contains(&acked),
        "expected ~400 at 200 msg/s for 2 s:\n{j}"
    );
    j.assert_none_missing();
}

#[test]
fn metadata_mode_completes_cycles() {
    let broker = Broker::start();
    let j = run_report(&broker, &words("-m metadata -c 2 -p 2 -d 2s"));
    assert!(j.top("messages") > 0, "{j}");
    assert_eq!(j.top("errors"), 0, "{j}");
}

#[test]
fn consume_with_a_group_reads_everything() {
    let broker = Broker::start();
    run(
        &broker,
        &words("-t bench-group --create-topic -p 4 -c 4 -n 2000 --validate"),
    );
    let j = run_report(
        &broker,
        &words("-t bench-group -m consume -c 2 --consumer-group bench-group-1 -n 2000 -d 20s"),
    );
    assert_eq!(j.all_messages(), 2000, "{j}");
}

#[test]
fn acknowledged_messages_survive_a_broker_crash_mid_run() {
    let mut broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("crash.json");
    let args = words("-t bench-crash --create-topic -p 2 -c 8 -d 4s --validate");
    let child = bench_command(&flags(&broker, &args, Some(&json)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chronik-bench");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SIGKILL and start again on the same port and data directory.
    broker.restart();
    let out = child.wait_with_output().unwrap();
    assert_succeeded(&out, &broker);
    Report::read(&json).assert_read_back();
}
