//! The controller listener: answers peers' Raft messages and brokers' controller calls, one
//! request at a time per connection (a peer's client never pipelines). Runs on the Raft runtime.
//!
//! It also answers `ReplicaStatus` for the admin command, from a `StatusSource` the broker hands
//! in (the replica manager's report), so the quorum knows nothing of the replica layer but the
//! report's type.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use super::rpc::{read_frame, write_frame, RpcRequest, RpcResponse};
use super::MetadataRaft;
use crate::controller::{Controller, ControllerError, DEFAULT_TIMEOUT};
use crate::replica::ReplicaStatus;

/// Builds this broker's replica status report. Called off the Raft runtime's worker (it takes
/// each hosted partition's locks in turn).
pub type StatusSource = Arc<dyn Fn() -> ReplicaStatus + Send + Sync>;

/// Accepts connections until the runtime stops.
pub async fn serve(
    listener: std::net::TcpListener,
    raft: MetadataRaft,
    controller: Arc<Controller>,
    status: StatusSource,
) {
    // Registered here, with the Raft runtime's reactor.
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "controller listener unusable");
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "controller listener accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let raft = raft.clone();
        let controller = controller.clone();
        let status = status.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, raft, controller, status).await {
                debug!(%peer, error = %e, "controller connection closed");
            }
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    raft: MetadataRaft,
    controller: Arc<Controller>,
    status: StatusSource,
) -> std::io::Result<()> {
    while let Some(request) = read_frame::<RpcRequest>(&mut stream).await? {
        let response = match request {
            RpcRequest::AppendEntries(rpc) => {
                RpcResponse::AppendEntries(raft.append_entries(rpc).await)
            }
            RpcRequest::Vote(rpc) => RpcResponse::Vote(raft.vote(rpc).await),
            RpcRequest::InstallSnapshot(rpc) => {
                RpcResponse::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            // Bounded: without a quorum a decision would wait for one; the caller gave up by then.
            RpcRequest::Controller(call) => RpcResponse::Controller(
                tokio::time::timeout(DEFAULT_TIMEOUT, controller.decide(call))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ControllerError::new(
                            kafka_protocol::ResponseError::RequestTimedOut,
                            "the controller could not commit in time",
                        ))
                    }),
            ),
            RpcRequest::ReplicaStatus => {
                let status = status.clone();
                match tokio::task::spawn_blocking(move || status()).await {
                    Ok(report) => RpcResponse::ReplicaStatus(report),
                    // The report panicked: the caller sees the connection close.
                    Err(e) => return Err(std::io::Error::other(e.to_string())),
                }
            }
            RpcRequest::Brokers => RpcResponse::Brokers(
                (controller
                    .quorum()
                    .committed_image()
                    .brokers
                    .values()
                    .cloned())
                .collect(),
            ),
        };
        write_frame(&mut stream, &response).await?;
    }
    Ok(())
}
