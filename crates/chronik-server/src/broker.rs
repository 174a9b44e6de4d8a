//! `Broker`: wires the layers together for one node and runs it until shutdown.
//!
//! Start-up order: open the metadata quorum (its log and snapshot restore the image), publish
//! that image (opening this broker's partitions and loading its groups), import a pre-quorum
//! data directory if there is one, register with the controller (a new broker epoch) and
//! heartbeat until unfenced; only then does the Kafka listener accept clients.
//!
//! Data directory layout:
//! ```text
//! data/
//!   meta/raft/                the metadata log, vote and snapshot (quorum::log_store)
//!   journal/                  the group-commit journal (chronik-storage)
//!   replication-offset-checkpoint   hosted partitions' high watermarks (replica::hw_checkpoint)
//!   <topic>-<partition>/      one Log per partition (chronik-storage) + partition.metadata
//!                             (the topic id that owns it; replica/partition_dir.rs)
//!   <topic>-<partition>.<topic id>-delete/   a deleted partition, being removed
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::future::BoxFuture;
use kafka_protocol::ResponseError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::controller::{Controller, ControllerCall, Decided};
use crate::coordinator::GroupCoordinator;
use crate::metadata::publisher::Publisher;
use crate::metadata::{legacy, MetadataImage, MetadataView};
use crate::network::listener::Endpoint;
use crate::network::server::BoundListener;
use crate::observe::http::HttpState;
use crate::observe::requests::RequestMetrics;
use crate::producer_ids::ProducerIdManager;
use crate::quorum::{Quorum, RaftTiming};
use crate::replica::{IsrProposal, ReplicaFetchers, ReplicaManager};
use crate::security::sasl::SaslSettings;
use crate::security::{AclStore, Authorizer};

/// How long a starting broker waits for the controller quorum before it gives up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopping broker waits for the controller to move its leaderships away.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler may reach, shared by all connections.
pub struct Broker {
    pub config: Arc<BrokerConfig>,
    /// (host, port) of the inter-broker listener, as registered.
    pub advertised: (String, i32),
    /// SASL mechanisms and timings of the SASL listeners.
    pub sasl: crate::security::sasl::SaslSettings,
    /// TLS of the SSL and SASL_SSL listeners, if any.
    pub tls: Option<crate::security::tls::TlsSource>,
    /// The metadata image as this broker last published it.
    pub metadata: MetadataView,
    pub replicas: Arc<ReplicaManager>,
    pub controller: Arc<Controller>,
    pub producer_ids: ProducerIdManager,
    /// Consumer groups and committed offsets (`__consumer_offsets`).
    pub groups: Arc<GroupCoordinator>,
    /// ACLs and the decisions made from them.
    pub authorizer: Authorizer,
    /// This process's registration epoch.
    pub broker_epoch: u64,
    /// Followers' pulls from their leaders, stopped before the logs close.
    pub fetchers: Arc<ReplicaFetchers>,
    /// Client quota usage and throttling.
    pub quotas: crate::quota::QuotaManager,
    /// Requests, errors and latencies per API, and connections (read by `observe`).
    pub requests: RequestMetrics,
    /// The heartbeat task, stopped first at shutdown.
    heartbeats: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set when the controlled shutdown starts: no longer ready.
    stopping: std::sync::atomic::AtomicBool,
}

impl Broker {
    /// Opens the data directory and the metadata quorum, registers with the controller and
    /// returns once this broker is unfenced (or fails with what it waited for).
    pub async fn open(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let meta_dir = config.data_dir.join("meta");
        let node_id = config.node_id;
        let configured_voters = config.voters()?;
        let legacy_records = legacy::read(&meta_dir, node_id, configured_voters.len() <= 1)?;
        let controller_listener = std::net::TcpListener::bind(config.controller_listen_addr()?)
            .with_context(|| {
                format!(
                    "binding the controller listener {}",
                    config
                        .controller_listen_addr()
                        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into())
                )
            })?;
        controller_listener.set_nonblocking(true)?;
        let voters = if configured_voters.is_empty() {
            // A cluster of one: the lone voter's address only matters to itself.
            [(
                node_id as u64,
                controller_listener.local_addr()?.to_string(),
            )]
            .into()
        } else {
            configured_voters
        };
        let quorum = Arc::new(
            Quorum::start(
                node_id as u64,
                voters,
                &meta_dir.join("raft"),
                RaftTiming::default(),
            )
            .await?,
        );

