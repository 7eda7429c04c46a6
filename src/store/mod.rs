//! Where sessions are recorded: every session, its CallId and TaskId as soon as they exist,
//! the one-session-per-room lock, and the result — so nothing a session started in the cloud
//! is ever forgotten. One trait, [`SessionStore`], two backends: embedded SQLite for one node
//! (the default, no server to install) and PostgreSQL for a cluster of nodes sharing it.
//! The rest of callfeed holds a [`Store`], whichever backend it is.

mod postgres;
mod sqlite;

use std::future::Future;

pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, default_path};

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session journal {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("session store {url}: {reason}")]
    Postgres {
        /// The store's URL without its password.
        url: String,
        reason: String,
    },
    #[error(
        "session store {url}: its schema is version {found}, newer than this callfeed knows ({supported}); run a callfeed at least as new as the one that wrote it"
    )]
    NewerSchema {
        url: String,
        found: i64,
        supported: i64,
    },
}

/// A session the store says was never finished: a crashed run's, or one whose teardown the
/// cloud has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub id: String,
    pub call_id: Option<String>,
    pub task_id: Option<String>,
    /// The result it ended with, when only the cloud's confirmation is missing.
    pub pending: Option<(String, String)>,
    /// The process that runs it, while that process lives: see [`process_identity`].
    pub owner: Option<String>,
    /// Whether the store knows its owner gone: a cluster node whose lease expired. `None`
    /// when the store keeps no leases (one node), and the owner's process is looked for.
    pub owner_gone: Option<bool>,
    /// Placed on a node that has not picked it up yet: nothing of it has started.
    pub placed: bool,
}

impl OpenSession {
    /// Whether no living process runs this session any more (a crash, a kill, an exit with
    /// the teardown unconfirmed): then recovery may stop what it started. A session of
    /// another machine's process is never taken for orphaned here: this machine cannot see
    /// that process.
    pub fn orphaned(&self) -> bool {
        match self.owner_gone {
            Some(gone) => gone,
            None => self.owner.as_deref().is_none_or(|o| !process_alive(o)),
        }
    }

    /// The result a session taken over from a gone owner is finished with: its own when
    /// only its teardown was pending, `node_lost` when its node's lease expired, else
    /// `recovered` (a crashed single-node run).
    pub fn recovered_result(&self) -> (String, String) {
        match (&self.pending, self.owner_gone) {
            (Some(pending), _) => pending.clone(),
            (None, Some(true)) => ("node_lost".to_owned(), String::new()),
            (None, _) => ("recovered".to_owned(), String::new()),
        }
    }
}

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

/// Where a session is, for a node that does not run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whereabouts {
    pub owner: Option<String>,
    /// The API of the node that owns it, while that node's lease runs.
    pub live_node_api: Option<String>,
    /// How it ended, when it has.
    pub result: Option<(String, String)>,
    /// Its last recorded state.
    pub state: String,
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

/// This process as the store names owners: its machine, its pid and its start time, so a
/// pid reused by another process is not taken for this one.
pub fn process_identity() -> String {
    static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            let pid = std::process::id();
            format!(
                "{}/{pid}:{}",
                host_name(),
                start_time(pid).unwrap_or_default()
            )
        })
        .clone()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = &stat[stat.rfind(')')? + 2..];
    after_name.split(' ').nth(19).map(str::to_owned)
}

/// Whether the owner names a process alive on this machine, or one on another machine
/// (which only that machine can tell).
fn process_alive(owner: &str) -> bool {
    // Owners written before hosts were recorded are this machine's.
    let (host, process) = owner.split_once('/').unwrap_or(("", owner));
    if !host.is_empty() && host != host_name() {
        return true;
    }
    let Some((pid, started)) = process.split_once(':') else {
        return false;
    };
    pid.parse::<u32>()
        .ok()
        .filter(|pid| !is_zombie(*pid))
        .and_then(start_time)
        .is_some_and(|t| t == started)
}

/// Whether a process has exited and only waits for its parent to collect it: it runs
/// nothing any more (a node killed under a supervisor that has not reaped it yet).
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.get(stat.rfind(')')? + 2..)?.to_owned();
            after_name.chars().next()
        })
        .is_some_and(|state| state == 'Z')
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
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
    _connection: Box<dyn std::any::Any + Send + Sync>,
}

impl WakeUps {
    /// The next wake-up; `None` once the listening connection is gone.
    pub async fn next(&mut self) -> Option<()> {
        self.rx.recv().await
    }
}

/// Whether a session may have its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// An unfinished session already has the room and robot.
    Busy {
        existing: String,
    },
}

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

/// One recorded event of some session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub seq: i64,
    pub session: String,
    pub kind: String,
    pub data: String,
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
