//! The controller RPC: what nodes say to each other on their controller listeners. One frame is
//! `[len: u32 BE][JSON]`; a connection carries one request at a time, each answered by one
//! response, and is kept open for the next.
//!
//! Raft's own messages (AppendEntries, Vote, InstallSnapshot) and the broker → controller calls
//! (`ControllerCall`: registration, heartbeats and forwarded metadata changes, KIP-590) share the
//! listener, so a node needs one extra port, not two. So do `ReplicaStatus` and `Brokers`, the
//! admin command's questions to each broker about its replicas and to the controller about the
//! registered brokers (`chronik-server cluster status`).

use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{NodeId, TypeConfig};
use crate::controller::{ControllerCall, ControllerResult};
use crate::metadata::BrokerRegistration;
use crate::replica::ReplicaStatus;

/// Frames larger than this are refused (a snapshot is sent in chunks well below it).
pub const MAX_FRAME: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Controller(ControllerCall),
    /// This broker's hosted partitions and replication counters, answered locally.
    ReplicaStatus,
    /// Every registered broker with its epoch and state, from this node's committed image.
    Brokers,
}

#[derive(Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Controller(ControllerResult),
    ReplicaStatus(ReplicaStatus),
    Brokers(Vec<BrokerRegistration>),
}

pub async fn write_frame<T: Serialize>(stream: &mut TcpStream, value: &T) -> std::io::Result<()> {
    let json = serde_json::to_vec(value)?;
    let mut frame = Vec::with_capacity(4 + json.len());
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&json);
    stream.write_all(&frame).await
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<T: DeserializeOwned>(stream: &mut TcpStream) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("controller RPC frame of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// One reusable connection to a peer's controller listener. Reconnects on the next call after
/// any failure; a call that fails leaves no half-read response behind.
pub struct PeerConnection {
    addr: String,
    stream: Option<TcpStream>,
}

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Could not connect: the peer is down or unreachable.
    #[error("cannot connect to {addr}: {source}")]
    Unreachable {
        addr: String,
        source: std::io::Error,
    },
    /// Connected, but the exchange failed or timed out.
    #[error("controller RPC to {addr} failed: {source}")]
    Network {
        addr: String,
        source: std::io::Error,
    },
}

impl PeerConnection {
    pub fn new(addr: String) -> PeerConnection {
        PeerConnection { addr, stream: None }
    }

    pub async fn call(
        &mut self,
        request: &RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, CallError> {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => {
                self.stream = None;
                Err(CallError::Network {
                    addr: self.addr.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
                })
            }
        }
    }

    async fn exchange(&mut self, request: &RpcRequest) -> Result<RpcResponse, CallError> {
        if self.stream.is_none() {
            let stream =
                TcpStream::connect(&self.addr)
                    .await
                    .map_err(|source| CallError::Unreachable {
                        addr: self.addr.clone(),
                        source,
                    })?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        let result = async {
            write_frame(stream, request).await?;
            read_frame::<RpcResponse>(stream).await?.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")
            })
        }
        .await;
        result.map_err(|source| {
            self.stream = None;
            CallError::Network {
                addr: self.addr.clone(),
                source,
            }
        })
    }
}
