//! Where sessions are recorded: every session, its CallId and TaskId as soon as they exist,
//! the one-session-per-room lock, and the result — so nothing a session started in the cloud
//! is ever forgotten. One trait, [`SessionStore`], two backends: embedded SQLite for one node
//! (the default, no server to install) and PostgreSQL for a cluster of nodes sharing it.
//! The rest of callfeed holds a [`Store`], whichever backend it is.

mod cluster;
mod error;
mod events;
mod journal;
mod owner;
mod postgres;
mod sqlite;

use std::future::Future;

pub use cluster::{NodeInfo, NodeLoad, NodeView, Placement, Replaced, STRANDED_NOTE, WakeUps};
pub use error::StoreError;
pub use events::FeedEvent;
pub use journal::{Admission, OpenSession, Whereabouts};
pub use owner::process_identity;
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, default_path};

/// What every backend does. Each write is durable when it returns.
pub trait SessionStore: Send + Sync {
    /// Records a new session if its room and robot are free, atomically: of any number of
    /// requests for one room at once (on any node), exactly one is admitted.
    fn admit(
        &self,
        id: &str,
        room: &str,
        robot: &str,
    ) -> impl Future<Output = Result<Admission, StoreError>> + Send;
    /// Admits a session and places it on the live node with the most free room (this one on
    /// a tie) that has `cost` left (capacities and costs in the same units), in one
    /// transaction; `request` is what the chosen node runs. One node's journal always
    /// places it here.
    fn admit_placing(
        &self,
        id: &str,
        room: &str,
        robot: &str,
        request: &str,
        cost: u32,
    ) -> impl Future<Output = Result<Placement, StoreError>> + Send;
    /// Wakes each time another node places a session here (`None`: the store cannot say,
    /// and placed sessions are found by looking).
    fn placed_here(&self) -> impl Future<Output = Option<WakeUps>> + Send;
    /// Places again the sessions placed on a node that did not pick them up — its lease ran
    /// out, or `lease` passed — on another live node of this node's token with room, or
    /// finishes them as `refused` when none has any. Nothing of them had started.
    fn replace_stranded(
        &self,
        lease: std::time::Duration,
    ) -> impl Future<Output = Result<Vec<Replaced>, StoreError>> + Send;
    /// Takes the sessions placed on this node by others, each once: their ids and requests.
    fn take_placed(&self)
    -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;
    fn set_state(
        &self,
        id: &str,
        state: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn set_call(
        &self,
        id: &str,
        call_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn set_task(
        &self,
        id: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The session is over, and the cloud confirmed its task and call gone: its room is free.
    fn finish(
        &self,
        id: &str,
        result: &str,
        note: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The session is over but the cloud has not confirmed its task or call gone: it stays
    /// open (and keeps its room) until a retry does.
    fn teardown_pending(
        &self,
        id: &str,
        result: &str,
        note: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// An unfinished session already using this room and robot, if any.
    fn active_for(
        &self,
        room: &str,
        robot: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Every unfinished session, oldest first.
    fn open_sessions(&self) -> impl Future<Output = Result<Vec<OpenSession>, StoreError>> + Send;
    /// The CallId recorded for a session, once it has one.
    fn call_of(&self, id: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// The result and note recorded for a session, if it has ended.
    fn result_of(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send;
    /// Whether this process still owns the session: checked (and the row touched) before
    /// every cloud start, so a node another one took the session from starts nothing.
    fn fence(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Takes an unfinished session over from `from` (its owner as last read), atomically:
    /// of several nodes recovering it at once, one gets `true`.
    fn claim(
        &self,
        id: &str,
        from: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Announces this process as a node holding a lease of `lease` on the store's clock.
    fn register_node(
        &self,
        info: &NodeInfo,
        lease: std::time::Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Extends this node's lease; `false` when its node row is gone (removed as long gone:
    /// its sessions have been taken over, and it must stop them and register anew).
    fn renew_lease(
        &self,
        lease: std::time::Duration,
        now: NodeLoad,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Removes the rows of nodes whose lease ran out `gone_for` ago; how many.
    fn forget_nodes_gone_for(
        &self,
        gone_for: std::time::Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Where a session is: its owner (and that node's API while its lease runs) and how
    /// it ended; `None` for a session the store does not know.
    fn whereabouts(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Whereabouts>, StoreError>> + Send;
    /// The unfinished session with this CallId or TaskId, if any.
    fn session_by_cloud_id(
        &self,
        call_id: Option<&str>,
        task_id: Option<&str>,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Records one of a session's events; its sequence number (increasing, also across
    /// sessions), which `Last-Event-ID` names.
    fn append_event(
        &self,
        session: &str,
        kind: &str,
        data: &str,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// A session's events after sequence number `after`, oldest first: (seq, kind, data).
    fn events_after(
        &self,
        session: &str,
        after: i64,
    ) -> impl Future<Output = Result<Vec<(i64, String, String)>, StoreError>> + Send;
    /// Every session's events after sequence number `after`, oldest first, at most `limit`:
    /// what the console's one stream for all sessions follows.
    fn all_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send;
    /// The newest event's sequence number (0: none yet).
    fn last_event_seq(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// The cluster's nodes (none for a single node's journal).
    fn nodes(&self) -> impl Future<Output = Result<Vec<NodeView>, StoreError>> + Send;
    /// Removes this node (after a drain).
    fn leave(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The store a process uses: one of the backends.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever backend this is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call.await,
            Store::Postgres($s) => $call.await,
        }
    };
}

impl Store {
    /// The embedded journal at `path` (created 0600).
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        SqliteStore::open(path).map(Self::Sqlite)
    }

    /// A PostgreSQL store shared by a cluster: connects, and applies the schema's
    /// migrations; a database that cannot be reached or holds a newer schema is an error.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresStore::connect(url).await.map(Self::Postgres)
    }

    /// Cloud starts this process gave up because another node had taken the session over.
    pub fn fence_losses(&self) -> u64 {
        match self {
            Self::Sqlite(_) => 0,
            Self::Postgres(s) => s.fence_losses(),
        }
    }

    /// One session's row, if it is still open.
    pub async fn open_session(&self, id: &str) -> Result<Option<OpenSession>, StoreError> {
        Ok(self.open_sessions().await?.into_iter().find(|s| s.id == id))
    }
}

impl SessionStore for Store {
    async fn admit(&self, id: &str, room: &str, robot: &str) -> Result<Admission, StoreError> {
        each!(self, s => s.admit(id, room, robot))
    }
    async fn admit_placing(
        &self,
        id: &str,
        room: &str,
        robot: &str,
        request: &str,
        cost: u32,
    ) -> Result<Placement, StoreError> {
        each!(self, s => s.admit_placing(id, room, robot, request, cost))
    }
    async fn take_placed(&self) -> Result<Vec<(String, String)>, StoreError> {
        each!(self, s => s.take_placed())
    }
    async fn replace_stranded(
        &self,
        lease: std::time::Duration,
    ) -> Result<Vec<Replaced>, StoreError> {
        each!(self, s => s.replace_stranded(lease))
    }
    async fn placed_here(&self) -> Option<WakeUps> {
        each!(self, s => s.placed_here())
    }
    async fn set_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        each!(self, s => s.set_state(id, state))
    }
    async fn set_call(&self, id: &str, call_id: &str) -> Result<(), StoreError> {
        each!(self, s => s.set_call(id, call_id))
    }
    async fn set_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        each!(self, s => s.set_task(id, task_id))
    }
    async fn finish(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        each!(self, s => s.finish(id, result, note))
    }
    async fn teardown_pending(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        each!(self, s => s.teardown_pending(id, result, note))
    }
    async fn active_for(&self, room: &str, robot: &str) -> Result<Option<String>, StoreError> {
        each!(self, s => s.active_for(room, robot))
    }
    async fn open_sessions(&self) -> Result<Vec<OpenSession>, StoreError> {
        each!(self, s => s.open_sessions())
    }
    async fn call_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        each!(self, s => s.call_of(id))
    }
    async fn result_of(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        each!(self, s => s.result_of(id))
    }
    async fn claim(&self, id: &str, from: Option<&str>) -> Result<bool, StoreError> {
        each!(self, s => s.claim(id, from))
    }
    async fn fence(&self, id: &str) -> Result<bool, StoreError> {
        each!(self, s => s.fence(id))
    }
    async fn register_node(
        &self,
        info: &NodeInfo,
        lease: std::time::Duration,
    ) -> Result<(), StoreError> {
        each!(self, s => s.register_node(info, lease))
    }
    async fn renew_lease(
        &self,
        lease: std::time::Duration,
        now: NodeLoad,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.renew_lease(lease, now))
    }
    async fn forget_nodes_gone_for(
        &self,
        gone_for: std::time::Duration,
    ) -> Result<u64, StoreError> {
        each!(self, s => s.forget_nodes_gone_for(gone_for))
    }
    async fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        each!(self, s => s.nodes())
    }
    async fn append_event(&self, session: &str, kind: &str, data: &str) -> Result<i64, StoreError> {
        each!(self, s => s.append_event(session, kind, data))
    }
    async fn events_after(
        &self,
        session: &str,
        after: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        each!(self, s => s.events_after(session, after))
    }
    async fn all_events_after(&self, after: i64, limit: u32) -> Result<Vec<FeedEvent>, StoreError> {
        each!(self, s => s.all_events_after(after, limit))
    }
    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        each!(self, s => s.last_event_seq())
    }
    async fn whereabouts(&self, id: &str) -> Result<Option<Whereabouts>, StoreError> {
        each!(self, s => s.whereabouts(id))
    }
    async fn session_by_cloud_id(
        &self,
        call_id: Option<&str>,
        task_id: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        each!(self, s => s.session_by_cloud_id(call_id, task_id))
    }
    async fn leave(&self) -> Result<(), StoreError> {
        each!(self, s => s.leave())
    }
}
