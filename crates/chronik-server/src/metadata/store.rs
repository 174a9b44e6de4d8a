//! `MetadataStore`: the persisted catalogue of topics.
//!
//! File format: `data/meta/topics.json`, a JSON object `{cluster_id, topics: {name: TopicMetadata}}`,
//! rewritten whole on every change through a temp file, fsync and rename, so a crash leaves either
//! the old or the new catalogue, never a torn one. Topic changes are rare; a whole rewrite is fine.
//!
//! Thread-safety: all state sits behind one `RwLock`; writers persist while holding it so two
//! changes can never be saved out of order.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use parking_lot::RwLock;
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
        let mut catalogue = self.catalogue.write();
        if catalogue.topics.contains_key(&topic.name) {
            return Ok(false);
        }
        catalogue.topics.insert(topic.name.clone(), topic);
        self.persist(&catalogue)?;
        Ok(true)
    }

    /// Applies `change` to an existing topic and persists; None when the topic is unknown.
    pub fn update_topic(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicMetadata),
    ) -> anyhow::Result<Option<TopicMetadata>> {
        let mut catalogue = self.catalogue.write();
        let Some(topic) = catalogue.topics.get_mut(name) else {
            return Ok(None);
        };
        change(topic);
        let updated = topic.clone();
        self.persist(&catalogue)?;
        Ok(Some(updated))
    }

    pub fn remove_topic(&self, name: &str) -> anyhow::Result<Option<TopicMetadata>> {
        let mut catalogue = self.catalogue.write();
        let removed = catalogue.topics.remove(name);
        if removed.is_some() {
            self.persist(&catalogue)?;
        }
        Ok(removed)
    }

    fn persist(&self, catalogue: &Catalogue) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(catalogue)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
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
}
