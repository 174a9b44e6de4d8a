//! The replica layer: which partitions this broker hosts (`ReplicaManager`), each one's state
//! (`Partition`), its idempotent-producer table (`producer_state`, snapshotted by
//! `producer_snapshot`) and its directory on disk (`partition_dir`).

pub mod partition;
mod partition_dir;

mod producer_snapshot;
pub mod producer_state;
pub mod replica_manager;

pub use partition::{Appended, Partition, PartitionError};
pub use replica_manager::{FetchPartition, FetchedPartition, OfflinePartition, ReplicaManager};
