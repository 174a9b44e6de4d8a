//! The fault-test tools against real brokers: a cluster whose inter-node traffic goes through
//! proxies, `UniqueProducer` and `read_pass` filling and checking a `History`, `dump-log` (the
//! binary and `chronik_storage::dump`) agreeing with what was acknowledged, and isolating a
//! node through its proxies fencing it.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chronik_integration::history::{read_pass, History, UniqueProducer};
use chronik_integration::{server_bin, Cluster};
use chronik_storage::dump::{self, BatchSummary};
use core_util::{config, create_topic};

fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `chronik-server cluster status` as `bootstrap` sees it: the alive brokers' ids and ports.
fn alive_brokers(bootstrap: &str) -> Option<BTreeSet<(i32, u16)>> {
    let brokers = core_util::status_brokers(bootstrap)?;
    Some(
        brokers
            .into_iter()
            .filter(|(_, b)| b.state == "alive")
            .map(|(id, b)| (id, b.port))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxied_cluster_serves_checks_dumps_and_isolates() {
    let cluster = Cluster::start_with_proxies(3, &["--broker-session-timeout-ms", "3000"]);
    let proxies = cluster.proxies();
    let proxy_ports: BTreeSet<(i32, u16)> = (1..=3)
        .map(|id| (id, proxies.kafka[(id - 1) as usize].port()))
        .collect();
    let node1 = cluster.nodes[0].bootstrap();
    eventually("all brokers alive", Duration::from_secs(15), || {
        alive_brokers(&node1).as_ref() == Some(&proxy_ports)
    });

    let topic = "tools";
    let partitions = [0, 1, 2];
    create_topic(&node1, topic, 3, &[]).await;
    let history = Arc::new(History::new());
    let client = config(
        &cluster.bootstrap(),
        &[("linger.ms", "5"), ("message.timeout.ms", "15000")],
    );
    let producer = UniqueProducer::start(&client, topic, &partitions, 500, history.clone());
    eventually("600 acknowledgements", Duration::from_secs(30), || {
        history.counts().acked >= 600
    });
    let stats = tokio::task::spawn_blocking(move || producer.stop(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(stats.flushed, "{stats:?}");
    let counts = history.counts();
    assert_eq!(counts.acked as u64, stats.sent, "{counts:?}");
    assert_eq!(counts.failed, 0);

    let (_, complete) = read_pass(
        &client,
        topic,
        &partitions,
        &history,
        Duration::from_secs(30),
    );
    assert!(complete);
    let report = history.check();
    report.assert_clean();
    assert_eq!(report.counts.reads, counts.acked);

    // Each partition's log, dumped by the library and by the binary, holds what was acked.
    for p in partitions {
        let dirs: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| n.storage_dir().join(format!("{topic}-{p}")))
            .filter(|d| d.is_dir())
            .collect();
        assert_eq!(dirs.len(), 1, "partition {p} on {dirs:?}");
        let batches = dump::read_dir_summaries(&dirs[0], 0).unwrap();
        let acks = history.acks(p);
        let records: i64 = batches.iter().map(|b| b.records_count as i64).sum();
        assert_eq!(records, acks.len() as i64);
        assert_eq!(
            batches.last().map(|b| b.last_offset),
            acks.iter().map(|(_, o)| *o).max()
        );
        assert!(batches.iter().all(|b| b.crc_ok && b.producer_id >= 0));
        let out = Command::new(server_bin())
            .arg("dump-log")
            .arg(&dirs[0])
            .output()
            .unwrap();
        assert!(out.status.success());
        let printed: Vec<BatchSummary> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(printed, batches);
    }

    // Cut node 3 off: the others fence it; let it back: it is unfenced.
    proxies.isolate(3);
    let without_3: BTreeSet<_> = proxy_ports.iter().filter(|b| b.0 != 3).copied().collect();
    eventually("node 3 fenced", Duration::from_secs(30), || {
        alive_brokers(&node1).as_ref() == Some(&without_3)
    });
    proxies.rejoin(3);
    eventually("node 3 unfenced", Duration::from_secs(30), || {
        alive_brokers(&node1).as_ref() == Some(&proxy_ports)
    });
}
