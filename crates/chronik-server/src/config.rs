//! Broker configuration: defaults, overridden by a TOML file, then by `CHRONIK_*` env vars and flags.
//!
//! Every field here is read somewhere; the README's configuration table lists them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::network::client::{ClientSecurity, SaslCredentials};
use crate::network::listener::{self, ListenerConfig, SecurityProtocol};
use crate::security::sasl::SaslMechanism;
use crate::security::tls::{self, ClientAuth, TlsFiles, TlsSource};

/// When appended data reaches the disk before a produce is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FlushPolicy {
    /// acks=1/all are answered after a group-commit fsync shared by all partitions and requests,
    /// so `kill -9` right after an ack loses nothing. The single-node default.
    GroupCommit,
    /// Leave flushing to the OS page cache (Kafka's default; durability comes from replication).
    Os,
}

/// How log lines are written (to stderr; colours only when stderr is a terminal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
    /// One JSON object per line (tracing-subscriber's JSON layout).
    Json,
}

/// A setting never printed: the effective configuration is logged at start.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// The effective broker configuration, logged at start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Broker id, as shown in Metadata responses.
    pub node_id: i32,
    /// Address the Kafka listener binds, when `listeners` is unset: one PLAINTEXT listener.
    pub listen: SocketAddr,
    /// `host:port` clients are told to connect to; defaults to `listen` (with `listen` only).
    pub advertised_address: Option<String>,
    /// Named listeners, `NAME://host:port,...` (Kafka's listeners); replaces `listen`.
    pub listeners: Option<String>,
    /// Where clients of each listener connect, `NAME://host:port,...`; a listener not named
    /// here is advertised at its bind address.
    pub advertised_listeners: Option<String>,
    /// Security protocol of custom listener names, `NAME:PROTOCOL,...` (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT, SASL_SSL name themselves).
    pub listener_security_protocol_map: Option<String>,
    /// The listener other brokers' replica fetchers connect to; defaults to the first one.
    pub inter_broker_listener_name: Option<String>,
    /// How this broker authenticates on a SASL inter-broker listener (PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512), as whom, and the password (TOML only; never logged).
    pub inter_broker_sasl_mechanism: String,
    pub inter_broker_sasl_username: Option<String>,
    pub inter_broker_sasl_password: Option<Secret>,
    /// SASL mechanisms offered on SASL listeners, comma-separated (PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512).
    pub sasl_enabled_mechanisms: String,
    /// Principals that bypass ACLs, `User:admin;User:ops` (Kafka's super.users).
    pub super_users: String,
    /// A failed authentication is answered at once and its connection closed after this delay
    /// (Kafka's connection.failed.authentication.delay.ms).
    pub connection_failed_authentication_delay_ms: u64,
    /// A SASL session lasts this long and must re-authenticate before it ends (KIP-368,
    /// Kafka's connections.max.reauth.ms); 0: sessions do not expire.
    pub connections_max_reauth_ms: u64,
    /// PEM certificate chain of SSL and SASL_SSL listeners (re-read when it changes).
    pub ssl_certificate_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, or RSA / EC) of that certificate.
    pub ssl_key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates are verified against (mTLS).
    pub ssl_ca_file: Option<PathBuf>,
    /// none, requested or required (Kafka's ssl.client.auth).
    pub ssl_client_auth: ClientAuth,
    /// How a client certificate's subject becomes a principal name (Kafka's
    /// ssl.principal.mapping.rules), e.g. `RULE:^CN=(.*?),.*$/$1/,DEFAULT`.
    pub ssl_principal_mapping_rules: String,
    /// Where logs and metadata live.
    pub data_dir: PathBuf,
    /// Cluster id reported to clients (generated once and kept in the data dir when unset).
    pub cluster_id: Option<String>,
    /// Create a topic when a client asks for metadata of, or produces to, an unknown one.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics with num_partitions = -1.
    pub num_partitions: i32,
    /// Replication factor used when a request leaves it to the broker.
    pub default_replication_factor: i16,
    /// Largest request frame accepted, in bytes (Kafka's socket.request.max.bytes). A size
    /// prefix above it closes the connection.
    pub socket_request_max_bytes: usize,
    /// Memory for request bodies over all connections (Kafka's queued.max.request.bytes):
    /// bodies are allocated from it as their bytes arrive and returned when the request is
    /// answered; a connection that finds it spent stops reading until some is returned.
    pub queued_max_request_bytes: usize,
    /// Requests one connection may have read and not yet answered; past it the broker stops
    /// reading that connection (its client is not reading its responses).
    pub queued_max_requests_per_connection: usize,
    /// Cap on a Fetch's max_bytes (Kafka's fetch.max.bytes); one batch may still exceed it.
    pub fetch_max_bytes: usize,
    /// Connections accepted at once (Kafka's max.connections); past it the broker stops
    /// accepting until one closes.
    pub max_connections: usize,
    /// Connections from one IP address (Kafka's max.connections.per.ip); more are closed at once.
    pub max_connections_per_ip: usize,
    /// A connection with nothing read, written or in flight for this long is closed
    /// (Kafka's connections.max.idle.ms).
    pub connections_max_idle_ms: u64,
    /// A request frame must arrive whole within this long of its first byte (slow-loris).
    pub request_frame_timeout_ms: u64,
    /// How acknowledged data is made durable.
    pub flush_policy: FlushPolicy,
    /// How often retention and compaction run, in milliseconds.
    pub log_retention_check_interval_ms: u64,
    /// Broker-wide defaults of topic-level log configs.
    pub log: LogDefaults,
    /// Partitions of the internal `__consumer_offsets` topic.
    pub offsets_topic_num_partitions: i32,
    /// How long committed offsets of an empty group are kept, in minutes.
    pub offsets_retention_minutes: i64,
    /// Delay before the first rebalance of a new group, in milliseconds.
    pub group_initial_rebalance_delay_ms: u64,
    /// Bounds on consumer session timeouts, in milliseconds.
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Allow every request on a resource no ACL applies to (Kafka's
    /// allow.everyone.if.no.acl.found). When false, a resource without ACLs is closed.
    pub allow_everyone_if_no_acl_found: bool,
    /// A follower that has not caught up with its leader's log end for this long leaves the
    /// ISR (Kafka's replica.lag.time.max.ms).
    pub replica_lag_time_max_ms: i64,
    /// How long a follower's fetch waits at the leader for new data.
    pub replica_fetch_max_wait_ms: u64,
    /// How often hosted partitions' high watermarks are checkpointed
    /// (Kafka's replica.high.watermark.checkpoint.interval.ms).
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// Fetchers per leader broker, each pulling its share of the partitions with its own
    /// fetch in flight (Kafka's num.replica.fetchers).
    pub num_replica_fetchers: usize,
    /// Threads that run the broker's requests, replication and coordinators (the async
    /// runtime's workers); 0 means one per core. Brokers sharing a machine do better with
    /// their share of its cores: each worker more is more wakeups across threads.
    pub num_worker_threads: usize,
    /// Bytes a follower fetches per partition per request (at least one batch).
    pub replica_fetch_max_bytes: i32,
    /// Bytes a follower fetches per request over all partitions.
    pub replica_fetch_response_max_bytes: i32,
    /// Where this broker's replica fetchers reach other brokers, `id=host:port,...`, when not
    /// at their advertised addresses (a separate replication network; fault tests put a
    /// proxy on each link). Brokers not listed are reached at their advertised address.
    pub peer_kafka_addresses: Option<String>,
    /// Address of the controller listener (Raft and broker → controller calls). Defaults to
    /// this node's entry in `controller_quorum_voters`, or, for a single node without voters,
    /// an ephemeral port on 127.0.0.1 (a lone voter talks to no one).
    pub controller_listen: Option<SocketAddr>,
    /// The metadata quorum, `id@host:port,...` (Kafka's controller.quorum.voters). Unset: a
    /// cluster of one, this node.
    pub controller_quorum_voters: Option<String>,
    /// A broker the controller has not heard from for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// How often a broker heartbeats the controller.
    pub broker_heartbeat_interval_ms: u64,
    /// Let the controller move leadership back to preferred leaders (first replicas).
    pub auto_leader_rebalance_enable: bool,
    /// How often the controller checks for leader imbalance, in seconds.
    pub leader_imbalance_check_interval_seconds: u64,
    /// A broker leads too few of the partitions it is the preferred leader of when more than
    /// this percentage of them are led by others.
    pub leader_imbalance_per_broker_percentage: u32,
    /// Address of the HTTP listener for `/metrics`, `/health`, `/ready` and the console
    /// page, or "off".
    pub metrics_listen: String,
    pub log_format: LogFormat,
}

