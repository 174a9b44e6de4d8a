//! Replica fetchers: followers pull. A task per leader broker (or `num_replica_fetchers` of
//! them, each with its share of the partitions, so that many fetches to one leader are in
//! flight at once) fetches every partition this broker follows from it, in one long-polling
//! Fetch request at a time (Kafka's `ReplicaFetcherThread`), and appends what comes back
//! verbatim at the leader's offsets.
//!
//! Each partition's fetch carries the leader epoch it follows and the epoch of its last
//! batch (KIP-320): a leader that finds the follower's log diverged from its own answers with
//! the point of divergence (`DivergingEpoch`), and the follower cuts its log there before it
//! fetches again. A follower whose log end the leader no longer has starts afresh at the
//! leader's log start. A partition the leader refuses (not leader, an epoch mismatch) waits a
//! moment and is retried; the metadata image moves it to its new leader's fetcher.
//!
//! `ReplicaFetchers::reconcile` is run by the metadata publisher after every image.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::partition::{Partition, PartitionError};
use super::ReplicaManager;
use crate::config::BrokerConfig;
use crate::metadata::MetadataImage;
use crate::network::client::{ClientSecurity, KafkaClient};

/// Fetch v12: leader epochs, last fetched epoch and DivergingEpoch; topics by name.
const FETCH_VERSION: i16 = 12;
/// After an error, a partition (or a connection) waits this long before it is tried again.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// How long a cut waits for the journal to complete the batches it would remove.
const DURABLE_WAIT: Duration = Duration::from_secs(5);

type Key = (String, i32);

/// A fetcher: the leader it pulls from and which of that leader's fetchers it is.
type FetcherId = (i32, usize);

/// One followed partition in a fetcher.
struct Followed {
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// Set while the partition's last answer could not be applied: when to fetch it again.
    retry_at: Option<Instant>,
    /// The last answer could not be stored here.
    store_failing: bool,
}

/// Why a partition's answer was not applied; either way it is fetched again after
/// `RETRY_BACKOFF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NotApplied {
    /// The leader refused the partition's fetch with an error code.
    Refused,
    /// This replica could not store what the leader sent (its disk, typically, is full).
    StoreFailed,
}

