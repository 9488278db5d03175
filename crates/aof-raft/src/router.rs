//! [`Router`]: an in-process Raft network, every node's `Raft` handle by id,
//! for examples, tests and benchmarks that run a cluster in one process.

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, RaftTypeConfig, Snapshot, Vote};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

/// The in-process network: every running node's `Raft` handle by id. A node
/// not registered (stopped, crashed) is unreachable. Cheap to clone (one
/// shared table); it is also each node's `RaftNetworkFactory`.
pub struct Router<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> {
    nodes: Arc<Mutex<BTreeMap<u64, Raft<C>>>>,
}

impl<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> Clone for Router<C> {
    fn clone(&self) -> Self {
        Self {
            nodes: self.nodes.clone(),
        }
    }
}

impl<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> Default for Router<C> {
    fn default() -> Self {
        Self {
            nodes: Arc::default(),
        }
    }
}

impl<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> Router<C> {
    fn table(&self) -> MutexGuard<'_, BTreeMap<u64, Raft<C>>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes node `id` reachable through `raft` (replacing any earlier one).
    pub fn add(&self, id: u64, raft: Raft<C>) {
        self.table().insert(id, raft);
    }

    /// Makes node `id` unreachable and returns its handle, if it was there.
    pub fn remove(&self, id: u64) -> Option<Raft<C>> {
        self.table().remove(&id)
    }

    /// Node `id`'s handle, or [`Unreachable`] if it is not registered.
    pub fn get(&self, id: u64) -> Result<Raft<C>, Unreachable> {
        self.table().get(&id).cloned().ok_or_else(|| {
            Unreachable::new(&NetworkError::new(&std::io::Error::other(format!(
                "node {id} is down"
            ))))
        })
    }

    /// Every registered node's id and handle.
    #[must_use]
    pub fn nodes(&self) -> BTreeMap<u64, Raft<C>> {
        self.table().clone()
    }
}

/// One node's connection to another through a [`Router`].
pub struct Connection<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> {
    router: Router<C>,
    target: u64,
}

impl<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> RaftNetworkFactory<C> for Router<C> {
    type Network = Connection<C>;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection<C> {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

impl<C: RaftTypeConfig<NodeId = u64, Node = BasicNode>> RaftNetwork<C> for Connection<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.get(self.target)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>>
    {
        let raft = self.router.get(self.target)?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<C>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<C, Fatal<u64>>> {
        let raft = self.router.get(self.target)?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.get(self.target)?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}
