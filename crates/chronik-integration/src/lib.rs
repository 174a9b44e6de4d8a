//! Test harness: starts real `chronik-server` processes on 127.0.0.1 ports and kills them for real,
//! and mounts small tmpfs file systems (`Tmpfs`) for tests that fill the broker's disk.
//!
//! Fault-test tools: [`proxy::Proxy`] (a TCP proxy a test can cut), [`history::History`] (what
//! producers and consumers saw, and its check) and [`Cluster::start_with_proxies`] (a cluster
//! whose inter-node traffic goes through proxies, see [`ClusterProxies`]).
//!
//! The binaries are looked up in the workspace target directory (`target/debug` unless
//! `CHRONIK_TARGET_DIR` or `CARGO_TARGET_DIR` says otherwise), so build them first:
//! `cargo build --workspace --bins` (the README's test command does this).

pub mod history;
pub mod proxy;
pub mod raw;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxy::Proxy;

/// Directory holding the workspace's built binaries.
pub fn target_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CHRONIK_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug")
}

/// Path of the `chronik-server` binary.
pub fn server_bin() -> PathBuf {
    target_bin_dir().join("chronik-server")
}

/// Path of the `chronik-bench` binary.
pub fn bench_bin() -> PathBuf {
    target_bin_dir().join("chronik-bench")
}

/// Ports handed to test brokers: below the kernel's ephemeral range (32768 and up by default),
/// so no client connection takes one as its source port between the reservation and the bind.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port reserved for this test process until it exits: free now, outside the ephemeral
/// range, and claimed with a file naming this process, so that test binaries running side by
/// side never pick the same one (a claim left by a process that is gone is taken over).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let claims = std::env::temp_dir().join("chronik-test-ports");
    std::fs::create_dir_all(&claims).expect("creating the port claims directory");
    let pid = std::process::id();
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    for _ in 0..span {
        // Processes start at different points of the range, so they rarely contend.
        let n = pid
            .wrapping_mul(7919)
            .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = TEST_PORTS.start + (n % span) as u16;
        if claim_port(&claims.join(port.to_string()), pid)
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free test port in {TEST_PORTS:?}");
}

/// Claims a port's file for `pid`: created afresh, or taken over from a process that is gone.
fn claim_port(path: &Path, pid: u32) -> bool {
    use std::io::Write;
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| write!(f, "{pid}"))
            .is_ok()
    };
    if create() {
        return true;
    }
    let owner = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match owner {
        // A dead owner's claim is taken over (only one create_new can win it).
        Some(owner) if owner != pid && !Path::new(&format!("/proc/{owner}")).exists() => {
            std::fs::remove_file(path).is_ok() && create()
        }
        // Ours already, a live process's, or one still being written: not this port.
        _ => false,
    }
}

/// A minimal HTTP/1.1 GET (one request per connection): (status, body). For the broker's
/// HTTP listener, whose responses carry a Content-Length.
pub fn http_get(addr: impl std::net::ToSocketAddrs, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:?}")))?;
    Ok((status, body.to_string()))
}

/// A cluster of `chronik-server` processes on 127.0.0.1, every node a voter of the metadata
/// quorum. Nodes are ordinary `Broker`s: kill, restart and read their logs one by one.
pub struct Cluster {
    pub nodes: Vec<Broker>,
    /// The proxies between the nodes, when started with [`Cluster::start_with_proxies`].
    pub proxies: Option<ClusterProxies>,
}

