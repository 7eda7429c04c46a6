//! What a session records as it runs: its admission (the one-session-per-room lock), its
//! state, CallId and TaskId as soon as they exist, its owner, and how it ended.

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
