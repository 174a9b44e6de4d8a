//! Coordinators backed by internal compacted topics. Today: the consumer group coordinator
//! (classic protocol), persisted in `__consumer_offsets`.
//!
//! - `group`: one group's state machine, no I/O.
//! - `group_coordinator`: all groups, their offsets, persistence, timers, lag.
//! - `offsets_log`: the `__consumer_offsets` record layout (Kafka's), and group placement.
//!
//! What's not here: the transaction coordinator (FindCoordinator answers key type 1 with
//! COORDINATOR_NOT_AVAILABLE) and the KIP-848 consumer protocol.

pub mod group;
pub mod group_coordinator;
pub mod offsets_log;

pub use group_coordinator::{GroupCoordinator, PartitionLag};
