//! `chronik-server`: the broker binary.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use chronik_server::allocator::ReserveLargeAllocations;
use std::io::IsTerminal;

use chronik_server::config::{BrokerConfig, LogFormat, StartArgs};

#[global_allocator]
static ALLOCATOR: ReserveLargeAllocations = ReserveLargeAllocations;

#[derive(Parser)]
#[command(
    name = "chronik-server",
    version,
    about = "Chronik: a Kafka-compatible streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker (single node by default, data in ./data, listening on 127.0.0.1:9092).
    Start(Box<StartArgs>),
    /// Inspect a running cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Move a partition's replicas to other brokers while it serves (KIP-455): start a move
    /// (`--replicas`), cancel one (`--cancel`), or list those under way (`--list`).
    Reassign(ReassignArgs),
    /// Users' SCRAM credentials before the first start (a running cluster takes
    /// AlterUserScramCredentials from any admin client).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Print one line per record batch of a partition directory (base..last offset, leader
    /// epoch, stored CRC, producer id/epoch, base sequence, record count, size), read-only:
    /// nothing is recovered or written. Notes (torn tail, gaps) go to stderr.
    DumpLog {
        /// The partition directory, e.g. data/my-topic-0.
        partition_dir: std::path::PathBuf,
        /// Skip batches whose last offset is below this.
        #[arg(long, default_value_t = 0)]
        from_offset: i64,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// The controller, every broker (alive or fenced, with its address) and each partition's
    /// leader, leader epoch, replicas and ISR, as one broker's metadata image has them; then
    /// each partition's high watermark and replicas' log ends as its leader (and each replica)
    /// reports them, and each broker's replication counters since it started.
    Status {
        /// Any broker of the cluster, host:port.
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add (or replace) a user's credential in the data directory of `--config` / `--data-dir`;
    /// the broker commits it to the metadata log when it starts (Kafka's
    /// `kafka-storage format --add-scram`).
    Add {
        /// The user name; ACLs name it `User:<name>`.
        name: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        /// A file holding the password (a trailing newline is not part of it).
        #[arg(long)]
        password_file: std::path::PathBuf,
        /// PBKDF2 iterations, 4096 to 16384 as in Kafka.
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
        /// The broker's settings: its data directory is where the credential goes.
        #[command(flatten)]
        broker: Box<StartArgs>,
    },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["replicas", "cancel", "list"])))]
struct ReassignArgs {
    /// Any broker of the cluster, host:port (or several, comma-separated: the first that
    /// answers is asked).
    #[arg(long, alias = "bootstrap-server", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, required_unless_present = "list")]
    topic: Option<String>,
    #[arg(long, required_unless_present = "list")]
    partition: Option<i32>,
    /// The target replicas, comma-separated broker ids, the preferred leader first.
    #[arg(long, value_delimiter = ',')]
    replicas: Option<Vec<i32>>,
    /// Cancel the reassignment under way: back to the original replicas.
    #[arg(long)]
    cancel: bool,
    /// List the reassignments under way.
    #[arg(long)]
    list: bool,
}

impl ReassignArgs {
    fn action(self) -> chronik_server::reassign::Action {
        use chronik_server::reassign::Action;
        match (self.list, self.topic, self.partition, self.replicas) {
            (true, ..) => Action::List,
            (false, Some(topic), Some(partition), Some(replicas)) => Action::Start {
                topic,
                partition,
                replicas,
            },
            (false, Some(topic), Some(partition), None) => Action::Cancel { topic, partition },
            // clap requires --topic and --partition unless --list.
            _ => Action::List,
        }
    }
}

/// Logs go to stderr, coloured only when it is a terminal (a file or a pipe gets no escape
/// codes), as text or one JSON object per line.
fn init_logging(format: LogFormat) {
    // openraft logs every vote at info, and every vote an unreachable voter did not get at
    // error from its core; the broker says itself what it waits for.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=warn,openraft::core::raft_core=off"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    tune_malloc();
    let cli = Cli::parse();
    // `start` reads the format from its configuration; the one-shot commands log as text.
    let config = match &cli.command {
        Command::Start(args) => Some(BrokerConfig::load(args)?),
        _ => None,
    };
    init_logging(config.as_ref().map_or(LogFormat::Text, |c| c.log_format));
    match cli.command {
        Command::Cluster(ClusterCommand::Status { bootstrap_server }) => {
            print!(
                "{}",
                chronik_server::cluster_status::report(&bootstrap_server)?
            );
            Ok(())
        }
        Command::Reassign(args) => {
            let bootstrap = args.bootstrap.clone();
            print!(
                "{}",
                chronik_server::reassign::run(&bootstrap, args.action())?
            );
            Ok(())
        }
        Command::DumpLog {
            partition_dir,
            from_offset,
        } => chronik_server::dump_log::run(
            &partition_dir,
            from_offset,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        ),
        Command::Users(UsersCommand::Add {
            name,
            mechanism,
            password_file,
            iterations,
            broker,
        }) => {
            let config = BrokerConfig::load(&broker)?;
            chronik_server::users::add(
                &config.data_dir.join("meta"),
                &name,
                &mechanism,
                &password_file,
                iterations,
            )?;
            println!("user {name} ({mechanism}) added; the broker commits it when it starts");
            Ok(())
        }
        Command::Start(_) => {
            let config = config.expect("loaded above for start");
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if config.num_worker_threads > 0 {
                runtime.worker_threads(config.num_worker_threads);
            }
            let runtime = runtime.enable_all().build()?;
            runtime.block_on(chronik_server::broker::run(config, shutdown_signal()))
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Keeps glibc from serving each multi-megabyte fetch buffer with a fresh mmap (and unmapping it
/// after the response is written): page-faulting those pages in again on every fetch cost more
/// CPU than copying the data. 32 MiB is glibc's largest mmap threshold.
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator tuning parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
