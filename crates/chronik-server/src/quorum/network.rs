//! openraft's network: one `PeerConnection` per target, carrying AppendEntries, Vote and
//! InstallSnapshot over the controller RPC (`rpc.rs`). A peer that cannot be reached is reported
//! `Unreachable`, so openraft backs off instead of retrying in a loop.

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::rpc::{CallError, PeerConnection, RpcRequest, RpcResponse};
use super::{Node, NodeId, TypeConfig};

/// Makes a client per peer.
pub struct Network;

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        PeerClient {
            target,
            connection: PeerConnection::new(node.addr.clone()),
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    connection: PeerConnection,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call(
        &mut self,
        request: RpcRequest,
        option: &RPCOption,
    ) -> Result<RpcResponse, CallError> {
        self.connection.call(&request, option.hard_ttl()).await
    }

    fn transport_error<E: std::error::Error>(
        e: CallError,
    ) -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        match e {
            CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network { .. } => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn unexpected<E: std::error::Error>() -> RPCError<NodeId, Node, RaftError<NodeId, E>> {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "mismatched RPC response");
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.call(RpcRequest::AppendEntries(rpc), &option).await {
            Ok(RpcResponse::AppendEntries(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(Self::unexpected()),
            Err(e) => Err(Self::transport_error(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(RpcRequest::InstallSnapshot(rpc), &option).await {
            Ok(RpcResponse::InstallSnapshot(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(Self::unexpected()),
            Err(e) => Err(Self::transport_error(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(RpcRequest::Vote(rpc), &option).await {
            Ok(RpcResponse::Vote(r)) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(_) => Err(Self::unexpected()),
            Err(e) => Err(Self::transport_error(e)),
        }
    }
}
