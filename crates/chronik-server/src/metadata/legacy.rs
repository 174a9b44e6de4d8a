//! The one-time import of a data directory written before the metadata quorum existed
//! (`data/meta/topics.json`, `acls.json`, `producer-id-block`): its contents become metadata
//! records, committed once; the files are then renamed `*.imported` and never read again.
//!
//! Only a cluster of one can import (every partition lives on this node); a multi-voter node
//! with such files refuses to start and says what to do.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;
use uuid::Uuid;

use super::records::{MetadataRecord, PartitionState};
use crate::security::AclBinding;

const FILES: [&str; 3] = ["topics.json", "acls.json", "producer-id-block"];

#[derive(Deserialize)]
struct Catalogue {
    cluster_id: String,
    topics: BTreeMap<String, LegacyTopic>,
}

#[derive(Deserialize)]
struct LegacyTopic {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
    #[serde(default)]
    internal: bool,
}

#[derive(Deserialize)]
struct AclFile {
    acls: Vec<AclBinding>,
}

/// The records that recreate what the legacy files in `meta_dir` hold, placing every
/// partition on `node_id`; `None` when there are no such files.
pub fn read(
    meta_dir: &Path,
    node_id: i32,
    single_voter: bool,
) -> anyhow::Result<Option<Vec<MetadataRecord>>> {
    let present: Vec<&str> = FILES
        .into_iter()
        .filter(|f| meta_dir.join(f).exists())
        .collect();
    if present.is_empty() {
        return Ok(None);
    }
    if !single_voter {
        bail!(
            "{} holds metadata from a single-node Chronik ({}); it can only be imported by a \
             node started without controller_quorum_voters. Start it alone once, then add \
             the other nodes, or move those files away to start empty",
            meta_dir.display(),
            present.join(", ")
        );
    }
    let mut records = Vec::new();
    let topics_path = meta_dir.join("topics.json");
    if topics_path.exists() {
        let text = std::fs::read_to_string(&topics_path)
            .with_context(|| format!("reading {}", topics_path.display()))?;
        let catalogue: Catalogue = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", topics_path.display()))?;
        records.push(MetadataRecord::ClusterId {
            cluster_id: catalogue.cluster_id,
        });
        for topic in catalogue.topics.into_values() {
            records.push(MetadataRecord::Topic {
                name: topic.name.clone(),
                id: topic.id,
                internal: topic.internal,
                configs: topic.configs,
            });
            for partition in 0..topic.partitions {
                records.push(MetadataRecord::Partition {
                    topic: topic.name.clone(),
                    partition,
                    state: PartitionState::new(vec![node_id]),
                });
            }
        }
    }
    let acls_path = meta_dir.join("acls.json");
    if acls_path.exists() {
        let text = std::fs::read_to_string(&acls_path)
            .with_context(|| format!("reading {}", acls_path.display()))?;
        let file: AclFile = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", acls_path.display()))?;
        if !file.acls.is_empty() {
            records.push(MetadataRecord::AclsCreated {
                bindings: file.acls,
            });
        }
    }
    let ids_path = meta_dir.join("producer-id-block");
    if ids_path.exists() {
        let text = std::fs::read_to_string(&ids_path)
            .with_context(|| format!("reading {}", ids_path.display()))?;
        let end: i64 = text
            .trim()
            .parse()
            .with_context(|| format!("parsing {}", ids_path.display()))?;
        records.push(MetadataRecord::ProducerIdBlock {
            broker: node_id,
            first: 0,
            size: end,
        });
    }
    Ok(Some(records))
}

/// Renames the imported files so they are never imported (or mistaken for live state) again.
pub fn retire(meta_dir: &Path) -> std::io::Result<()> {
    for file in FILES {
        let path = meta_dir.join(file);
        if path.exists() {
            std::fs::rename(&path, meta_dir.join(format!("{file}.imported")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::MetadataBatch;
    use crate::metadata::MetadataImage;

    #[test]
    fn legacy_files_become_records_once() {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path();
        assert!(read(meta, 1, true).unwrap().is_none());
        let id = Uuid::new_v4();
        std::fs::write(
            meta.join("topics.json"),
            format!(
                r#"{{"cluster_id":"c1","topics":{{"t":{{"name":"t","id":"{id}","partitions":2,
                "replication_factor":1,"configs":{{"retention.ms":"5"}},"internal":false}}}}}}"#
            ),
        )
        .unwrap();
        std::fs::write(meta.join("acls.json"), r#"{"acls":[{"resource_type":"TOPIC","resource_name":"t","pattern_type":"LITERAL","principal":"User:a","host":"*","operation":"READ","permission":"ALLOW"}]}"#).unwrap();
        std::fs::write(meta.join("producer-id-block"), "2000").unwrap();
        let e = read(meta, 1, false).unwrap_err();
        assert!(e.to_string().contains("controller_quorum_voters"), "{e}");
        let records = read(meta, 7, true).unwrap().unwrap();
        let image = MetadataImage::default().apply(1, &MetadataBatch::new(records));
        assert_eq!(image.cluster_id, "c1");
        let t = image.topic("t").unwrap();
        assert_eq!((t.id, t.partition_count()), (id, 2));
        assert_eq!(t.configs["retention.ms"], "5");
        assert_eq!(image.partition("t", 1).unwrap().leader, 7);
        assert_eq!(image.acls.len(), 1);
        assert_eq!(image.next_producer_id, 2000);
        retire(meta).unwrap();
        assert!(read(meta, 1, true).unwrap().is_none());
        assert!(meta.join("topics.json.imported").exists());
    }
}
