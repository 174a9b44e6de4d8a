//! The accept loop: one task per connection, all ended together at shutdown. Connections are
//! admitted within `max_connections` (at the limit the loop stops accepting until one closes)
//! and `max_connections_per_ip` (more from that address are closed at once), as in Kafka.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::connection_limits::ConnectionLimits;
use super::request_memory::RequestMemory;
use crate::broker::Broker;

/// Accepts connections until `shutdown` resolves, then aborts every connection task and waits
/// for them, so no request holds a partition when the logs are closed.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let memory = RequestMemory::new(broker.config.queued_max_request_bytes);
    let limits = ConnectionLimits::new(
        broker.config.max_connections,
        broker.config.max_connections_per_ip,
    );
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept(), if !limits.full() => match accepted {
                Ok((stream, peer)) => {
                    let Some(admission) = limits.admit(peer.ip()) else {
                        debug!(%peer, "too many connections from this address; closing");
                        continue;
                    };
                    let (broker, memory) = (broker.clone(), memory.clone());
                    connections.spawn(async move {
                        super::connection::run(stream, broker, memory).await;
                        drop(admission);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
