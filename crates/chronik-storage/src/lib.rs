//! Chronik's log layer: the on-disk storage of one broker's partitions.
//!
//! It knows nothing of the network or of Kafka requests; the broker's partition layer
//! calls it with record batches that were already validated.
//!
//! # Layout
//! - [`batch`]: a RecordBatch v2 header view — parse, validate (CRC-32C), patch in place.
//! - [`records`]: walks and checks the records inside a batch (count, lengths, offset
//!   deltas) in place or, compressed, through [`decompress`]'s bounded streaming decoders.
//! - [`offset_index`] / [`time_index`]: sparse per-segment indexes, over the shared
//!   fixed-width entry file handling of `index_file`.
//! - [`segment`]: one `.log` data file plus its indexes; append, read, recover.
//! - [`log`]: [`Log`], the ordered segments of one partition: offsets, rolling,
//!   reads, retention, truncation, the log start offset and recovery at open.
//! - [`leader_epoch`]: the leader epoch cache (OffsetForLeaderEpoch).
//! - [`cleaner`]: log compaction.
//! - [`dump`]: read-only scan of a partition directory's batches (`chronik-server dump-log`).
//! - [`journal`]: the write-ahead journal of a data directory: one fsync per round for
//!   every partition, checkpoints, recovery points and replay.
//! - [`fs`]: the file-system seam ([`fs::Fs`]) every file operation goes through;
//!   `faulty_fs` (tests and the `fault-injection` feature): an in-memory one that
//!   injects faults and loses unsynced data on a simulated power loss.
//! - [`histogram`]: a lock-free fixed-bucket histogram (journal rounds, request latencies).
//! - [`config`]: [`LogConfig`]; [`error`]: [`StorageError`].
//!
//! Architecture invariant: stored batches are the producer's bytes; only `baseOffset`
//! and `partitionLeaderEpoch` are patched (plus the timestamp fields and CRC under
//! LogAppendTime). Only compaction re-encodes records, preserving their offsets.

pub mod batch;
pub mod cleaner;
pub mod config;
pub mod decompress;
pub mod dump;
pub mod error;
#[cfg(any(test, feature = "fault-injection"))]
pub mod faulty_fs;
pub mod fs;
pub mod histogram;
mod index_file;
pub mod journal;
pub mod leader_epoch;
pub mod log;
pub mod offset_index;
pub mod records;
pub mod segment;
pub mod time_index;

#[cfg(test)]
mod journal_recovery_tests;
#[cfg(test)]
mod log_fault_tests;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod test_util;

pub use batch::{batches, parse_header, validate_batch, BatchError, BatchHeader, BatchIter};
pub use cleaner::CompactionStats;
pub use config::{CleanupPolicy, LogConfig, TimestampType};
pub use error::{Result, StorageError};
pub use log::{AppendInfo, Log, ReadResult, SyncHandle, TimestampLookup};
pub use segment::Segment;

#[cfg(test)]
mod tidy {
    /// Every module opens with a `//!` doc saying what it owns.
    #[test]
    fn every_module_has_module_docs() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(src).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(text.starts_with("//!"), "{} lacks //! docs", path.display());
            }
        }
    }
}