        let replicas = Arc::new(ReplicaManager::new(
            config.data_dir.clone(),
            config.log.clone(),
            config.flush_policy,
        )?);
        let (published, view) = watch::channel(Arc::new(MetadataImage::default()));
        let metadata = MetadataView::new(view);
        let controller = Arc::new(Controller::new(
            config.clone(),
            quorum.clone(),
            metadata.clone(),
        ));
        let groups = Arc::new(GroupCoordinator::new(
            config.clone(),
            metadata.clone(),
            replicas.clone(),
        ));
        let acls = Arc::new(AclStore::new());
        let fetchers = Arc::new(ReplicaFetchers::new(&config, replicas.clone()));
        let publisher = Arc::new(Publisher {
            node_id,
            config: config.clone(),
            replicas: replicas.clone(),
            fetchers: fetchers.clone(),
            groups: groups.clone(),
            acls: acls.clone(),
            published,
        });
        let restored = quorum.committed_image();
        let first = publisher.clone();
        tokio::task::spawn_blocking(move || first.publish(restored)).await?;
        // Every partition the restored image assigns here has replayed its journaled batches.
        replicas.finish_recovery()?;
        tokio::spawn(publisher.run(quorum.subscribe()));

        let runtime = quorum.runtime();
        let status: crate::quorum::server::StatusSource = {
            let replicas = replicas.clone();
            Arc::new(move || replicas.status(node_id))
        };
        runtime.spawn(crate::quorum::server::serve(
            controller_listener,
            quorum.raft.clone(),
            controller.clone(),
            status,
        ));
        runtime.spawn(controller.clone().run_fencing());
        runtime.spawn(controller.clone().run_leader_balancing());

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        if let Some(records) = legacy_records {
            call_at_startup(&controller, ControllerCall::Import { records }, deadline).await?;
            legacy::retire(&meta_dir).context("renaming the imported metadata files")?;
            info!("imported the single-node metadata files into the metadata log");
        }
        if let Some(users) = crate::users::read_pending(&meta_dir)? {
            let count = users.len();
            let call = ControllerCall::AlterScramCredentials {
                upsertions: users,
                deletions: Vec::new(),
            };
            call_at_startup(&controller, call, deadline).await?;
            crate::users::committed(&meta_dir).context("removing the committed pending users")?;
            info!(count, "committed the users added before start");
        }
        let advertised = config.inter_broker_listener()?.advertised;
        let listeners = config
            .listener_configs()?
            .into_iter()
            .map(|l| Endpoint {
                name: l.name,
                host: l.advertised.0,
                port: l.advertised.1,
            })
            .collect();
        let register = ControllerCall::RegisterBroker {
            id: node_id,
            host: advertised.0.clone(),
            port: advertised.1,
            listeners,
        };
        let Decided::BrokerEpoch(broker_epoch) =
            call_at_startup(&controller, register, deadline).await?
        else {
            bail!("the controller answered the registration with something else");
        };
        let heartbeat = ControllerCall::BrokerHeartbeat {
            id: node_id,
            epoch: broker_epoch,
        };
        call_at_startup(&controller, heartbeat, deadline).await?;
        let heartbeats = runtime.spawn(run_heartbeats(
            controller.clone(),
            config.clone(),
            broker_epoch,
        ));

