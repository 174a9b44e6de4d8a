//! Per-log configuration (Kafka topic configs that the log layer enforces).

/// What to do with old data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Compact,
    CompactAndDelete,
}

impl CleanupPolicy {
    pub fn includes_delete(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete
        )
    }
    pub fn includes_compact(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete
        )
    }
}

/// `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Settings of one log. `Default` gives Kafka's defaults.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Roll the active segment when it would exceed this size (capped at `u32::MAX`,
    /// since index positions are u32).
    pub segment_bytes: u64,
    /// Roll the active segment when it is older than this.
    pub segment_ms: i64,
    /// Delete sealed segments whose newest timestamp is older than this; -1 = unlimited.
    pub retention_ms: i64,
    /// Delete oldest sealed segments while the log is larger than this; -1 = unlimited.
    pub retention_bytes: i64,
    pub cleanup_policy: CleanupPolicy,
    /// How long compaction keeps tombstones.
    pub delete_retention_ms: i64,
    pub max_message_bytes: i32,
    pub timestamp_type: TimestampType,
    /// Bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// Records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            index_interval_bytes: 4096,
            min_compaction_lag_ms: 0,
        }
    }
}