/// Defaults for topic configs (each can be overridden per topic).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogDefaults {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub cleanup_policy: String,
    pub delete_retention_ms: i64,
    pub max_message_bytes: i32,
    pub min_insync_replicas: i32,
    pub message_timestamp_type: String,
    /// Let a replica outside the ISR lead when no ISR member can (may lose acknowledged data).
    pub unclean_leader_election_enable: bool,
}

impl LogDefaults {
    /// The defaults obey the same rules as the topic configs they stand in for.
    fn validate(&self) -> anyhow::Result<()> {
        let pairs = [
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("cleanup.policy", self.cleanup_policy.clone()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            (
                "message.timestamp.type",
                self.message_timestamp_type.clone(),
            ),
        ];
        for (name, value) in &pairs {
            crate::metadata::topic_config::validate(name, value)
                .map_err(|e| anyhow::anyhow!("[log] default: {e}"))?;
        }
        Ok(())
    }
}

impl Default for LogDefaults {
    fn default() -> Self {
        LogDefaults {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy: "delete".into(),
            delete_retention_ms: 24 * 3600 * 1000,
            max_message_bytes: 1_048_588,
            min_insync_replicas: 1,
            message_timestamp_type: "CreateTime".into(),
            unclean_leader_election_enable: false,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            node_id: 1,
            listen: "127.0.0.1:9092".parse().expect("static address"),
            advertised_address: None,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: None,
            inter_broker_listener_name: None,
            inter_broker_sasl_mechanism: "SCRAM-SHA-512".into(),
            inter_broker_sasl_username: None,
            inter_broker_sasl_password: None,
            sasl_enabled_mechanisms: "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".into(),
            super_users: String::new(),
            connection_failed_authentication_delay_ms: 100,
            connections_max_reauth_ms: 0,
            ssl_certificate_file: None,
            ssl_key_file: None,
            ssl_ca_file: None,
            ssl_client_auth: ClientAuth::None,
            ssl_principal_mapping_rules: "DEFAULT".into(),
            data_dir: PathBuf::from("./data"),
            cluster_id: None,
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            queued_max_request_bytes: 256 * 1024 * 1024,
            queued_max_requests_per_connection: 128,
            fetch_max_bytes: 55 * 1024 * 1024,
            max_connections: i32::MAX as usize,
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: 10 * 60 * 1000,
            request_frame_timeout_ms: 60_000,
            flush_policy: FlushPolicy::GroupCommit,
            log_retention_check_interval_ms: 5 * 60 * 1000,
            log: LogDefaults::default(),
            offsets_topic_num_partitions: 50,
            offsets_retention_minutes: 7 * 24 * 60,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            allow_everyone_if_no_acl_found: true,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_max_wait_ms: 500,
            num_replica_fetchers: 1,
            num_worker_threads: 0,
            replica_high_watermark_checkpoint_interval_ms: 5000,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_response_max_bytes: 10 << 20,
            peer_kafka_addresses: None,
            controller_listen: None,
            controller_quorum_voters: None,
            broker_session_timeout_ms: 9000,
            broker_heartbeat_interval_ms: 2000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            metrics_listen: "127.0.0.1:9644".into(),
            log_format: LogFormat::Text,
        }
    }
}

/// Flags and env vars of `chronik-server start`; each overrides the TOML file when given.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct StartArgs {
    /// TOML configuration file.
    #[arg(long, env = "CHRONIK_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "CHRONIK_NODE_ID")]
    pub node_id: Option<i32>,
    /// Address to bind, e.g. 0.0.0.0:9092.
    #[arg(long, env = "CHRONIK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// host:port advertised to clients.
    #[arg(long, env = "CHRONIK_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,
    /// Named listeners, e.g. PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093.
    #[arg(long, env = "CHRONIK_LISTENERS")]
    pub listeners: Option<String>,
    #[arg(long, env = "CHRONIK_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// e.g. INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL.
    #[arg(long, env = "CHRONIK_LISTENER_SECURITY_PROTOCOL_MAP")]
    pub listener_security_protocol_map: Option<String>,
    #[arg(long, env = "CHRONIK_INTER_BROKER_LISTENER_NAME")]
    pub inter_broker_listener_name: Option<String>,
    #[arg(long, env = "CHRONIK_SASL_ENABLED_MECHANISMS")]
    pub sasl_enabled_mechanisms: Option<String>,
    /// e.g. "User:admin;User:ops".
    #[arg(long, env = "CHRONIK_SUPER_USERS")]
    pub super_users: Option<String>,
    #[arg(long, env = "CHRONIK_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS")]
    pub connection_failed_authentication_delay_ms: Option<u64>,
    #[arg(long, env = "CHRONIK_CONNECTIONS_MAX_REAUTH_MS")]
    pub connections_max_reauth_ms: Option<u64>,
    #[arg(long, env = "CHRONIK_SSL_CERTIFICATE_FILE")]
    pub ssl_certificate_file: Option<PathBuf>,
    #[arg(long, env = "CHRONIK_SSL_KEY_FILE")]
    pub ssl_key_file: Option<PathBuf>,
    #[arg(long, env = "CHRONIK_SSL_CA_FILE")]
    pub ssl_ca_file: Option<PathBuf>,
    #[arg(long, env = "CHRONIK_SSL_CLIENT_AUTH", value_enum)]
    pub ssl_client_auth: Option<ClientAuth>,
    #[arg(long, env = "CHRONIK_SSL_PRINCIPAL_MAPPING_RULES")]
    pub ssl_principal_mapping_rules: Option<String>,
    #[arg(long, env = "CHRONIK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, env = "CHRONIK_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    #[arg(long, env = "CHRONIK_NUM_PARTITIONS")]
    pub num_partitions: Option<i32>,
    #[arg(long, env = "CHRONIK_FLUSH_POLICY", value_enum)]
    pub flush_policy: Option<FlushPolicy>,
    #[arg(long, env = "CHRONIK_LOG_RETENTION_CHECK_INTERVAL_MS")]
    pub log_retention_check_interval_ms: Option<u64>,
    #[arg(long, env = "CHRONIK_SOCKET_REQUEST_MAX_BYTES")]
    pub socket_request_max_bytes: Option<usize>,
    #[arg(long, env = "CHRONIK_QUEUED_MAX_REQUEST_BYTES")]
    pub queued_max_request_bytes: Option<usize>,
    #[arg(long, env = "CHRONIK_QUEUED_MAX_REQUESTS_PER_CONNECTION")]
    pub queued_max_requests_per_connection: Option<usize>,
    #[arg(long, env = "CHRONIK_FETCH_MAX_BYTES")]
    pub fetch_max_bytes: Option<usize>,
    #[arg(long, env = "CHRONIK_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    #[arg(long, env = "CHRONIK_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    #[arg(long, env = "CHRONIK_CONNECTIONS_MAX_IDLE_MS")]
    pub connections_max_idle_ms: Option<u64>,
    #[arg(long, env = "CHRONIK_REQUEST_FRAME_TIMEOUT_MS")]
    pub request_frame_timeout_ms: Option<u64>,
    #[arg(long, env = "CHRONIK_OFFSETS_TOPIC_NUM_PARTITIONS")]
    pub offsets_topic_num_partitions: Option<i32>,
    #[arg(long, env = "CHRONIK_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    #[arg(long, env = "CHRONIK_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    #[arg(long, env = "CHRONIK_REPLICA_LAG_TIME_MAX_MS")]
    pub replica_lag_time_max_ms: Option<i64>,
    #[arg(long, env = "CHRONIK_NUM_REPLICA_FETCHERS")]
    pub num_replica_fetchers: Option<usize>,
    #[arg(long, env = "CHRONIK_NUM_WORKER_THREADS")]
    pub num_worker_threads: Option<usize>,
    /// Where replica fetchers reach other brokers, e.g. 2=10.0.0.2:9092,3=10.0.0.3:9092.
    #[arg(long, env = "CHRONIK_PEER_KAFKA_ADDRESSES")]
    pub peer_kafka_addresses: Option<String>,
    /// Address of the controller listener, e.g. 127.0.0.1:9192.
    #[arg(long, env = "CHRONIK_CONTROLLER_LISTEN")]
    pub controller_listen: Option<SocketAddr>,
    /// The metadata quorum, e.g. 1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194.
    #[arg(long, env = "CHRONIK_CONTROLLER_QUORUM_VOTERS")]
    pub controller_quorum_voters: Option<String>,
    #[arg(long, env = "CHRONIK_BROKER_SESSION_TIMEOUT_MS")]
    pub broker_session_timeout_ms: Option<u64>,
    #[arg(long, env = "CHRONIK_DEFAULT_REPLICATION_FACTOR")]
    pub default_replication_factor: Option<i16>,
    #[arg(long, env = "CHRONIK_MIN_INSYNC_REPLICAS")]
    pub min_insync_replicas: Option<i32>,
    #[arg(long, env = "CHRONIK_AUTO_LEADER_REBALANCE_ENABLE")]
    pub auto_leader_rebalance_enable: Option<bool>,
    #[arg(long, env = "CHRONIK_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS")]
    pub leader_imbalance_check_interval_seconds: Option<u64>,
    #[arg(long, env = "CHRONIK_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE")]
    pub leader_imbalance_per_broker_percentage: Option<u32>,
    /// HTTP address for /metrics, /health, /ready and the console page, e.g.
    /// 127.0.0.1:9644, or "off".
    #[arg(long, env = "CHRONIK_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    #[arg(long, env = "CHRONIK_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

impl BrokerConfig {
    /// `peer_kafka_addresses` as broker id → `host:port`.
    pub fn peer_kafka_addresses(&self) -> anyhow::Result<std::collections::HashMap<i32, String>> {
        let Some(list) = &self.peer_kafka_addresses else {
            return Ok(Default::default());
        };
        list.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| {
                let (id, address) = entry.trim().split_once('=').with_context(|| {
                    format!("peer_kafka_addresses entry {entry:?} is not id=host:port")
                })?;
                let id = id.parse().with_context(|| {
                    format!("peer_kafka_addresses entry {entry:?}: bad broker id")
                })?;
                Ok((id, address.to_string()))
            })
            .collect()
    }

