//! The starts of this node whose answer was lost: what the cloud may have started without a
//! session hearing of it. A session's task notes one; the webhooks take one when the cloud
//! reports what it started (see `strays`).

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long after a lost start the cloud's report of it is taken for it.
pub(super) const WATCH_FOR: Duration = Duration::from_secs(60);
/// How close to a lost StartStreamIngest the cloud's report of an unknown task must come to
/// be taken for it: the cloud reports a task's start within seconds.
const TASK_WINDOW: Duration = Duration::from_secs(20);

/// What a lost start may have started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StrayKind {
    Call,
    Task,
}

impl StrayKind {
    /// From a report's `unconfirmed_start`.
    pub(super) fn of(unconfirmed: &str) -> Self {
        if unconfirmed == "call" {
            StrayKind::Call
        } else {
            StrayKind::Task
        }
    }
}

struct LostStart {
    kind: StrayKind,
    /// The session's room (`room_key`): a started call names its room.
    room: String,
    at: Instant,
}

/// The starts of this node whose answer was lost, recently.
#[derive(Default)]
pub(super) struct LostStarts(Mutex<Vec<LostStart>>);

impl LostStarts {
    pub(super) fn note(&self, kind: StrayKind, room: String) {
        let mut lost = self.0.lock();
        lost.retain(|l| l.at.elapsed() < WATCH_FOR);
        lost.push(LostStart {
            kind,
            room,
            at: Instant::now(),
        });
    }

    /// Takes the lost start a report explains: a call in its session's `room` (a call whose
    /// room cannot be read explains nothing), or a task started within [`TASK_WINDOW`] of
    /// the lost start (a task's webhook names no room, so time is all that ties the two).
    pub(super) fn take(&self, kind: StrayKind, room: Option<&str>) -> bool {
        let mut lost = self.0.lock();
        lost.retain(|l| l.at.elapsed() < WATCH_FOR);
        let found = lost.iter().position(|l| {
            l.kind == kind
                && match kind {
                    StrayKind::Call => room.is_some_and(|r| r == l.room),
                    StrayKind::Task => l.at.elapsed() < TASK_WINDOW,
                }
        });
        found.map(|i| lost.remove(i)).is_some()
    }
}
