//! `Publisher`: hands each new metadata image to this broker's components, in log order, and
//! only then publishes it to request handlers (`MetadataView`). KIP-500's "metadata publisher":
//! - the replica manager opens the partitions the image assigns to this broker, makes each
//!   the leader or a follower as the image says, applies topic configs and dynamic broker
//!   configs (KIP-226), and deletes removed topics' data; the replica fetchers then pull each
//!   followed partition from its current leader;
//! - the group coordinator loads the groups of each `__consumer_offsets` partition this broker
//!   now leads, and drops those of partitions it stopped leading;
//! - the authorizer's ACL index is replaced when the bindings changed.
//!
//! Runs as one task; the file work happens on a blocking thread. Images are skipped, never
//! reordered: the diff is always against the last image published.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::warn;

use super::broker_config::effective_log_defaults;
use super::MetadataImage;
use crate::config::BrokerConfig;
use crate::controller::CONSUMER_OFFSETS_TOPIC;
use crate::coordinator::GroupCoordinator;
use crate::replica::{ReplicaFetchers, ReplicaManager};
use crate::security::AclStore;

pub struct Publisher {
    pub node_id: i32,
    pub config: Arc<BrokerConfig>,
    pub replicas: Arc<ReplicaManager>,
    pub fetchers: Arc<ReplicaFetchers>,
    pub groups: Arc<GroupCoordinator>,
    pub acls: Arc<AclStore>,
    pub published: watch::Sender<Arc<MetadataImage>>,
}

impl Publisher {
    /// Makes `new` this broker's image. Blocking: partitions are opened and deleted here.
    pub fn publish(&self, new: Arc<MetadataImage>) {
        let old = self.published.borrow().clone();
        for (name, topic) in &old.topics {
            if new.topic(name).is_none_or(|t| t.id != topic.id) {
                self.replicas.remove_topic(topic);
            }
        }
        // Dynamic broker configs changed: new defaults, and every topic re-resolves its settings.
        let defaults_changed = old.broker_configs != new.broker_configs;
        if defaults_changed {
            self.replicas.set_log_defaults(effective_log_defaults(
                &self.config,
                &new,
                self.node_id,
            ));
        }
        for (name, topic) in &new.topics {
            if !defaults_changed && old.topic(name).is_some_and(|t| Arc::ptr_eq(t, topic)) {
                continue;
            }
            if let Err(e) = self.replicas.reconcile_topic(topic, self.node_id) {
                warn!(topic = %name, error = %e, "opening partitions");
            }
        }
        self.fetchers.reconcile(&new);
        let led = |image: &MetadataImage| -> BTreeSet<i32> {
            image
                .topic(CONSUMER_OFFSETS_TOPIC)
                .map_or_else(BTreeSet::new, |t| {
                    (0..t.partition_count())
                        .filter(|i| t.partitions[*i as usize].leader == self.node_id)
                        .collect()
                })
        };
        let (was, now) = (led(&old), led(&new));
        let acls_changed = !Arc::ptr_eq(&old.acls, &new.acls);
        if acls_changed {
            self.acls.replace((*new.acls).clone());
        }
        // Groups move before the image is published, so no request sees this broker as a
        // group's coordinator before its groups are loaded.
        for index in was.difference(&now) {
            self.groups.unload_partition(*index);
        }
        for index in now.difference(&was) {
            if let Err(e) = self.groups.load_partition(*index) {
                warn!(partition = index, error = %e, "loading consumer groups");
            }
        }
        self.published.send_replace(new);
    }

    /// Publishes every image the state machine applies, until the sender side closes.
    pub async fn run(self: Arc<Self>, mut committed: watch::Receiver<Arc<MetadataImage>>) {
        loop {
            let image = committed.borrow_and_update().clone();
            let fresh = !Arc::ptr_eq(&image, &self.published.borrow());
            if fresh {
                let this = self.clone();
                if tokio::task::spawn_blocking(move || this.publish(image))
                    .await
                    .is_err()
                {
                    warn!("metadata publisher panicked");
                }
            }
            if committed.changed().await.is_err() {
                return;
            }
        }
    }
}
