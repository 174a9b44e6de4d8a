//! `Broker`: wires the layers together for one node and runs it until shutdown.
//!
//! Data directory layout:
//! ```text
//! data/
//!   meta/topics.json          topic catalogue (MetadataStore)
//!   meta/acls.json            ACL bindings (AclStore)
//!   meta/producer-id-block    producer id allocation (ProducerIdManager)
//!   <topic>-<partition>/      one Log per partition (chronik-storage) + partition.metadata
//!                             (the topic id that owns it; replica/partition_dir.rs)
//!   <topic>-<partition>.<topic id>-delete/   a deleted partition, being removed
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::info;

use crate::config::BrokerConfig;
use crate::controller::Controller;
use crate::coordinator::GroupCoordinator;
use crate::metadata::MetadataStore;
use crate::producer_ids::ProducerIdManager;
use crate::replica::ReplicaManager;
use crate::security::{AclStore, Authorizer};

/// Everything a request handler may reach, shared by all connections.
pub struct Broker {
    pub config: Arc<BrokerConfig>,
    /// (host, port) advertised to clients.
    pub advertised: (String, i32),
    pub metadata: Arc<MetadataStore>,
    pub replicas: Arc<ReplicaManager>,
    pub controller: Controller,
    pub producer_ids: ProducerIdManager,
    /// Consumer groups and committed offsets (`__consumer_offsets`).
    pub groups: Arc<GroupCoordinator>,
    /// ACLs and the decisions made from them.
    pub authorizer: Authorizer,
}

impl Broker {
    /// Opens the data directory, recovering every log, and reconciles partitions with metadata.
    pub fn open(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let meta_dir = config.data_dir.join("meta");
        let metadata = Arc::new(MetadataStore::open(
            &meta_dir,
            config.cluster_id.as_deref(),
        )?);
        let replicas = Arc::new(ReplicaManager::new(
            config.data_dir.clone(),
            config.log.clone(),
            config.flush_policy,
        )?);
        let controller = Controller::new(config.clone(), metadata.clone(), replicas.clone());
        controller.reconcile_all();
        replicas.finish_recovery()?;
        let groups = Arc::new(GroupCoordinator::new(
            config.clone(),
            metadata.clone(),
            replicas.clone(),
        ));
        groups.load()?;
        let producer_ids = ProducerIdManager::open(&meta_dir)?;
        let authorizer = Authorizer::new(
            Arc::new(AclStore::open(&meta_dir)?),
            config.allow_everyone_if_no_acl_found,
        );
        Ok(Arc::new(Broker {
            advertised: config.advertised_host_port()?,
            config,
            metadata,
            replicas,
            controller,
            producer_ids,
            groups,
            authorizer,
        }))
    }
}

/// Runs a broker until `shutdown` resolves, then closes every log cleanly.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    info!(config = ?config, "effective configuration");
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let broker = tokio::task::block_in_place(|| Broker::open(config))?;
    info!(
        listen = %broker.config.listen,
        advertised = ?broker.advertised,
        topics = broker.metadata.topics().len(),
        "broker started"
    );
    let cleaner = tokio::spawn(run_log_cleaner(broker.clone()));
    let group_timers = tokio::spawn(broker.groups.clone().run_timers());
    let offset_expiry = tokio::spawn(broker.groups.clone().run_offset_expiry());
    crate::network::serve(listener, broker.clone(), shutdown).await;
    cleaner.abort();
    group_timers.abort();
    offset_expiry.abort();
    info!("shutting down: closing logs");
    let replicas = broker.replicas.clone();
    tokio::task::spawn_blocking(move || replicas.shutdown()).await?;
    Ok(())
}

/// Periodic retention and compaction, off the async workers.
async fn run_log_cleaner(broker: Arc<Broker>) {
    let period = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(10));
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let replicas = broker.replicas.clone();
        let _ = tokio::task::spawn_blocking(move || replicas.clean_logs()).await;
    }
}
