//! Cluster metadata: the records (`records`), the immutable image they fold into (`image`),
//! the publisher that hands each new image to the broker's components (`publisher`), the
//! view handlers read (`MetadataView`), the topic-config rules (`topic_config`), client quotas
//! (`client_quotas`), and the
//! one-time import of a pre-quorum single-node data directory (`legacy`).
//!
//! The Raft metadata log is the one source of truth: nothing else stores topics, ACLs,
//! producer-id blocks or broker registrations.

pub mod broker_config;
pub mod client_quotas;
pub mod image;
pub mod legacy;
pub mod publisher;
pub mod records;
pub mod topic_config;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use uuid::Uuid;

pub use image::{BrokerRegistration, MetadataImage, TopicImage};

/// The image this broker has published: every component has reacted to it, so a request that
/// sees a topic here finds its partitions in the replica manager. Cheap to clone.
#[derive(Clone)]
pub struct MetadataView {
    rx: watch::Receiver<Arc<MetadataImage>>,
}

impl MetadataView {
    pub fn new(rx: watch::Receiver<Arc<MetadataImage>>) -> MetadataView {
        MetadataView { rx }
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.rx.borrow().clone()
    }

    pub fn cluster_id(&self) -> String {
        self.rx.borrow().cluster_id.clone()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicImage>> {
        self.rx.borrow().topic(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<TopicImage>> {
        self.rx.borrow().topic_by_id(id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<TopicImage>> {
        self.rx.borrow().topics.values().cloned().collect()
    }

    /// Waits until the published image holds log index `index`; false at `deadline`.
    pub async fn wait_for_index(&self, index: u64, deadline: Instant) -> bool {
        self.wait_until(|image| image.applied_index >= index, deadline)
            .await
    }

    /// Waits until the published image satisfies `check`; false at `deadline`.
    pub async fn wait_until(
        &self,
        check: impl FnMut(&Arc<MetadataImage>) -> bool,
        deadline: Instant,
    ) -> bool {
        let mut rx = self.rx.clone();
        let reached = async move { rx.wait_for(check).await.is_ok() };
        matches!(
            tokio::time::timeout_at(deadline.into(), reached).await,
            Ok(true)
        )
    }
}