/// `n` distinct ports that were free a moment ago (a port freed a moment ago can be handed out
/// again, so they are checked against each other).
fn distinct_free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < n {
        let port = free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with extra `chronik-server start` flags for each.
    pub fn start(n: usize, extra_args: &[&str]) -> Cluster {
        Cluster::start_with_node_args(n, extra_args, |_, _| Vec::new())
    }

    /// Like [`Cluster::start`], with more flags per node: `node_args(id, kafka port)` (e.g.
    /// named listeners, which include the harness's port).
    pub fn start_with_node_args(
        n: usize,
        extra_args: &[&str],
        node_args: impl Fn(i32, u16) -> Vec<String>,
    ) -> Cluster {
        let ports = distinct_free_ports(2 * n);
        let (kafka, controller) = ports.split_at(n);
        let voters = controller
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let args: Vec<Vec<String>> = (0..n)
            .map(|i| {
                let mut args = vec!["--controller-quorum-voters".to_string(), voters.clone()];
                args.extend(node_args(i as i32 + 1, kafka[i]));
                args
            })
            .collect();
        Cluster::spawn_nodes(kafka, args, extra_args, None)
    }

    /// Like [`Cluster::start`], but the nodes reach each other only through [`Proxy`]s, so a
    /// test can cut a node off (see [`ClusterProxies`] for what goes through which proxy and
    /// what does not).
    ///
    /// Node `i` binds its controller listener on a real port (`--controller-listen`) and lists
    /// itself there in its `--controller-quorum-voters`; every other voter `j` it lists at the
    /// controller link proxy `i→j`. So each node has its own voters string: same ids, different
    /// addresses, and never its own traffic through a proxy (its broker half calls its own
    /// controller directly). Its `--advertised-address` is its Kafka proxy, so clients (after
    /// bootstrapping on [`Broker::bootstrap`], the real port) and other brokers reach it only
    /// through that proxy.
    pub fn start_with_proxies(n: usize, extra_args: &[&str]) -> Cluster {
        let ports = distinct_free_ports(2 * n);
        let (kafka, controller) = ports.split_at(n);
        // A proxy binds an ephemeral port that must not be one the nodes are about to bind.
        let proxy_to = |port: u16| loop {
            let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], port)));
            if !ports.contains(&proxy.port()) {
                break proxy;
            }
        };
        let kafka_proxies: Vec<Proxy> = kafka.iter().map(|&port| proxy_to(port)).collect();
        let mut controller_links = BTreeMap::new();
        let mut replica_links = BTreeMap::new();
        for from in 1..=n as i32 {
            for to in 1..=n as i32 {
                if from != to {
                    let proxy = proxy_to(controller[(to - 1) as usize]);
                    controller_links.insert((from, to), proxy);
                    replica_links.insert((from, to), proxy_to(kafka[(to - 1) as usize]));
                }
            }
        }
        let args: Vec<Vec<String>> = (1..=n as i32)
            .map(|id| {
                let own = controller[(id - 1) as usize];
                let voters = (1..=n as i32)
                    .map(|peer| {
                        let port = if peer == id {
                            own
                        } else {
                            controller_links[&(id, peer)].port()
                        };
                        format!("{peer}@127.0.0.1:{port}")
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                vec![
                    "--controller-quorum-voters".to_string(),
                    voters,
                    "--controller-listen".to_string(),
                    format!("127.0.0.1:{own}"),
                    "--advertised-address".to_string(),
                    kafka_proxies[(id - 1) as usize].addr().to_string(),
                    "--peer-kafka-addresses".to_string(),
                    (1..=n as i32)
                        .filter(|&peer| peer != id)
                        .map(|peer| format!("{peer}={}", replica_links[&(id, peer)].addr()))
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            })
            .collect();
        let proxies = ClusterProxies {
            kafka: kafka_proxies,
            controller_links,
            replica_links,
        };
        Cluster::spawn_nodes(kafka, args, extra_args, Some(proxies))
    }

    /// Spawns node `i + 1` on `kafka[i]` with `node_args[i]` then `extra_args`, and waits until
    /// every node is ready.
    fn spawn_nodes(
        kafka: &[u16],
        node_args: Vec<Vec<String>>,
        extra_args: &[&str],
        proxies: Option<ClusterProxies>,
    ) -> Cluster {
        // Spawned all at once: each waits for a quorum before it accepts clients.
        let mut nodes: Vec<Broker> = node_args
            .into_iter()
            .enumerate()
            .map(|(i, node_args)| {
                let mut args = vec!["--node-id".to_string(), (i + 1).to_string()];
                args.extend(node_args);
                args.extend(extra_args.iter().map(|s| s.to_string()));
                Broker {
                    child: None,
                    port: kafka[i],
                    metrics_port: free_port(),
                    data_dir: tempfile::tempdir().expect("temp data dir"),
                    extra_args: args,
                    starts_before: 0,
                }
            })
            .collect();
        for node in &mut nodes {
            node.spawn_process();
        }
        for node in &mut nodes {
            node.wait_ready();
        }
        Cluster { nodes, proxies }
    }

    /// The proxies of a cluster started with [`Cluster::start_with_proxies`]; panics otherwise.
    pub fn proxies(&self) -> &ClusterProxies {
        self.proxies
            .as_ref()
            .expect("the cluster was not started with proxies")
    }

    /// Every node's `host:port`, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Index of the node with this id (ids start at 1).
    pub fn node(&mut self, id: i32) -> &mut Broker {
        &mut self.nodes[(id - 1) as usize]
    }
}

/// The proxies of a [`Cluster::start_with_proxies`] cluster, with nodes by id (1..=n).
///
/// What goes through them:
/// - `kafka[id - 1]` forwards to node `id`'s Kafka listener and is its advertised address: every
///   client connection after bootstrap and every broker-to-broker Kafka connection *to* that node
///   (e.g. a follower fetching from it as leader) goes through it;
/// - `controller_links[(from, to)]` forwards node `from`'s controller traffic to node `to`'s
///   controller listener: Raft votes and appends, and `from`'s broker registration, heartbeats
///   and forwarded metadata changes when `to` is the controller.
///
/// - `replica_links[(from, to)]` forwards node `from`'s replica fetches to node `to`'s Kafka
///   listener (`--peer-kafka-addresses`), so cutting a node off stops its followers too.
///
/// Raft caveat: each node initializes the quorum membership from its own voters string, so each
/// keeps its own view of the addresses; a node that installs a metadata snapshot (after falling
/// more than the kept log behind) takes the sender's view, and from then on reaches its peers
/// through the sender's links (still proxies, but not the ones named after it).
pub struct ClusterProxies {
    pub kafka: Vec<Proxy>,
    pub controller_links: BTreeMap<(i32, i32), Proxy>,
    /// `(from, to)`: node `from`'s replica fetches from node `to` (`--peer-kafka-addresses`).
    pub replica_links: BTreeMap<(i32, i32), Proxy>,
}

impl ClusterProxies {
    /// The directed links between nodes: controller traffic and replica fetches.
    fn links(&self) -> impl Iterator<Item = (&(i32, i32), &Proxy)> {
        self.controller_links.iter().chain(&self.replica_links)
    }

    /// Every proxy that carries traffic to or from node `id`: its Kafka proxy and the
    /// links from and to it.
    fn of_node(&self, id: i32) -> impl Iterator<Item = &Proxy> {
        self.links()
            .filter(move |((from, to), _)| *from == id || *to == id)
            .map(|(_, proxy)| proxy)
            .chain(std::iter::once(&self.kafka[(id - 1) as usize]))
    }

    /// Cuts node `id` off: its Kafka proxy and all its controller links (both directions).
    /// See the type docs for what still flows.
    pub fn isolate(&self, id: i32) {
        self.of_node(id).for_each(Proxy::cut);
    }

    /// Undoes [`Self::isolate`] of node `id` (links to nodes still isolated stay cut).
    pub fn rejoin(&self, id: i32) {
        for ((from, to), proxy) in self.links() {
            let other = if *from == id {
                *to
            } else if *to == id {
                *from
            } else {
                continue;
            };
            if !self.kafka[(other - 1) as usize].is_cut() {
                proxy.heal();
            }
        }
        self.kafka[(id - 1) as usize].heal();
    }

    /// Cuts the controller traffic between two nodes, both directions.
    pub fn cut_controller_link(&self, a: i32, b: i32) {
        self.controller_links[&(a, b)].cut();
        self.controller_links[&(b, a)].cut();
    }

    /// Heals the controller traffic between two nodes, both directions.
    pub fn heal_controller_link(&self, a: i32, b: i32) {
        self.controller_links[&(a, b)].heal();
        self.controller_links[&(b, a)].heal();
    }

    /// Heals every proxy.
    pub fn heal_all(&self) {
        self.kafka
            .iter()
            .chain(self.links().map(|(_, proxy)| proxy))
            .for_each(Proxy::heal);
    }
}

/// VmRSS of a process, in bytes (0 once it is gone).
fn rss_bytes(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmRSS:")
}

/// A "kB" line of /proc/<pid>/status, in bytes (0 once the process is gone).
fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// A running sample of a process's resident memory; `peak` stops it.
pub struct RssWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl RssWatch {
    /// The highest resident memory seen, in bytes.
    pub fn peak(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.sampler.join().expect("rss sampler")
    }
}

/// One broker process with its own data directory.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    /// The HTTP listener's port (`--metrics-listen`): /metrics, /health, /ready, the console.
    metrics_port: u16,
    data_dir: tempfile::TempDir,
    extra_args: Vec<String>,
    /// "broker started" lines in the log before the current process was spawned.
    starts_before: usize,
}