/// One leader's fetcher: the partitions followed from it and the task pulling them.
struct Fetcher {
    address: Arc<Mutex<String>>,
    partitions: Arc<Mutex<HashMap<Key, Followed>>>,
    changed: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The settings a fetch request carries.
#[derive(Clone, Copy)]
struct Limits {
    node_id: i32,
    max_wait_ms: i32,
    partition_max_bytes: i32,
    response_max_bytes: i32,
}

pub struct ReplicaFetchers {
    limits: Limits,
    /// Brokers reached elsewhere than at their advertised address (`peer_kafka_addresses`).
    peer_addresses: HashMap<i32, String>,
    /// TLS and SASL of the inter-broker listener.
    security: Arc<ClientSecurity>,
    replicas: Arc<ReplicaManager>,
    /// Fetchers per leader (Kafka's num.replica.fetchers); a partition always uses the same.
    per_leader: usize,
    fetchers: Mutex<HashMap<FetcherId, Fetcher>>,
}

impl ReplicaFetchers {
    pub fn new(config: &BrokerConfig, replicas: Arc<ReplicaManager>) -> ReplicaFetchers {
        ReplicaFetchers {
            limits: Limits {
                node_id: config.node_id,
                max_wait_ms: config.replica_fetch_max_wait_ms.min(i32::MAX as u64) as i32,
                partition_max_bytes: config.replica_fetch_max_bytes,
                response_max_bytes: config.replica_fetch_response_max_bytes,
            },
            // Validated when the configuration was loaded.
            peer_addresses: config.peer_kafka_addresses().unwrap_or_default(),
            security: Arc::new(config.inter_broker_client().unwrap_or_default()),
            replicas,
            per_leader: config.num_replica_fetchers.max(1),
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Which of a leader's fetchers pulls `topic`-`partition` (Kafka's `getFetcherId`).
    fn fetcher_of(&self, leader: i32, topic: &str, partition: i32) -> FetcherId {
        let topic_hash = topic
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
        let hash = topic_hash.wrapping_mul(31).wrapping_add(partition);
        (leader, hash.unsigned_abs() as usize % self.per_leader)
    }

    /// Makes the fetchers match the partitions this broker follows: each is fetched from its
    /// leader's current address under its current leader epoch. Must run inside a runtime.
    pub fn reconcile(&self, image: &MetadataImage) {
        let mut wanted: HashMap<FetcherId, HashMap<Key, (Arc<Partition>, i32)>> = HashMap::new();
        for partition in self.replicas.all_partitions() {
            let Some(leader) = partition.leader_to_follow() else {
                continue;
            };
            let fetcher = self.fetcher_of(leader, &partition.topic, partition.index);
            let key = (partition.topic.clone(), partition.index);
            let epoch = partition.leader_epoch();
            wanted
                .entry(fetcher)
                .or_default()
                .insert(key, (partition, epoch));
        }
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|id, fetcher| {
            let keep = wanted.contains_key(id);
            if !keep {
                fetcher.task.abort();
            }
            keep
        });
        for (id, partitions) in wanted {
            let leader = id.0;
            let registered = image.brokers.get(&leader);
            let address = match self.peer_addresses.get(&leader) {
                Some(address) if registered.is_some() => Some(address.clone()),
                _ => registered.map(|b| format!("{}:{}", b.host, b.port)),
            };
            let Some(address) = address else {
                // Not registered (yet): the next image that registers it starts the fetcher.
                continue;
            };
            let fetcher = fetchers
                .entry(id)
                .or_insert_with(|| self.start(id, address.clone()));
            *fetcher.address.lock() = address;
            let mut followed = fetcher.partitions.lock();
            followed.retain(|key, _| partitions.contains_key(key));
            for (key, (partition, epoch)) in partitions {
                match followed.get_mut(&key) {
                    Some(f) if f.leader_epoch == epoch && Arc::ptr_eq(&f.partition, &partition) => {
                    }
                    _ => {
                        followed.insert(
                            key,
                            Followed {
                                partition,
                                leader_epoch: epoch,
                                retry_at: None,
                                store_failing: false,
                            },
                        );
                    }
                }
            }
            drop(followed);
            fetcher.changed.notify_one();
        }
    }

    fn start(&self, id: FetcherId, address: String) -> Fetcher {
        let address = Arc::new(Mutex::new(address));
        let partitions = Arc::new(Mutex::new(HashMap::new()));
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(run_fetcher(
            id,
            self.limits,
            self.security.clone(),
            address.clone(),
            partitions.clone(),
            changed.clone(),
        ));
        Fetcher {
            address,
            partitions,
            changed,
            task,
        }
    }

