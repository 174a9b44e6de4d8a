//! The leader's ISR upkeep: a periodic check over the partitions this broker leads that
//! proposes, one at a time per partition, the ISR each should have (followers that have not
//! caught up within `replica.lag.time.max.ms` out, caught-up ones in) to the controller,
//! which commits it through the metadata quorum (Kafka's AlterPartition). The change takes
//! effect when the committed image reaches this broker; a refused or unanswered proposal is
//! simply proposed again at a later check if it still applies.
//!
//! The replica layer does not know the controller: the broker hands in `propose`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info};

use super::partition::IsrProposal;
use super::replica_manager::now_ms;
use super::ReplicaManager;

/// How often the partitions led here are checked. Expansion waits at most this long after a
/// follower caught up; shrinking is bounded by the lag time anyway.
const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Runs until the task is dropped. `propose` sends one proposal to the controller and says
/// whether it was committed.
pub async fn run<F, Fut>(replicas: Arc<ReplicaManager>, lag_max_ms: i64, propose: F)
where
    F: Fn(IsrProposal) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let propose = Arc::new(propose);
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    loop {
        tick.tick().await;
        let now = now_ms();
        for partition in replicas.all_partitions() {
            let Some(proposal) = partition.propose_isr_change(now, lag_max_ms) else {
                continue;
            };
            info!(
                topic = %proposal.topic,
                partition = proposal.partition,
                isr = ?proposal.isr,
                "proposing an ISR change"
            );
            let propose = propose.clone();
            tokio::spawn(async move {
                if let Err(e) = propose(proposal).await {
                    debug!(topic = %partition.topic, partition = partition.index, error = %e, "ISR change not committed");
                }
                // Committed (this broker's image already shows it) or not: the next check
                // starts from the image.
                partition.isr_proposal_settled();
            });
        }
    }
}