        Ok(Arc::new(Broker {
            advertised,
            producer_ids: ProducerIdManager::new(node_id),
            authorizer: Authorizer::new(acls, config.allow_everyone_if_no_acl_found)
                .with_super_users(&config.super_users),
            sasl: SaslSettings::from_config(&config)?,
            tls: config.tls_source()?,
            requests: RequestMetrics::for_listeners(
                config.listener_configs()?.into_iter().map(|l| l.name),
            ),
            config,
            metadata,
            replicas,
            controller,
            groups,
            broker_epoch,
            fetchers,
            quotas: Default::default(),
            heartbeats: parking_lot::Mutex::new(Some(heartbeats)),
            stopping: Default::default(),
        }))
    }

    /// Controlled shutdown (KIP-631), while still serving: stop heartbeating, have the
    /// controller fence this broker and move its leaderships away, and wait until this broker's
    /// image shows it leads nothing, so clients and followers have moved on when it stops.
    /// Bounded by `CONTROLLED_SHUTDOWN_TIMEOUT`: without a quorum the broker stops anyway and
    /// its session expiry does the same later.
    pub async fn controlled_shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(task) = self.heartbeats.lock().take() {
            task.abort();
        }
        let (id, epoch) = (self.config.node_id, self.broker_epoch);
        info!("controlled shutdown: moving partition leadership away from this broker");
        let deadline = Instant::now() + CONTROLLED_SHUTDOWN_TIMEOUT;
        let done = |image: &Arc<MetadataImage>| {
            image
                .brokers
                .get(&id)
                .is_none_or(|b| b.epoch != epoch || b.fenced)
                && image
                    .topics
                    .values()
                    .all(|t| t.partitions.iter().all(|p| p.leader != id))
        };
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                warn!("controlled shutdown did not finish in time; stopping anyway");
                return;
            }
            let call = ControllerCall::ShutdownBroker { id, epoch };
            match self.controller.call(call, remaining).await {
                // A heartbeat already on its way when the task stopped may have unfenced this
                // broker again after the call: then it asks again.
                Ok(_) => {
                    let wait = deadline.min(Instant::now() + Duration::from_secs(1));
                    if self.metadata.wait_until(done, wait).await {
                        return;
                    }
                }
                Err(e)
                    if ResponseError::try_from_code(e.code).is_some_and(|e| e.is_retriable()) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    warn!(error = %e.message, "controlled shutdown refused; stopping anyway");
                    return;
                }
            }
        }
    }
}

impl Broker {
    /// Registered with this process's epoch, unfenced in the published image, and not
    /// stopping: what `/ready` reports.
    pub fn is_ready(&self) -> bool {
        !self.stopping.load(std::sync::atomic::Ordering::Relaxed)
            && self
                .metadata
                .image()
                .brokers
                .get(&self.config.node_id)
                .is_some_and(|b| b.epoch == self.broker_epoch && !b.fenced)
    }
}

/// A controller call made while starting: retried until `deadline`, saying what it waits for.
async fn call_at_startup(
    controller: &Controller,
    call: ControllerCall,
    deadline: Instant,
) -> anyhow::Result<Decided> {
    let mut warned = Instant::now();
    loop {
        let attempt =
            (deadline.saturating_duration_since(Instant::now())).min(Duration::from_secs(5));
        match controller.call(call.clone(), attempt).await {
            Ok(decided) => return Ok(decided),
            Err(e) if Instant::now() >= deadline => bail!(
                "no controller quorum after {}s (voters: {:?}): {}",
                STARTUP_TIMEOUT.as_secs(),
                controller.quorum().voters,
                e.message
            ),
            Err(e) => {
                if warned.elapsed() >= Duration::from_secs(5) {
                    warn!(voters = ?controller.quorum().voters, error = %e.message, "waiting for the controller quorum");
                    warned = Instant::now();
                }
            }
        }
    }
}

/// Heartbeats the controller every `broker_heartbeat_interval_ms`; runs on the Raft runtime so
/// a busy data path cannot make this broker look dead.
async fn run_heartbeats(controller: Arc<Controller>, config: Arc<BrokerConfig>, epoch: u64) {
    let interval = Duration::from_millis(config.broker_heartbeat_interval_ms);
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let call = ControllerCall::BrokerHeartbeat {
            id: config.node_id,
            epoch,
        };
        let deadline = Instant::now() + interval;
        if let Err(e) = controller.call_leader(call, deadline).await {
            tracing::debug!(error = %e.message, "broker heartbeat failed");
        }
    }
}

