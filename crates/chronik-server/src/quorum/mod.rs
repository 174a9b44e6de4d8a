//! The metadata quorum: openraft over the configured voters, replicating `MetadataBatch`es.
//!
//! What openraft requires and where it is:
//! - log storage (`log_store.rs`): entries and vote on disk, fsynced before reported;
//! - the state machine (`state_machine.rs`): the `MetadataImage`, published on a `watch` after
//!   every apply, with snapshots of the image;
//! - the network (`network.rs` over `rpc.rs`): length-prefixed JSON frames on each node's
//!   controller listener, which also carries the broker → controller calls (`server.rs`).
//!
//! Raft runs on its own small tokio runtime (thread "raft"), so a saturated data path cannot
//! delay its heartbeats into elections; so do the controller listener and broker heartbeats.
//! Nothing on the data path (produce, fetch, offset commits, high watermark) goes through here.

pub mod log_store;
pub mod network;
pub mod rpc;
pub mod server;
pub mod state_machine;
#[cfg(test)]
mod store_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use openraft::{BasicNode, Raft};
use tokio::sync::watch;

use crate::metadata::records::MetadataBatch;
use crate::metadata::MetadataImage;

pub type NodeId = u64;
pub type Node = BasicNode;

openraft::declare_raft_types!(
    /// The metadata log's types: entries carry `MetadataBatch`es; applying one returns nothing
    /// (the controller validated it before proposing).
    pub TypeConfig:
        D = MetadataBatch,
        R = (),
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type MetadataRaft = Raft<TypeConfig>;

/// Timing of the metadata Raft, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
        }
    }
}

/// A running member of the metadata quorum.
pub struct Quorum {
    pub raft: MetadataRaft,
    pub node_id: NodeId,
    /// Controller listener address of every voter.
    pub voters: BTreeMap<NodeId, String>,
    /// The image as the state machine last applied it.
    committed: watch::Receiver<Arc<MetadataImage>>,
    /// Taken at shutdown. Tasks on it hold `Arc`s to the quorum, so it is stopped explicitly.
    runtime: parking_lot::Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
}

impl Quorum {
    /// Opens the metadata log in `dir`, starts Raft on its own runtime and, on a fresh log,
    /// initializes the membership to `voters` (every voter does so with the same list, which
    /// openraft accepts).
    pub async fn start(
        node_id: NodeId,
        voters: BTreeMap<NodeId, String>,
        dir: &Path,
        timing: RaftTiming,
    ) -> anyhow::Result<Quorum> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("raft")
            .enable_all()
            .build()
            .context("starting the Raft runtime")?;
        let log = log_store::LogStore::open(dir)
            .with_context(|| format!("opening the metadata log in {}", dir.display()))?;
        let (publish, committed) = watch::channel(Arc::new(MetadataImage::default()));
        let sm = state_machine::StateMachine::open(dir, publish)
            .with_context(|| format!("opening the metadata snapshot in {}", dir.display()))?;
        let config = openraft::Config {
            cluster_name: "chronik-metadata".into(),
            heartbeat_interval: timing.heartbeat_ms,
            election_timeout_min: timing.election_timeout_min_ms,
            election_timeout_max: timing.election_timeout_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .context("Raft timing")?;
        let members: BTreeMap<NodeId, Node> = voters
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        let raft = runtime
            .spawn(async move {
                let raft = Raft::new(node_id, Arc::new(config), network::Network, log, sm).await?;
                if !raft.is_initialized().await? {
                    raft.initialize(members).await?;
                }
                anyhow::Ok(raft)
            })
            .await
            .context("the Raft runtime stopped")??;
        // Changing the voters of an existing quorum is not supported: say so rather than run
        // with a membership the config does not describe.
        // The membership shows in the metrics once the (re)loaded or initial log is applied.
        let has_membership = |m: &openraft::RaftMetrics<NodeId, Node>| {
            m.membership_config.voter_ids().next().is_some()
        };
        let metrics = raft
            .wait(Some(std::time::Duration::from_secs(10)))
            .metrics(has_membership, "membership loaded")
            .await
            .context("the metadata log shows no membership")?;
        let stored: BTreeSet<NodeId> = metrics.membership_config.voter_ids().collect();
        let configured: BTreeSet<NodeId> = voters.keys().copied().collect();
        if stored != configured {
            runtime.shutdown_background();
            anyhow::bail!(
                "{} holds the metadata log of a quorum of voters {stored:?}, but \
                 controller_quorum_voters names {configured:?}; changing the voters of a \
                 quorum is not supported (start with the original voters, or a new data dir)",
                dir.display()
            );
        }
        Ok(Quorum {
            raft,
            node_id,
            voters,
            committed,
            handle: runtime.handle().clone(),
            runtime: parking_lot::Mutex::new(Some(runtime)),
        })
    }

    /// The runtime Raft runs on, for tasks that must not wait behind the data path.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// The current leader (the controller), if one is known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// The latest image applied here.
    pub fn committed_image(&self) -> Arc<MetadataImage> {
        self.committed.borrow().clone()
    }

    /// A receiver of every image the state machine applies.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.committed.clone()
    }

    /// Voter ids as a set.
    pub fn voter_ids(&self) -> BTreeSet<NodeId> {
        self.voters.keys().copied().collect()
    }

    /// Stops Raft and its runtime (and with it the controller listener and heartbeats).
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
        let runtime = self.runtime.lock().take();
        if let Some(runtime) = runtime {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.lock().take() {
            runtime.shutdown_background();
        }
    }
}
