//! Where sessions are recorded: every session, its CallId and TaskId as soon as they exist,
//! the one-session-per-room lock, and the result — so nothing a session started in the cloud
//! is ever forgotten. By role: the [`Journal`] (what a session records), the [`EventLog`]
//! (its numbered events) and the [`Cluster`] (nodes, leases, placement). Two backends:
//! embedded SQLite for one node (the default, no server to install), a journal and an event
//! log; PostgreSQL for a cluster of nodes sharing it, all three. The rest of callfeed holds
//! a [`Store`], whichever backend it is, and asks [`Store::cluster`] for the cluster role.

mod cluster;
mod error;
mod events;
mod journal;
mod owner;
mod postgres;
mod sqlite;
mod whole;

pub use cluster::{
    Cluster, NodeInfo, NodeLoad, NodeView, Placement, Replaced, STRANDED_NOTE, WakeUps,
};
pub use error::StoreError;
pub use events::{EventLog, FeedEvent};
pub use journal::{Admission, Journal, OpenSession, Whereabouts};
pub use owner::process_identity;
pub use postgres::PostgresStore;
pub use sqlite::{SqliteStore, default_path};
pub use whole::SessionStore;

/// The store a process uses: one of the backends.
// One per process, behind an Arc: the larger variant's size is paid once, not per use.
#[allow(clippy::large_enum_variant)]
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

    /// The cluster role: a store shared by nodes has one, one node's journal none.
    pub fn cluster(&self) -> Option<&PostgresStore> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(s) => Some(s),
        }
    }

    /// Cloud starts this process gave up because another node had taken the session over.
    pub fn fence_losses(&self) -> u64 {
        self.cluster().map_or(0, PostgresStore::fence_losses)
    }

    /// One session's row, if it is still open.
    pub async fn open_session(&self, id: &str) -> Result<Option<OpenSession>, StoreError> {
        Ok(Journal::open_sessions(self)
            .await?
            .into_iter()
            .find(|s| s.id == id))
    }
}

impl Journal for Store {
    async fn admit(&self, id: &str, room: &str, robot: &str) -> Result<Admission, StoreError> {
        each!(self, s => s.admit(id, room, robot))
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
    async fn set_publish_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        each!(self, s => s.set_publish_task(id, task_id))
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
    async fn fence(&self, id: &str) -> Result<bool, StoreError> {
        each!(self, s => s.fence(id))
    }
    async fn claim(&self, id: &str, from: Option<&str>) -> Result<bool, StoreError> {
        each!(self, s => s.claim(id, from))
    }
    async fn whereabouts(&self, id: &str) -> Result<Option<Whereabouts>, StoreError> {
        each!(self, s => s.whereabouts(id))
    }
}

impl EventLog for Store {
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
}

impl SessionStore for Store {
    fn cluster_role(&self) -> Option<&impl Cluster> {
        self.cluster()
    }
}
