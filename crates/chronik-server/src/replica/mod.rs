//! The replica layer: which partitions this broker hosts (`ReplicaManager`), each one's state
//! (`Partition`, with its leader's view of the followers in `leader_state`), its
//! idempotent-producer table (`producer_state`, snapshotted by `producer_snapshot`) and its
//! directory on disk (`partition_dir`). Replication: followers pull from leaders
//! (`fetcher`); leaders propose ISR changes to the controller (`isr`). What replication did
//! since start, and each hosted partition's offsets, are reported from `stats`; produce and
//! fetch traffic is counted in `traffic`.

pub mod fetcher;
mod hw_checkpoint;
pub mod isr;
mod leader_state;
pub mod partition;
mod partition_dir;

mod producer_snapshot;
pub mod producer_state;
pub mod replica_manager;
pub mod stats;
pub mod traffic;

pub use fetcher::ReplicaFetchers;
pub use partition::{Appended, IsrProposal, Partition, PartitionError, RoleChange};
pub use replica_manager::{
    FetchFrom, FetchPartition, FetchedPartition, OfflinePartition, ReplicaManager,
};
pub use stats::{
    PartitionStatus, ReplicaRole, ReplicaStatus, ReplicationCounters, ReplicationStats,
};
