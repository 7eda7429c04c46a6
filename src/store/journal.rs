//! What a session records as it runs: its admission (the one-session-per-room lock), its
//! state, CallId and TaskId as soon as they exist, its owner, and how it ended.

use std::future::Future;

use super::error::StoreError;
use super::owner::process_alive;

/// Whether a session may have its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// An unfinished session already has the room and robot.
    Busy {
        existing: String,
    },
}

/// A session the store says was never finished: a crashed run's, or one whose teardown the
/// cloud has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub id: String,
    pub call_id: Option<String>,
    pub task_id: Option<String>,
    /// The relay to CDN its room monitor started (StartPublishCdnStream), if any.
    pub publish_task_id: Option<String>,
    /// The result it ended with, when only the cloud's confirmation is missing.
    pub pending: Option<(String, String)>,
    /// The process that runs it, while that process lives: see [`process_identity`].
    ///
    /// [`process_identity`]: super::process_identity
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

/// What a session records, on one node's journal or a cluster's shared store. Each write is
/// durable when it returns.
pub trait Journal: Send + Sync {
    /// Records a new session if its room and robot are free, atomically: of any number of
    /// requests for one room at once (on any node), exactly one is admitted.
    fn admit(
        &self,
        id: &str,
        room: &str,
        robot: &str,
    ) -> impl Future<Output = Result<Admission, StoreError>> + Send;
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
    /// The relay to CDN the session's room monitor started: stopped with the rest.
    fn set_publish_task(
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
    /// Where a session is: its owner (and, in a cluster, that node's API while its lease
    /// runs) and how it ended; `None` for a session the store does not know.
    fn whereabouts(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Whereabouts>, StoreError>> + Send;
}
