//! `MetadataStore`: the persisted catalogue of topics.
//!
//! File format: `data/meta/topics.json`, a JSON object `{cluster_id, topics: {name: TopicMetadata}}`,
//! rewritten whole on every change through a temp file, fsync, rename and directory fsync
//! (`durable::replace_file`), so a crash leaves either the old or the new catalogue, never a torn
//! one. Topic changes are rare; a whole rewrite is fine.
//!
//! Every change is built on a copy, persisted, and only then published: a failed write returns an
//! error and leaves the catalogue in memory as it was.
//!
//! Thread-safety: all state sits behind one `RwLock`. A writer holds its upgradable read lock
//! while persisting (so two changes are never saved out of order, yet readers are not blocked by
//! the fsync) and upgrades it only to publish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use parking_lot::{RwLock, RwLockUpgradableReadGuard};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One topic as recorded in metadata.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Config overrides; every other config takes the broker default.
    pub configs: BTreeMap<String, String>,
    /// Internal topics (`__consumer_offsets`) are flagged in Metadata responses.
    #[serde(default)]
    pub internal: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Catalogue {
    cluster_id: String,
    topics: BTreeMap<String, TopicMetadata>,
}

pub struct MetadataStore {
    path: PathBuf,
    catalogue: RwLock<Catalogue>,
}

impl MetadataStore {
    /// Opens (or creates) the store under `meta_dir`. `cluster_id` is used only when the store is new.
    pub fn open(meta_dir: &Path, cluster_id: Option<&str>) -> anyhow::Result<MetadataStore> {
        std::fs::create_dir_all(meta_dir)
            .with_context(|| format!("creating {}", meta_dir.display()))?;
        let path = meta_dir.join("topics.json");
        let catalogue = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        } else {
            Catalogue {
                cluster_id: cluster_id
                    .map(str::to_string)
                    .unwrap_or_else(|| Uuid::new_v4().simple().to_string()[..22].to_string()),
                topics: BTreeMap::new(),
            }
        };
        let store = MetadataStore {
            path,
            catalogue: RwLock::new(catalogue),
        };
        store.persist(&store.catalogue.read())?;
        Ok(store)
    }

    pub fn cluster_id(&self) -> String {
        self.catalogue.read().cluster_id.clone()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.catalogue.read().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMetadata> {
        self.catalogue
            .read()
            .topics
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<TopicMetadata> {
        self.catalogue.read().topics.values().cloned().collect()
    }

    /// Adds a topic; returns false (and changes nothing) when the name is taken.
    pub fn insert_topic(&self, topic: TopicMetadata) -> anyhow::Result<bool> {
        let catalogue = self.catalogue.upgradable_read();
        if catalogue.topics.contains_key(&topic.name) {
            return Ok(false);
        }
        let mut next = catalogue.clone();
        next.topics.insert(topic.name.clone(), topic);
        self.publish(catalogue, next)?;
        Ok(true)
    }

    /// Applies `change` to an existing topic and persists; None when the topic is unknown.
    pub fn update_topic(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicMetadata),
    ) -> anyhow::Result<Option<TopicMetadata>> {
        let catalogue = self.catalogue.upgradable_read();
        let Some(current) = catalogue.topics.get(name) else {
            return Ok(None);
        };
        let mut updated = current.clone();
        change(&mut updated);
        let mut next = catalogue.clone();
        next.topics.insert(name.to_string(), updated.clone());
        self.publish(catalogue, next)?;
        Ok(Some(updated))
    }

    pub fn remove_topic(&self, name: &str) -> anyhow::Result<Option<TopicMetadata>> {
        let catalogue = self.catalogue.upgradable_read();
        let Some(removed) = catalogue.topics.get(name).cloned() else {
            return Ok(None);
        };
        let mut next = catalogue.clone();
        next.topics.remove(name);
        self.publish(catalogue, next)?;
        Ok(Some(removed))
    }

    /// Persists `next`, then makes it the catalogue; on error the catalogue is unchanged.
    fn publish(
        &self,
        current: RwLockUpgradableReadGuard<'_, Catalogue>,
        next: Catalogue,
    ) -> anyhow::Result<()> {
        self.persist(&next)?;
        *RwLockUpgradableReadGuard::upgrade(current) = next;
        Ok(())
    }

    fn persist(&self, catalogue: &Catalogue) -> anyhow::Result<()> {
        crate::durable::replace_file(&self.path, &serde_json::to_vec_pretty(catalogue)?)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
        }
    }

    #[test]
    fn topics_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), Some("cluster-a")).unwrap();
        assert!(store.insert_topic(topic("a")).unwrap());
        assert!(!store.insert_topic(topic("a")).unwrap());
        store
            .update_topic("a", |t| {
                t.partitions = 5;
            })
            .unwrap();
        let id = store.topic("a").unwrap().id;
        drop(store);
        let store = MetadataStore::open(dir.path(), Some("other")).unwrap();
        assert_eq!(store.cluster_id(), "cluster-a");
        let a = store.topic("a").unwrap();
        assert_eq!((a.partitions, a.id), (5, id));
        assert_eq!(store.topic_by_id(id).unwrap().name, "a");
        assert!(store.remove_topic("a").unwrap().is_some());
        assert!(store.topics().is_empty());
    }

    #[test]
    fn a_failed_persist_changes_nothing_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), Some("c")).unwrap();
        let a = topic("a");
        assert!(store.insert_topic(a.clone()).unwrap());
        // A directory in place of the file makes the rename fail, even for root.
        let path = dir.path().join("topics.json");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();

        assert!(store.insert_topic(topic("b")).is_err());
        assert!(store.topic("b").is_none());
        assert!(store.update_topic("a", |t| t.partitions = 9).is_err());
        assert_eq!(store.topic("a"), Some(a.clone()));
        assert!(store.remove_topic("a").is_err());
        assert_eq!(store.topics(), vec![a.clone()]);

        std::fs::remove_dir(&path).unwrap();
        assert!(store.insert_topic(topic("b")).unwrap());
        drop(store);
        let store = MetadataStore::open(dir.path(), None).unwrap();
        assert_eq!(store.topic("a"), Some(a));
        assert!(store.topic("b").is_some());
    }
}