impl Broker {
    /// Starts a single-node broker on a fresh port with a fresh data directory.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra `chronik-server start` flags.
    pub fn start_with(extra_args: &[&str]) -> Broker {
        let mut broker = Broker::prepare(extra_args);
        broker.spawn();
        broker
    }

    /// A broker with its port and directories chosen but no process yet (to set up its
    /// `storage_dir` first); `restart` starts it.
    pub fn prepare(extra_args: &[&str]) -> Broker {
        Broker {
            child: None,
            port: free_port(),
            metrics_port: free_port(),
            data_dir: tempfile::tempdir().expect("temp data dir"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            starts_before: 0,
        }
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<metrics port><path>`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.metrics_port)
    }

    /// GET `path` on the broker's HTTP listener: (status, body).
    pub fn http_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http_get(("127.0.0.1", self.metrics_port), path)
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The broker's `--data-dir` (partition directories, `meta/`), inside `data_dir`.
    pub fn storage_dir(&self) -> PathBuf {
        self.data_dir.path().join("data")
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process's resident memory (VmRSS in /proc/<pid>/status), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("broker running").id();
        rss_bytes(pid)
    }

    /// The process's allocated address space for data (VmData), in bytes: what it asked the
    /// allocator for, touched or not.
    pub fn data_bytes(&self) -> u64 {
        let pid = self.child.as_ref().expect("broker running").id();
        proc_status_bytes(pid, "VmData:")
    }

    /// Samples the process's resident memory every 10 ms until the returned watch is stopped.
    pub fn watch_rss(&self) -> RssWatch {
        let pid = self.child.as_ref().expect("broker running").id();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_bytes(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        RssWatch { stop, sampler }
    }

    /// SIGKILL: no shutdown hook runs, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process freezes (a zombie: alive, holding its connections, answering
    /// nothing) until [`Broker::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process (again) on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready();
    }

    /// Starts the process without waiting until it has joined its cluster (a node whose
    /// quorum is not there yet never does).
    pub fn spawn_without_waiting(&mut self) {
        self.kill();
        self.spawn_process();
    }

    fn spawn_process(&mut self) {
        self.starts_before = self.log().matches("broker started").count();
        let bin = server_bin();
        assert!(
            bin.exists(),
            "{} not built: run `cargo build --workspace --bins` first",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.path().join("broker.log"))
            .expect("broker log file");
        let child = Command::new(bin)
            .arg("start")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(self.storage_dir())
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("CHRONIK_TEST_LOG")
                    .unwrap_or("info,openraft=warn,openraft::core::raft_core=off".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log clone"))
            .stderr(log)
            .spawn()
            .expect("spawn chronik-server");
        self.child = Some(child);
    }

    /// Waits until the broker has registered and opened its data: it logs "broker started"
    /// only then (the Kafka port is bound earlier, so connecting proves nothing).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.log().matches("broker started").count() > self.starts_before
                && TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "chronik-server exited early ({status}); log:\n{}",
                        self.log()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "chronik-server did not start within 30 s; log:\n{}",
            self.log()
        );
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A field of `/proc/<pid>/status` in KiB: `VmRSS` (resident now) or `VmHWM` (the
    /// resident peak since the process started).
    pub fn memory_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    }

    /// What the broker wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tmpfs of a given size mounted on a directory (needs root), unmounted on drop even when the
/// test fails. Lets a test fill a broker's disk for real.
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a `size_mib` MiB tmpfs on `dir` (created if missing); Err says why not (e.g. no
    /// permission), for the caller to skip.
    pub fn mount(dir: &Path, size_mib: u32) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        run_mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_mib}m"),
            "tmpfs",
            &dir.to_string_lossy(),
        ])?;
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Changes the size in place; the content stays.
    pub fn resize(&self, size_mib: u32) -> Result<(), String> {
        run_mount(&[
            "-o",
            &format!("remount,size={size_mib}m"),
            &self.dir.to_string_lossy(),
        ])
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: detaches even while a broker process still has files open on it.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn run_mount(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("running mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
