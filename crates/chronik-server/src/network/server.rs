//! The accept loop over every listener: one task per connection, all ended together at
//! shutdown. Connections are admitted within `max_connections` (at the limit the loop stops
//! accepting until one closes) and `max_connections_per_ip` (more from that address are closed
//! at once), counted over all listeners, as in Kafka.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::connection::Listening;
use super::connection_limits::ConnectionLimits;
use super::listener::ListenerConfig;
use super::request_memory::RequestMemory;
use crate::broker::Broker;

/// Decrypted bytes buffered per TLS connection (a TLS record is at most 16 KiB).
const TLS_READ_BUFFER: usize = 16 * 1024;

/// One bound listener and how its connections are secured.
pub struct BoundListener {
    pub socket: TcpListener,
    pub config: ListenerConfig,
}

/// Accepts connections until `shutdown` resolves, then aborts every connection task and waits
/// for them, so no request holds a partition when the logs are closed.
pub async fn serve(
    listeners: Vec<BoundListener>,
    broker: Arc<Broker>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let memory = RequestMemory::new(broker.config.queued_max_request_bytes);
    let limits = ConnectionLimits::new(
        broker.config.max_connections,
        broker.config.max_connections_per_ip,
    );
    let names: Vec<Arc<str>> = listeners
        .iter()
        .map(|l| Arc::from(l.config.name.as_str()))
        .collect();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // One boxed future per listener and accepted connection, none per request.
        let accepts = select_all(listeners.iter().map(|l| Box::pin(l.socket.accept())));
        tokio::select! {
            _ = &mut shutdown => break,
            (accepted, index, _) = accepts, if !limits.full() => match accepted {
                Ok((stream, peer)) => {
                    let Some(admission) = limits.admit(peer.ip()) else {
                        debug!(%peer, "too many connections from this address; closing");
                        continue;
                    };
                    let (broker, memory) = (broker.clone(), memory.clone());
                    let listening = Listening {
                        index,
                        name: names[index].clone(),
                        protocol: listeners[index].config.protocol,
                        certificate_principal: None,
                    };
                    connections.spawn(async move {
                        connect(stream, peer, listening, broker, memory).await;
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

/// Runs one accepted connection: plain, or after its TLS handshake. A handshake that fails
/// (plaintext sent to a TLS port, an unknown CA, ...) or does not finish within
/// `request_frame_timeout_ms` closes the connection.
async fn connect(
    stream: TcpStream,
    peer: SocketAddr,
    mut listening: Listening,
    broker: Arc<Broker>,
    memory: RequestMemory,
) {
    let _ = stream.set_nodelay(true);
    if !listening.protocol.uses_tls() {
        let (read, write) = stream.into_split();
        super::connection::run(read, write, Some(peer), listening, broker, memory).await;
        return;
    }
    // Never plaintext on a TLS listener (the configuration check makes this unreachable).
    let Some(tls) = broker.tls.as_ref() else {
        warn!(%peer, "no TLS configuration for a TLS listener; closing");
        return;
    };
    let timeout = Duration::from_millis(broker.config.request_frame_timeout_ms);
    let stream = match tokio::time::timeout(timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "TLS handshake failed; closing");
            return;
        }
        Err(_) => {
            debug!(%peer, "TLS handshake not completed in time; closing");
            return;
        }
    };
    listening.certificate_principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| tls.principal(chain));
    let (read, write) = tokio::io::split(stream);
    let read = BufReader::with_capacity(TLS_READ_BUFFER, read);
    super::connection::run(read, write, Some(peer), listening, broker, memory).await;
}