/// Runs a broker until `shutdown` resolves, then closes every log cleanly.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    info!(config = ?config, "effective configuration");
    let mut listeners = Vec::new();
    for listener in config.listener_configs()? {
        let socket = TcpListener::bind(listener.bind)
            .await
            .with_context(|| format!("binding listener {} at {}", listener.name, listener.bind))?;
        listeners.push(BoundListener {
            socket,
            config: listener,
        });
    }
    // Up before the broker joins its cluster, so /health answers and /ready says not yet.
    let http = Arc::new(HttpState::default());
    let http_server = match config.metrics_addr()? {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics listener {addr}"))?;
            info!(metrics_listen = %addr, "serving /metrics, /health, /ready and the console");
            Some(tokio::spawn(crate::observe::http::serve(
                listener,
                std::sync::Arc::clone(&http),
            )))
        }
        None => None,
    };
    let broker = Broker::open(config).await?;
    http.set_broker(broker.clone());
    info!(
        listeners = ?listeners.iter().map(|l| (&l.config.name, l.config.bind)).collect::<Vec<_>>(),
        advertised = ?broker.advertised,
        node_id = broker.config.node_id,
        broker_epoch = broker.broker_epoch,
        topics = broker.metadata.topics().len(),
        "broker started"
    );
    let cleaner = tokio::spawn(every(
        Duration::from_millis(broker.config.log_retention_check_interval_ms.max(10)),
        broker.replicas.clone(),
        ReplicaManager::clean_logs,
    ));
    let hw_checkpoints = tokio::spawn(every(
        Duration::from_millis(
            broker
                .config
                .replica_high_watermark_checkpoint_interval_ms
                .max(10),
        ),
        broker.replicas.clone(),
        |replicas| {
            if let Err(e) = replicas.checkpoint_high_watermarks() {
                warn!(error = %e, "writing the high-watermark checkpoint");
            }
        },
    ));
    let isr_updates = tokio::spawn(crate::replica::isr::run(
        broker.replicas.clone(),
        broker.config.replica_lag_time_max_ms,
        alter_partition(
            broker.controller.clone(),
            broker.config.node_id,
            broker.broker_epoch,
        ),
    ));
    let group_timers = tokio::spawn(broker.groups.clone().run_timers());
    let offset_expiry = tokio::spawn(broker.groups.clone().run_offset_expiry());
    // Clients keep being served during the controlled shutdown, and told where leaders went.
    let controlled = {
        let broker = broker.clone();
        async move {
            shutdown.await;
            broker.controlled_shutdown().await;
        }
    };
    crate::network::serve(listeners, broker.clone(), controlled).await;
    if let Some(server) = http_server {
        server.abort();
    }
    broker.fetchers.stop();
    isr_updates.abort();
    cleaner.abort();
    hw_checkpoints.abort();
    group_timers.abort();
    offset_expiry.abort();
    info!("shutting down: closing logs");
    let replicas = broker.replicas.clone();
    tokio::task::spawn_blocking(move || replicas.shutdown()).await?;
    broker.controller.quorum().shutdown().await;
    Ok(())
}

/// How this broker's leaders propose ISR changes: AlterPartition to the controller.
fn alter_partition(
    controller: Arc<Controller>,
    node_id: i32,
    broker_epoch: u64,
) -> impl Fn(IsrProposal) -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
    move |proposal| {
        let controller = controller.clone();
        Box::pin(async move {
            let call = ControllerCall::AlterPartition {
                broker: node_id,
                broker_epoch,
                topic: proposal.topic,
                partition: proposal.partition,
                leader_epoch: proposal.leader_epoch,
                partition_epoch: proposal.partition_epoch,
                isr: proposal.isr,
            };
            controller
                .call(call, Duration::from_secs(5))
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        })
    }
}

/// Runs `job` over the hosted partitions every `period` (retention and compaction, the
/// high-watermark checkpoint), off the async workers.
async fn every(period: Duration, replicas: Arc<ReplicaManager>, job: fn(&ReplicaManager)) {
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let replicas = replicas.clone();
        let _ = tokio::task::spawn_blocking(move || job(&replicas)).await;
    }
}
