//! The storage layer's error type. The broker maps these to Kafka error codes.

use std::io;

use crate::batch::BatchError;

/// Errors from the log layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// Requested offset is below the log start offset or above the log end offset.
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A batch handed to `append` is malformed.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: i32 },
    /// On-disk state that cannot be repaired automatically (e.g. unparsable checkpoint).
    #[error("corrupt storage: {0}")]
    Corrupt(String),
}

/// Result alias for the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
