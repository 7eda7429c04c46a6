//! Nodes sharing one store: their leases, their load, and where a session is placed.

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
