//! The replica layer: which partitions this broker hosts (`ReplicaManager`), each one's state
//! (`Partition`) and its idempotent-producer table (`producer_state`).

pub mod partition;
pub mod producer_state;
pub mod replica_manager;

pub use partition::{Appended, Partition, PartitionError};
pub use replica_manager::{FetchPartition, FetchedPartition, ReplicaManager};