    /// Builds the effective configuration: defaults ← TOML file ← env/flags.
    pub fn load(args: &StartArgs) -> anyhow::Result<BrokerConfig> {
        let mut config = match &args.config {
            Some(path) => BrokerConfig::from_toml_file(path)?,
            None => BrokerConfig::default(),
        };
        macro_rules! override_with {
            ($($field:ident),*) => {$(
                if let Some(value) = args.$field.clone() {
                    config.$field = value;
                }
            )*};
        }
        override_with!(
            node_id,
            listen,
            data_dir,
            auto_create_topics,
            num_partitions,
            flush_policy,
            log_retention_check_interval_ms,
            socket_request_max_bytes,
            queued_max_request_bytes,
            queued_max_requests_per_connection,
            fetch_max_bytes,
            max_connections,
            max_connections_per_ip,
            connections_max_idle_ms,
            request_frame_timeout_ms,
            offsets_topic_num_partitions,
            group_initial_rebalance_delay_ms,
            allow_everyone_if_no_acl_found,
            replica_lag_time_max_ms,
            num_replica_fetchers,
            num_worker_threads,
            broker_session_timeout_ms,
            default_replication_factor,
            auto_leader_rebalance_enable,
            leader_imbalance_check_interval_seconds,
            leader_imbalance_per_broker_percentage,
            metrics_listen,
            log_format,
            sasl_enabled_mechanisms,
            super_users,
            connection_failed_authentication_delay_ms,
            connections_max_reauth_ms,
            ssl_client_auth,
            ssl_principal_mapping_rules
        );
        macro_rules! override_optional {
            ($($field:ident),*) => {$(
                if args.$field.is_some() {
                    config.$field = args.$field.clone();
                }
            )*};
        }
        override_optional!(
            listeners,
            advertised_listeners,
            listener_security_protocol_map,
            inter_broker_listener_name,
            ssl_certificate_file,
            ssl_key_file,
            ssl_ca_file
        );
        if args.peer_kafka_addresses.is_some() {
            config.peer_kafka_addresses = args.peer_kafka_addresses.clone();
        }
        if args.advertised_address.is_some() {
            config.advertised_address = args.advertised_address.clone();
        }
        if args.controller_listen.is_some() {
            config.controller_listen = args.controller_listen;
        }
        if args.controller_quorum_voters.is_some() {
            config.controller_quorum_voters = args.controller_quorum_voters.clone();
        }
        if let Some(min) = args.min_insync_replicas {
            config.log.min_insync_replicas = min;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml_file(path: &Path) -> anyhow::Result<BrokerConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.num_partitions < 1 {
            bail!("num_partitions must be at least 1");
        }
        if self.offsets_topic_num_partitions < 1 {
            bail!("offsets_topic_num_partitions must be at least 1");
        }
        if self.socket_request_max_bytes < 1024 {
            bail!("socket_request_max_bytes must be at least 1024");
        }
        if self.queued_max_request_bytes < self.socket_request_max_bytes {
            // A frame of the largest allowed size could never be read.
            bail!(
                "queued_max_request_bytes ({}) must be at least socket_request_max_bytes ({})",
                self.queued_max_request_bytes,
                self.socket_request_max_bytes
            );
        }
        if self.queued_max_requests_per_connection < 1
            || self.max_connections < 1
            || self.max_connections_per_ip < 1
            || self.fetch_max_bytes < 1
            || self.connections_max_idle_ms < 1
            || self.request_frame_timeout_ms < 1
        {
            bail!("queued_max_requests_per_connection, fetch_max_bytes, max_connections, max_connections_per_ip, connections_max_idle_ms and request_frame_timeout_ms must be at least 1");
        }
        if self.default_replication_factor < 1 {
            bail!("default_replication_factor must be at least 1");
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            bail!(
                "broker_session_timeout_ms ({}) must be larger than broker_heartbeat_interval_ms ({})",
                self.broker_session_timeout_ms,
                self.broker_heartbeat_interval_ms
            );
        }
        if self.leader_imbalance_check_interval_seconds == 0 {
            bail!("leader_imbalance_check_interval_seconds must be at least 1");
        }
        self.advertised_host_port()?;
        self.inter_broker_client()?;
        self.sasl_mechanisms()?;
        self.tls_source()?;
        self.metrics_addr()?;
        self.voters()?;
        self.peer_kafka_addresses()?;
        self.log.validate()
    }

    /// The metadata quorum's voters (node id → controller address), checked: well-formed
    /// `id@host:port` entries, no id twice, no address twice, this node among them.
    /// Without `controller_quorum_voters`: empty, meaning a cluster of this node alone.
    pub fn voters(&self) -> anyhow::Result<BTreeMap<u64, String>> {
        let Some(list) = &self.controller_quorum_voters else {
            return Ok(BTreeMap::new());
        };
        let mut voters = BTreeMap::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, addr) = entry.split_once('@').with_context(|| {
                format!("controller_quorum_voters: {entry:?} is not id@host:port")
            })?;
            let id: u64 = id.parse().with_context(|| {
                format!("controller_quorum_voters: {entry:?} has a bad node id")
            })?;
            let (_, port) = addr
                .rsplit_once(':')
                .with_context(|| format!("controller_quorum_voters: {entry:?} has no port"))?;
            port.parse::<u16>()
                .with_context(|| format!("controller_quorum_voters: {entry:?} has a bad port"))?;
            if voters.values().any(|a| a == addr) {
                bail!("controller_quorum_voters: address {addr} is listed twice");
            }
            if voters.insert(id, addr.to_string()).is_some() {
                bail!("controller_quorum_voters: node id {id} is listed twice");
            }
        }
        if voters.is_empty() {
            bail!("controller_quorum_voters is empty");
        }
        if self.node_id < 0 || !voters.contains_key(&(self.node_id as u64)) {
            bail!(
                "node_id {} is not among controller_quorum_voters ({list}); every node is a voter",
                self.node_id
            );
        }
        Ok(voters)
    }

    /// Where the HTTP listener binds; None when `metrics_listen` is "off".
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        match self.metrics_listen.trim() {
            "off" => Ok(None),
            addr => addr.parse().map(Some).with_context(|| {
                format!("metrics_listen {addr:?} is neither host:port (an IP address) nor \"off\"")
            }),
        }
    }

    /// Where the controller listener binds.
    pub fn controller_listen_addr(&self) -> anyhow::Result<SocketAddr> {
        if let Some(addr) = self.controller_listen {
            return Ok(addr);
        }
        match self.voters()?.get(&(self.node_id as u64)) {
            Some(addr) => {
                use std::net::ToSocketAddrs;
                addr.to_socket_addrs()
                    .with_context(|| format!("resolving controller address {addr}"))?
                    .next()
                    .with_context(|| format!("controller address {addr} resolves to nothing"))
            }
            None => Ok(SocketAddr::from(([127, 0, 0, 1], 0))),
        }
    }

    /// The Kafka listeners: `listeners` when set, else one PLAINTEXT listener on `listen`.
    pub fn listener_configs(&self) -> anyhow::Result<Vec<ListenerConfig>> {
        match &self.listeners {
            Some(list) => listener::resolve(
                list,
                self.advertised_listeners.as_deref(),
                self.listener_security_protocol_map.as_deref(),
            ),
            None => {
                if self.advertised_listeners.is_some() {
                    bail!(
                        "advertised_listeners needs listeners (use advertised_address with listen)"
                    );
                }
                Ok(vec![ListenerConfig {
                    name: "PLAINTEXT".into(),
                    protocol: SecurityProtocol::Plaintext,
                    bind: self.listen,
                    advertised: self.advertised_host_port()?,
                }])
            }
        }
    }

    /// The listener other brokers reach this one on.
    pub fn inter_broker_listener(&self) -> anyhow::Result<ListenerConfig> {
        let listeners = self.listener_configs()?;
        let chosen = match &self.inter_broker_listener_name {
            Some(name) => listeners
                .into_iter()
                .find(|l| l.name.eq_ignore_ascii_case(name))
                .with_context(|| {
                    format!("inter_broker_listener_name {name} is not among listeners")
                })?,
            None => listeners.into_iter().next().context("no listeners")?,
        };
        Ok(chosen)
    }

    /// How this broker's replica fetchers connect to the others' inter-broker listener: TLS
    /// trusting `ssl_ca_file` (and showing this broker's certificate), SASL as
    /// `inter_broker_sasl_username`.
    pub fn inter_broker_client(&self) -> anyhow::Result<ClientSecurity> {
        let listener = self.inter_broker_listener()?;
        let tls = match listener.protocol.uses_tls() {
            false => None,
            true => {
                let (Some(certificate), Some(key)) =
                    (&self.ssl_certificate_file, &self.ssl_key_file)
                else {
                    bail!(
                        "a TLS inter-broker listener needs ssl_certificate_file and ssl_key_file"
                    );
                };
                let ca = self.ssl_ca_file.as_ref().context(
                    "a TLS inter-broker listener needs ssl_ca_file to verify the other brokers",
                )?;
                Some(tls::ClientTlsSource::new(certificate, key, ca)?)
            }
        };
        let sasl = match listener.protocol.uses_sasl() {
            false => None,
            true => {
                let (Some(user), Some(password)) = (
                    &self.inter_broker_sasl_username,
                    &self.inter_broker_sasl_password,
                ) else {
                    bail!("a SASL inter-broker listener needs inter_broker_sasl_username and inter_broker_sasl_password");
                };
                let mechanism = SaslMechanism::from_name(&self.inter_broker_sasl_mechanism)
                    .with_context(|| {
                        format!(
                            "inter_broker_sasl_mechanism {} is not supported",
                            self.inter_broker_sasl_mechanism
                        )
                    })?;
                Some(SaslCredentials {
                    mechanism,
                    user: user.clone(),
                    password: password.0.clone(),
                })
            }
        };
        Ok(ClientSecurity { tls, sasl })
    }

    /// What SSL and SASL_SSL listeners serve, if any listener uses TLS (checked: the files
    /// load).
    pub fn tls_source(&self) -> anyhow::Result<Option<TlsSource>> {
        if !self
            .listener_configs()?
            .iter()
            .any(|l| l.protocol.uses_tls())
        {
            return Ok(None);
        }
        let (Some(certificate), Some(key)) = (&self.ssl_certificate_file, &self.ssl_key_file)
        else {
            bail!("SSL and SASL_SSL listeners need ssl_certificate_file and ssl_key_file");
        };
        let files = TlsFiles {
            certificate: certificate.clone(),
            key: key.clone(),
            ca: self.ssl_ca_file.clone(),
            client_auth: self.ssl_client_auth,
        };
        TlsSource::new(files, &self.ssl_principal_mapping_rules).map(Some)
    }

    /// `sasl_enabled_mechanisms`, checked.
    pub fn sasl_mechanisms(&self) -> anyhow::Result<Vec<SaslMechanism>> {
        let mechanisms = self
            .sasl_enabled_mechanisms
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(|m| {
                SaslMechanism::from_name(m)
                    .with_context(|| format!("sasl_enabled_mechanisms: {m} is not supported"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if mechanisms.is_empty() {
            bail!("sasl_enabled_mechanisms is empty");
        }
        Ok(mechanisms)
    }

    /// The (host, port) clients are told to use.
    pub fn advertised_host_port(&self) -> anyhow::Result<(String, i32)> {
        match &self.advertised_address {
            None => Ok((self.listen.ip().to_string(), self.listen.port() as i32)),
            Some(addr) => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .with_context(|| format!("advertised address {addr:?} is not host:port"))?;
                let port: u16 = port
                    .parse()
                    .with_context(|| format!("advertised address {addr:?} has a bad port"))?;
                Ok((host.trim_matches(['[', ']']).to_string(), port as i32))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_alone_is_one_plaintext_listener_and_listeners_are_checked() {
        let single = BrokerConfig {
            advertised_address: Some("broker.example:19092".into()),
            ..Default::default()
        };
        let listeners = single.listener_configs().unwrap();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].name, "PLAINTEXT");
        assert_eq!(listeners[0].bind, single.listen);
        assert_eq!(listeners[0].advertised, ("broker.example".into(), 19092));

        let named = BrokerConfig {
            listeners: Some("INTERNAL://127.0.0.1:19092,SASL_PLAINTEXT://127.0.0.1:19093".into()),
            listener_security_protocol_map: Some("INTERNAL:PLAINTEXT".into()),
            inter_broker_listener_name: Some("internal".into()),
            ..Default::default()
        };
        assert_eq!(named.inter_broker_listener().unwrap().name, "INTERNAL");
        assert!(named.validate().is_ok());
        let sasl_between_brokers = BrokerConfig {
            inter_broker_listener_name: Some("SASL_PLAINTEXT".into()),
            inter_broker_sasl_username: Some("broker".into()),
            inter_broker_sasl_password: Some(Secret("broker-secret".into())),
            ..named.clone()
        };
        assert!(sasl_between_brokers.validate().is_ok());
        assert!(!format!("{sasl_between_brokers:?}").contains("broker-secret"));
        for broken in [
            // A SASL inter-broker listener needs this broker's credentials.
            BrokerConfig {
                inter_broker_listener_name: Some("SASL_PLAINTEXT".into()),
                ..named.clone()
            },
            BrokerConfig {
                inter_broker_sasl_mechanism: "GSSAPI".into(),
                ..sasl_between_brokers.clone()
            },
            BrokerConfig {
                inter_broker_listener_name: Some("OTHER".into()),
                ..named.clone()
            },
            BrokerConfig {
                listeners: Some("PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:2".into()),
                ..Default::default()
            },
            BrokerConfig {
                sasl_enabled_mechanisms: "PLAIN,GSSAPI".into(),
                ..Default::default()
            },
            BrokerConfig {
                advertised_listeners: Some("PLAINTEXT://h:1".into()),
                ..Default::default()
            },
        ] {
            assert!(broken.validate().is_err(), "{broken:?}");
        }
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chronik.toml");
        std::fs::write(
            &path,
            "node_id = 7\nnum_partitions = 3\nnum_worker_threads = 2\nadvertised_address = \"broker.example:19092\"\n[log]\nretention_ms = 1000\n",
        )
        .unwrap();
        let args = StartArgs {
            config: Some(path),
            num_partitions: Some(5),
            ..Default::default()
        };
        let config = BrokerConfig::load(&args).unwrap();
        assert_eq!(config.node_id, 7);
        assert_eq!(config.num_partitions, 5);
        assert_eq!(config.num_worker_threads, 2);
        let flagged = StartArgs {
            num_worker_threads: Some(1),
            ..args
        };
        assert_eq!(BrokerConfig::load(&flagged).unwrap().num_worker_threads, 1);
        assert_eq!(
            BrokerConfig::default().num_worker_threads,
            0,
            "one per core"
        );
        assert_eq!(config.log.retention_ms, 1000);
        assert_eq!(
            config.advertised_host_port().unwrap(),
            ("broker.example".to_string(), 19092)
        );
    }

    #[test]
    fn allow_everyone_if_no_acl_found_defaults_on_and_can_be_turned_off() {
        assert!(
            BrokerConfig::load(&StartArgs::default())
                .unwrap()
                .allow_everyone_if_no_acl_found
        );
        let args = StartArgs {
            allow_everyone_if_no_acl_found: Some(false),
            ..Default::default()
        };
        assert!(
            !BrokerConfig::load(&args)
                .unwrap()
                .allow_everyone_if_no_acl_found
        );
        let file: BrokerConfig = toml::from_str("allow_everyone_if_no_acl_found = false").unwrap();
        assert!(!file.allow_everyone_if_no_acl_found);
    }

    #[test]
    fn cluster_flags_override_the_file() {
        let args = StartArgs {
            node_id: Some(2),
            controller_listen: Some("127.0.0.1:19193".parse().unwrap()),
            controller_quorum_voters: Some("1@127.0.0.1:19192,2@127.0.0.1:19193".into()),
            broker_session_timeout_ms: Some(4000),
            default_replication_factor: Some(3),
            min_insync_replicas: Some(2),
            auto_leader_rebalance_enable: Some(false),
            leader_imbalance_check_interval_seconds: Some(30),
            leader_imbalance_per_broker_percentage: Some(20),
            ..Default::default()
        };
        let config = BrokerConfig::load(&args).unwrap();
        assert!(!config.auto_leader_rebalance_enable);
        assert_eq!(config.leader_imbalance_check_interval_seconds, 30);
        assert_eq!(config.leader_imbalance_per_broker_percentage, 20);
        assert_eq!(config.voters().unwrap().len(), 2);
        assert_eq!(config.controller_listen_addr().unwrap().port(), 19193);
        assert_eq!(config.broker_session_timeout_ms, 4000);
        assert_eq!(config.default_replication_factor, 3);
        assert_eq!(config.log.min_insync_replicas, 2);
        let too_short = StartArgs {
            broker_session_timeout_ms: Some(1000),
            ..Default::default()
        };
        let e = BrokerConfig::load(&too_short).unwrap_err();
        assert!(
            e.to_string().contains("broker_heartbeat_interval_ms"),
            "{e}"
        );
    }

    #[test]
    fn voters_are_parsed_and_bad_lists_are_refused() {
        let with = |node_id, voters: &str| BrokerConfig {
            node_id,
            controller_quorum_voters: Some(voters.into()),
            ..Default::default()
        };
        let ok = with(2, "1@127.0.0.1:9192, 2@127.0.0.1:9193,3@127.0.0.1:9194");
        assert_eq!(ok.voters().unwrap().len(), 3);
        assert_eq!(
            ok.controller_listen_addr().unwrap(),
            "127.0.0.1:9193".parse().unwrap()
        );
        for (node_id, bad, says) in [
            (1, "1@127.0.0.1:9192,1@127.0.0.1:9193", "listed twice"),
            (1, "1@127.0.0.1:9192,2@127.0.0.1:9192", "listed twice"),
            (4, "1@127.0.0.1:9192,2@127.0.0.1:9193", "not among"),
            (1, "1-127.0.0.1:9192", "id@host:port"),
            (1, "x@127.0.0.1:9192", "bad node id"),
            (1, "1@127.0.0.1", "no port"),
        ] {
            let e = with(node_id, bad).validate().unwrap_err();
            assert!(format!("{e:#}").contains(says), "{bad}: {e:#}");
        }
        let single = BrokerConfig::default();
        assert!(single.voters().unwrap().is_empty());
        assert_eq!(single.controller_listen_addr().unwrap().port(), 0);
    }

    #[test]
    fn connection_bounds_take_kafka_defaults_flags_and_are_checked() {
        let config = BrokerConfig::load(&StartArgs::default()).unwrap();
        assert_eq!(config.fetch_max_bytes, 55 << 20);
        assert_eq!(config.connections_max_idle_ms, 600_000);
        assert_eq!(config.max_connections_per_ip, i32::MAX as usize);
        let args = StartArgs {
            fetch_max_bytes: Some(1 << 20),
            max_connections: Some(10),
            request_frame_timeout_ms: Some(500),
            ..Default::default()
        };
        let config = BrokerConfig::load(&args).unwrap();
        assert_eq!(
            (config.fetch_max_bytes, config.max_connections),
            (1 << 20, 10)
        );
        assert_eq!(config.request_frame_timeout_ms, 500);
        // A pool smaller than the largest frame could never hold one.
        let args = StartArgs {
            queued_max_request_bytes: Some(1 << 20),
            ..Default::default()
        };
        let e = BrokerConfig::load(&args).unwrap_err();
        assert!(e.to_string().contains("queued_max_request_bytes"), "{e}");
        let file: BrokerConfig = toml::from_str("max_connections_per_ip = 3").unwrap();
        assert_eq!(file.max_connections_per_ip, 3);
    }

    #[test]
    fn metrics_listen_and_log_format_come_from_file_env_or_flag() {
        let config = BrokerConfig::load(&StartArgs::default()).unwrap();
        assert_eq!(
            config.metrics_addr().unwrap(),
            Some("127.0.0.1:9644".parse().unwrap())
        );
        assert_eq!(config.log_format, LogFormat::Text);
        let file: BrokerConfig =
            toml::from_str("metrics_listen = \"off\"\nlog_format = \"json\"").unwrap();
        assert_eq!(file.metrics_addr().unwrap(), None);
        assert_eq!(file.log_format, LogFormat::Json);
        let args = StartArgs {
            metrics_listen: Some("0.0.0.0:19644".into()),
            ..Default::default()
        };
        assert_eq!(
            BrokerConfig::load(&args).unwrap().metrics_addr().unwrap(),
            Some("0.0.0.0:19644".parse().unwrap())
        );
        let bad = StartArgs {
            metrics_listen: Some("nowhere".into()),
            ..Default::default()
        };
        assert!(BrokerConfig::load(&bad).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(toml::from_str::<BrokerConfig>("no_such_key = 1").is_err());
        let mut config = BrokerConfig::default();
        config.log.cleanup_policy = "shred".into();
        assert!(config.validate().is_err());
        let args = StartArgs {
            num_partitions: Some(0),
            ..Default::default()
        };
        assert!(BrokerConfig::load(&args).is_err());
    }
}
