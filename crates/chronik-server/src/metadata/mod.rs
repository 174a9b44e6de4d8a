//! Cluster metadata as this broker knows it: topics, their ids, partition counts and config
//! overrides, and the cluster id.
//!
//! On a single node the store is a JSON file in `data/meta/`. It is the one source of truth for
//! topics: the replica manager reconciles its partitions from it, never the other way round.

pub mod store;
pub mod topic_config;

pub use store::{MetadataStore, TopicMetadata};
