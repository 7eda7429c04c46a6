//! Nodes sharing one store: their leases, their load, where a session is placed, and which
//! node runs what. Only a store that several nodes share has this role: one node's journal
//! has no other node to lease against, place on or ask.

use std::future::Future;
use std::time::Duration;

use super::error::StoreError;

/// A cluster node as `GET /v1/nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeView {
    pub id: String,
    pub api_url: String,
    /// Where the cloud reaches the streams it serves.
    pub stream_base: String,
    pub capacity: u32,
    /// Sessions running on it at its last renewal.
    pub load: u32,
    pub draining: bool,
    /// Its CPU was over its limit at its last renewal: placement passes it by.
    pub busy: bool,
    /// Since its last renewal.
    pub lease_age_ms: u64,
    /// Whether its lease still runs.
    pub live: bool,
}

/// What a node reports with each renewal of its lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeLoad {
    /// Sessions running on it.
    pub sessions: u32,
    /// It takes no new sessions: it drains.
    pub draining: bool,
    /// It takes no new sessions for now: its measured CPU is over its limit.
    pub busy: bool,
}

/// A cluster node as it registers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    /// Where its API answers.
    pub api_url: String,
    /// Where the cloud reaches the streams it serves (its public URL).
    pub stream_base: String,
    /// Its room, in cost units.
    pub capacity: u32,
    /// A fingerprint of the API token it takes ([`crate::serve::cluster::token_fingerprint`]):
    /// sessions are placed only on nodes that take the same token.
    pub token_fingerprint: String,
}

/// Where a session was admitted, in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this node: it runs it now.
    Here,
    /// On another node (its API): that node picks it up.
    There { api_url: String },
    /// An unfinished session already has the room and robot.
    Busy { existing: String },
    /// No live node has room for it; `cpu_bound` when some had room but were over their CPU
    /// limit (`--max-cpu`).
    Full { cpu_bound: bool },
}

/// Why a session placed on a node that never picked it up was finished.
pub const STRANDED_NOTE: &str =
    "placed on a node that did not pick it up, and no other node had room; nothing had started";

/// A session placed on a node that did not pick it up (gone, or silent for a lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub id: String,
    /// The node it is placed on now (its API), or `None`: no node had room, and it was
    /// finished as `refused`.
    pub to: Option<String>,
}

/// Wake-ups from the store, with what keeps them coming (a listening connection).
pub struct WakeUps {
    pub(super) rx: tokio::sync::mpsc::UnboundedReceiver<()>,
    pub(super) _connection: Box<dyn std::any::Any + Send + Sync>,
}

impl WakeUps {
    /// The next wake-up; `None` once the listening connection is gone.
    pub async fn next(&mut self) -> Option<()> {
        self.rx.recv().await
    }
}

/// What nodes sharing a store do through it. Each write is durable when it returns.
pub trait Cluster: Send + Sync {
    /// Announces this process as a node holding a lease of `lease` on the store's clock.
    fn register_node(
        &self,
        info: &NodeInfo,
        lease: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Extends this node's lease; `false` when its node row is gone (removed as long gone:
    /// its sessions have been taken over, and it must stop them and register anew).
    fn renew_lease(
        &self,
        lease: Duration,
        now: NodeLoad,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Removes the rows of nodes whose lease ran out `gone_for` ago; how many.
    fn forget_nodes_gone_for(
        &self,
        gone_for: Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// The cluster's nodes.
    fn nodes(&self) -> impl Future<Output = Result<Vec<NodeView>, StoreError>> + Send;
    /// Removes this node (after a drain).
    fn leave(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Admits a session and places it on the live node with the most free room (this one on
    /// a tie) that has `cost` left (capacities and costs in the same units), in one
    /// transaction; `request` is what the chosen node runs.
    fn admit_placing(
        &self,
        id: &str,
        room: &str,
        robot: &str,
        request: &str,
        cost: u32,
    ) -> impl Future<Output = Result<Placement, StoreError>> + Send;
    /// Wakes each time another node places a session here (`None`: no listening connection
    /// now, and placed sessions are found by looking).
    fn placed_here(&self) -> impl Future<Output = Option<WakeUps>> + Send;
    /// Takes the sessions placed on this node by others, each once: their ids and requests.
    fn take_placed(&self)
    -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
    /// Places again the sessions placed on a node that did not pick them up — its lease ran
    /// out, or `lease` passed — on another live node of this node's token with room, or
    /// finishes them as `refused` when none has any. Nothing of them had started.
    fn replace_stranded(
        &self,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Replaced>, StoreError>> + Send;
    /// The unfinished session with this CallId or TaskId, whichever node runs it.
    fn session_by_cloud_id(
        &self,
        call_id: Option<&str>,
        task_id: Option<&str>,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}