    /// Stops every fetcher (shutdown).
    pub fn stop(&self) {
        for (_, fetcher) in self.fetchers.lock().drain() {
            fetcher.task.abort();
        }
    }
}

async fn run_fetcher(
    (leader, fetcher): FetcherId,
    limits: Limits,
    security: Arc<ClientSecurity>,
    address: Arc<Mutex<String>>,
    partitions: Arc<Mutex<HashMap<Key, Followed>>>,
    changed: Arc<Notify>,
) {
    let client_id = format!(
        "chronik-replica-fetcher-{}-{leader}-{fetcher}",
        limits.node_id
    );
    let mut connection: Option<(String, KafkaClient)> = None;
    let mut failing = false;
    loop {
        let now = Instant::now();
        let (request, sent) = build_request(&limits, &partitions.lock(), now);
        if sent.is_empty() {
            // Nothing to fetch now: wait for a change or the earliest retry.
            let _ = tokio::time::timeout(RETRY_BACKOFF, changed.notified()).await;
            continue;
        }
        let target = address.lock().clone();
        if connection.as_ref().is_none_or(|(a, _)| *a != target) {
            match KafkaClient::connect(&target, &client_id, Duration::from_secs(5), &security).await
            {
                Ok(client) => connection = Some((target.clone(), client)),
                Err(e) => {
                    if !failing {
                        warn!(leader, address = %target, error = %e, "replica fetcher cannot reach the leader; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        let Some((_, client)) = connection.as_mut() else {
            continue;
        };
        // A leader that stops answering (frozen, cut off) must not hold the fetcher forever.
        let timeout = Duration::from_millis(limits.max_wait_ms as u64) + Duration::from_secs(10);
        let response =
            match tokio::time::timeout(timeout, client.send(&request, FETCH_VERSION)).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    debug!(leader, error = %e, "replica fetch failed; reconnecting");
                    connection = None;
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
                Err(_) => {
                    debug!(leader, "replica fetch timed out; reconnecting");
                    connection = None;
                    continue;
                }
            };
        if failing {
            info!(leader, "replica fetcher reached the leader");
            failing = false;
        }
        if response.error_code != 0 {
            debug!(leader, code = response.error_code, "replica fetch refused");
            tokio::time::sleep(RETRY_BACKOFF).await;
            continue;
        }
        for topic in response.responses {
            let name = topic.topic.to_string();
            for data in topic.partitions {
                let key = (name.clone(), data.partition_index);
                let Some(&(partition_ptr, epoch)) = sent.get(&key) else {
                    continue;
                };
                let followed = partitions
                    .lock()
                    .get(&key)
                    .filter(|f| {
                        Arc::as_ptr(&f.partition) as usize == partition_ptr
                            && f.leader_epoch == epoch
                    })
                    .map(|f| (f.partition.clone(), f.store_failing));
                // Moved to another leader or epoch while the fetch was out: not ours to apply.
                let Some((partition, store_failing)) = followed else {
                    continue;
                };
                let applied = apply(&partition, data, leader, store_failing).await;
                if store_failing && applied.is_ok() {
                    info!(topic = %partition.topic, partition = partition.index, leader, "follower applies its leader's answers again");
                }
                if let Some(f) = partitions.lock().get_mut(&key) {
                    f.retry_at = applied.err().map(|_| Instant::now() + RETRY_BACKOFF);
                    f.store_failing = applied == Err(NotApplied::StoreFailed);
                }
            }
        }
    }
}

/// What was asked, per partition: which `Partition` (its address) under which epoch, to
/// recognise the answer as still relevant.
type Sent = HashMap<Key, (usize, i32)>;

fn build_request(
    limits: &Limits,
    partitions: &HashMap<Key, Followed>,
    now: Instant,
) -> (FetchRequest, Sent) {
    let mut topics: HashMap<&str, Vec<FetchPartition>> = HashMap::new();
    let mut sent = Sent::new();
    for ((topic, index), f) in partitions {
        if f.retry_at.is_some_and(|t| t > now) {
            continue;
        }
        let p = &f.partition;
        let (log_end, last_epoch, log_start) = p.fetch_position();
        topics.entry(topic).or_default().push(
            FetchPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(log_end)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(limits.partition_max_bytes),
        );
        sent.insert(
            (topic.clone(), *index),
            (Arc::as_ptr(p) as usize, f.leader_epoch),
        );
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            FetchTopic::default()
                .with_topic(TopicName(crate::api::str_bytes(name)))
                .with_partitions(partitions)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(limits.node_id))
        .with_max_wait_ms(limits.max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(limits.response_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    (request, sent)
}

/// Logs a failure to store the leader's data: at warn when a run of them starts, at debug
/// while it lasts (a full disk fails every retry, ten times a second per partition).
fn store_failed(
    partition: &Partition,
    leader: i32,
    repeated: bool,
    what: &str,
    error: &PartitionError,
) -> NotApplied {
    let (topic, index) = (&partition.topic, partition.index);
    if repeated {
        debug!(topic, partition = index, leader, error = %error, "{what} failed");
    } else {
        warn!(topic, partition = index, leader, error = %error, "{what} failed");
    }
    NotApplied::StoreFailed
}

/// The follower's side of one partition's answer; `store_failing` says the last one could
/// not be stored either.
async fn apply(
    partition: &Arc<Partition>,
    data: PartitionData,
    leader: i32,
    store_failing: bool,
) -> Result<(), NotApplied> {
    let (topic, index) = (&partition.topic, partition.index);
    match ResponseError::try_from_code(data.error_code) {
        None => {}
        Some(ResponseError::OffsetOutOfRange)
            if data.log_start_offset > partition.log_end_offset() =>
        {
            // The leader no longer has what this follower needs next.
            wait_all_durable(partition).await;
            if !store_failing {
                warn!(
                    topic,
                    partition = index,
                    leader,
                    start = data.log_start_offset,
                    "follower is behind the leader's log start: starting afresh there"
                );
            }
            return partition.restart_at(data.log_start_offset).map_err(|e| {
                store_failed(
                    partition,
                    leader,
                    store_failing,
                    "starting the log afresh",
                    &e,
                )
            });
        }
        Some(e) => {
            debug!(topic, partition = index, leader, error = ?e, "replica fetch refused for a partition");
            return Err(NotApplied::Refused);
        }
    }
    if data.diverging_epoch.epoch >= 0 {
        let (leader_epoch, leader_end) =
            (data.diverging_epoch.epoch, data.diverging_epoch.end_offset);
        let (own_epoch, own_end) = partition.end_offset_for_epoch(leader_epoch);
        // Up to where both logs hold that epoch (or the older one this log has in its place).
        let cut = if own_epoch < 0 {
            partition.log_start_offset()
        } else {
            own_end.min(leader_end)
        };
        wait_all_durable(partition).await;
        return partition.truncate_to(cut).map_err(|e| {
            store_failed(
                partition,
                leader,
                store_failing,
                "truncating to the leader's log",
                &e,
            )
        });
    }
    let records = data.records.unwrap_or_default();
    if !records.is_empty() {
        if let Err(e) = partition.append_replicated(&records) {
            return Err(store_failed(
                partition,
                leader,
                store_failing,
                "appending the leader's batches",
                &e,
            ));
        }
    }
    partition.follow_high_watermark(data.high_watermark);
    partition.follow_log_start(data.log_start_offset);
    Ok(())
}

/// Waits (bounded) until the journal completed every batch appended, so a cut does not race
/// the completion of batches it removes.
async fn wait_all_durable(partition: &Partition) {
    let deadline = Instant::now() + DURABLE_WAIT;
    while !partition.all_durable() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_always_goes_to_the_same_of_its_leaders_fetchers() {
        let replicas = tempfile::tempdir().unwrap();
        let manager = ReplicaManager::new(
            replicas.path().to_path_buf(),
            Default::default(),
            crate::config::FlushPolicy::Os,
        )
        .unwrap();
        let config = BrokerConfig {
            num_replica_fetchers: 3,
            ..Default::default()
        };
        let fetchers = ReplicaFetchers::new(&config, Arc::new(manager));
        let ids: Vec<FetcherId> = (0..30).map(|p| fetchers.fetcher_of(2, "t", p)).collect();
        assert!(ids.iter().all(|&(leader, id)| leader == 2 && id < 3));
        for n in 0..3 {
            assert!(
                ids.iter().any(|&(_, id)| id == n),
                "fetcher {n} gets a share"
            );
        }
        assert_eq!(fetchers.fetcher_of(2, "t", 7), ids[7]);
        // Kafka's getFetcherId: abs(31 * "t".hashCode() + 7) % 3, "t".hashCode() = 116.
        assert_eq!(fetchers.fetcher_of(2, "t", 7).1, (31 * 116 + 7) % 3);
    }
}
