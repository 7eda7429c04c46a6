//! A session's end: what it started stopped until the cloud confirms it, and its report.

use super::SessionRun;
use crate::session::CloudOps;
use crate::session::report::{MediaFigures, Report};
use crate::session::state::{Event, Outcome, Phase, Stage};
use crate::session::teardown::confirm_teardown;

impl<C: CloudOps> SessionRun<'_, C> {
    /// Stops what the session started until the cloud confirms it, and reports.
    pub(super) async fn into_report(
        mut self,
        mode: &'static str,
        media: Option<MediaFigures>,
    ) -> Report {
        let mut room = None;
        let monitor = self.stop_monitor().await;
        let outcome = match &self.machine.phase {
            Phase::Ended { outcome } | Phase::Ending { outcome } => {
                let witness = self.settings.room_witness.as_ref();
                room = self
                    .call_id
                    .as_deref()
                    .zip(witness)
                    .and_then(|(id, w)| w(id));
                let live = media.as_ref().and_then(MediaFigures::live);
                let outcome =
                    crate::session::state::confirmed(outcome.clone(), live, room.as_ref());
                match monitor
                    .as_ref()
                    .and_then(|(_, shortfall)| shortfall.clone())
                {
                    // The room monitor's verdict: completed only if the room carried it.
                    Some(reason) if outcome == Outcome::Completed => Outcome::Failed {
                        stage: Stage::Room,
                        reason,
                    },
                    _ => outcome,
                }
            }
            _ => Outcome::Failed {
                stage: Stage::Teardown,
                reason: "ended in an unexpected state".into(),
            },
        };
        let journal = self.journal.clone();
        let mut leftovers = self.leftovers.lock().map(|l| l.clone()).unwrap_or_default();
        let teardown = confirm_teardown(
            &mut leftovers,
            self.cloud,
            &self.settings,
            &self.controls.status,
            journal.as_ref().map(|j| (j, self.id.as_str(), &outcome)),
        )
        .await;
        self.machine.on(Event::TornDown);
        self.timings.ended_ms = Some(self.ms());
        // What was on air when the session ended was cut; what waited, dropped.
        let queue = super::control::ended_queue(&self.controls.status.borrow().queue);
        Report {
            session_id: self.id,
            call_id: self.call_id,
            task_id: self.task_id,
            outcome,
            mode,
            mode_reason: self.mode_reason,
            timings: self.timings,
            media,
            task_restarts: self.task_restarts,
            error_code: self.error_code,
            unconfirmed_start: self.unconfirmed_start,
            teardown,
            room,
            relay: self.relay,
            queue,
            monitor: monitor.map(|(view, _)| view),
        }
    }
}
