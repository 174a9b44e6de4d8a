//! DescribeLogDirs (key 35, KIP-113): this broker's one log directory (`data_dir`) with, per
//! hosted partition, its size on disk, its offset lag and whether it is a future replica
//! (never: partitions do not move between directories here). v4 adds the directory's total
//! and usable bytes. Needs DESCRIBE on the cluster, as in Kafka: without it the result list is
//! empty (and v3+ carries CLUSTER_AUTHORIZATION_FAILED).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::replica::ReplicaManager;
use crate::security::{AclOperation, Authorizer, Session};

pub fn handle(
    replicas: &ReplicaManager,
    authorizer: &Authorizer,
    session: &Session,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    if !authorizer.cluster(session, AclOperation::Describe) {
        let code = if version >= 3 {
            ResponseError::ClusterAuthorizationFailed.code()
        } else {
            0
        };
        return DescribeLogDirsResponse::default().with_error_code(code);
    }
    // None: every partition; otherwise only those asked for (unknown ones are left out).
    let wanted: Option<BTreeMap<String, Vec<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in replicas.all_partitions() {
        if let Some(wanted) = &wanted {
            if !wanted.get(&p.topic).is_some_and(|ps| ps.contains(&p.index)) {
                continue;
            }
        }
        // Kafka's lag of a current replica: how far its log end is behind the high watermark.
        let offset_lag = (p.high_watermark() - p.log_end_offset()).max(0);
        topics.entry(p.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(p.size_bytes() as i64)
                .with_offset_lag(offset_lag)
                .with_is_future_key(false),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(&name)))
                .with_partitions(partitions)
        })
        .collect();
    let dir = replicas.data_dir();
    let dir_name = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let (total_bytes, usable_bytes) = disk_space(dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&dir_name.to_string_lossy()))
        .with_topics(topics)
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// (total, available to this process) bytes of the file system holding `dir`.
fn disk_space(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a writable statvfs.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as i64;
    Some((stat.f_blocks as i64 * block, stat.f_bavail as i64 * block))
}
