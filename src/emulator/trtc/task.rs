//! The runner behind each StreamIngest task: it pulls the stream into the room observer,
//! reconnects at the documented delays, reports 701/702 and obeys Stop, Kill and Update.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use crate::cloud::webhook::{EVENT_GROUP_STREAM_INGEST, EVENT_INGEST_START, EVENT_INGEST_STOP};
use crate::emulator::state::{State, TaskCommand, TaskPhase, unix_now_ms};
use crate::media::observer::{
    MediaTally, ObserveSpec, Observer, ObserverControl, ObserverEvent, ObserverExit, Pace,
};

fn ingest_webhook(state: &State, event_type: i64, task_id: &str, status: i64) {
    let callback = state.lock().trtc_callback.clone();
    if let Some(callback) = callback {
        let now = unix_now_ms();
        state.outbox.send_trtc(
            &callback,
            json!({"EventGroupId": EVENT_GROUP_STREAM_INGEST, "EventType": event_type,
                "CallbackMsTs": now,
                "EventInfo": {"EventMsTs": now, "TaskId": task_id, "Status": status}}),
        );
    }
}

fn set_phase(state: &State, id: &str, phase: TaskPhase) {
    // An ended task stays as it ended (a Stop through the API is final at once).
    if let Some(t) = state.lock().tasks.get_mut(id)
        && !t.phase.ended()
    {
        t.phase = phase;
    }
}

fn playing_or_paused(paused: bool) -> TaskPhase {
    if paused {
        TaskPhase::Paused
    } else {
        TaskPhase::Playing
    }
}

enum Next {
    Exit(ObserverExit),
    Command(Option<TaskCommand>),
    Event(Option<ObserverEvent>),
    Deadline,
}

/// Why a task stops running.
enum TaskEnd {
    /// It ends in `phase`; `stop_event` sends the 702 (stream stopped) webhook.
    Ended { phase: TaskPhase, stop_event: bool },
    /// The emulator is gone: there is nobody left to tell.
    Orphaned,
}

fn ended(phase: TaskPhase, stop_event: bool) -> TaskEnd {
    TaskEnd::Ended { phase, stop_event }
}

/// Pulls one task's stream: reconnects at the documented delays, reports 701/702, obeys
/// Stop, Kill and Update, and ends at the end of its plays or its MaxDuration.
pub(super) async fn run_task(
    state: Weak<State>,
    id: String,
    url: String,
    plays: Option<u64>,
    max_duration: Option<Duration>,
    commands: mpsc::UnboundedReceiver<TaskCommand>,
) {
    let Some((pace, delays, tally, volume, tap)) = state.upgrade().and_then(|s| {
        let (tally, volume, tap) = {
            let inner = s.lock();
            let task = inner.tasks.get(&id)?;
            (task.tally.clone(), task.volume, task.tap.clone())
        };
        Some((
            s.config.pace,
            s.config.reconnect_delays.clone(),
            tally,
            volume,
            tap,
        ))
    }) else {
        return;
    };
    let mut run = TaskRun {
        state,
        id,
        url,
        plays,
        pace,
        delays,
        tally,
        deadline: max_duration.map(|d| tokio::time::Instant::now() + d),
        commands,
        failures: 0,
        reported_start: false,
        paused: false,
        gain: Arc::new(AtomicU32::new(volume.map_or(100, |v| v as u32))),
        tap,
    };
    let end = run.run().await;
    run.finish(end);
}

/// One task's runner and what it remembers between observers.
struct TaskRun {
    state: Weak<State>,
    id: String,
    /// The current source; an Update with a new URL replaces it.
    url: String,
    plays: Option<u64>,
    pace: Pace,
    delays: Vec<Duration>,
    tally: MediaTally,
    deadline: Option<tokio::time::Instant>,
    commands: mpsc::UnboundedReceiver<TaskCommand>,
    /// Failures in a row since the last first media; indexes `delays`.
    failures: usize,
    /// The 701 success webhook goes out once per task, not per reconnect.
    reported_start: bool,
    /// Carried over to the next observer when the source changes or reconnects.
    paused: bool,
    /// The task's volume in percent, which its observers hear the source at.
    gain: Arc<AtomicU32>,
    /// Where its observers hand what they decode, for a publish of the room.
    tap: crate::media::tap::RoomTap,
}

impl TaskRun {
    /// Observes the source until the task ends, starting a new observer after each
    /// reconnect delay or URL change.
    async fn run(&mut self) -> TaskEnd {
        loop {
            let exit = match self.observe().await {
                Ok(exit) => exit,
                Err(end) => return end,
            };
            match exit {
                ObserverExit::Completed => return ended(TaskPhase::Completed, true),
                // Only an Update with a new URL stops the observer and comes back here.
                ObserverExit::Stopped => continue,
                ObserverExit::Failed { message, .. } => {
                    tracing::info!(task_id = %self.id, error = %message, "emulated ingest source failed");
                    if let Err(end) = self.back_off().await {
                        return end;
                    }
                }
            }
        }
    }

    fn finish(&self, end: TaskEnd) {
        let TaskEnd::Ended { phase, stop_event } = end else {
            return;
        };
        if let Some(s) = self.state.upgrade() {
            set_phase(&s, &self.id, phase);
            if stop_event {
                ingest_webhook(&s, EVENT_INGEST_STOP, &self.id, 0);
            }
            tracing::info!(task_id = %self.id, ?phase, "emulated ingest task ended");
            crate::memory::release();
        }
    }

    /// Runs one observer on the current URL; `Ok` is how it exited by itself or for a new
    /// URL, `Err` ends the task.
    async fn observe(&mut self) -> Result<ObserverExit, TaskEnd> {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut spec = ObserveSpec::new(self.url.clone(), self.pace, self.plays);
        spec.gain = self.gain.clone();
        spec.tap = Some(self.tap.clone());
        let mut observer = match Observer::start(spec, self.tally.clone(), events_tx) {
            Ok(o) => o,
            Err(e) => {
                self.tally.record_error(e.to_string());
                if let Some(s) = self.state.upgrade() {
                    ingest_webhook(&s, EVENT_INGEST_START, &self.id, 1);
                }
                return Err(ended(TaskPhase::Failed, false));
            }
        };
        let control = observer.controller();
        if self.paused {
            control.pause();
        }
        let deadline = self.deadline;
        loop {
            let next = tokio::select! {
                exit = observer.wait() => Next::Exit(exit),
                cmd = self.commands.recv() => Next::Command(cmd),
                event = events.recv(), if !events.is_closed() => Next::Event(event),
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => Next::Deadline,
            };
            let stop_as = match next {
                Next::Exit(exit) => return Ok(exit),
                Next::Event(Some(ObserverEvent::FirstMedia)) => {
                    self.on_first_media();
                    continue;
                }
                Next::Event(_) => continue,
                Next::Command(None) | Next::Command(Some(TaskCommand::Stop)) => {
                    ended(TaskPhase::Stopped, true)
                }
                Next::Command(Some(TaskCommand::Kill)) => ended(TaskPhase::Killed, true),
                Next::Deadline => ended(TaskPhase::TimedOut, true),
                Next::Command(Some(TaskCommand::Update { url, pause, volume })) => {
                    if let Some(p) = pause {
                        self.set_paused(p, &control);
                    }
                    if let Some(v) = volume {
                        self.gain.store(v as u32, Ordering::Relaxed);
                    }
                    let Some(url) = url else {
                        continue;
                    };
                    self.url = url;
                    observer.stop().await;
                    return Ok(ObserverExit::Stopped);
                }
            };
            observer.stop().await;
            return Err(stop_as);
        }
    }

    fn on_first_media(&mut self) {
        self.failures = 0;
        if let Some(s) = self.state.upgrade() {
            set_phase(&s, &self.id, playing_or_paused(self.paused));
            if !self.reported_start {
                self.reported_start = true;
                ingest_webhook(&s, EVENT_INGEST_START, &self.id, 0);
            }
        }
    }

    fn set_paused(&mut self, paused: bool, control: &ObserverControl) {
        self.paused = paused;
        if paused {
            control.pause();
        } else {
            control.resume();
        }
        if let Some(s) = self.state.upgrade() {
            set_phase(&s, &self.id, playing_or_paused(paused));
        }
    }

    /// After a source failure: gives up once every reconnect delay is used, otherwise
    /// reports the reconnect and waits out the next delay (a Kill, Stop or new URL still
    /// counts meanwhile).
    async fn back_off(&mut self) -> Result<(), TaskEnd> {
        let Some(s) = self.state.upgrade() else {
            return Err(TaskEnd::Orphaned);
        };
        if self.failures >= self.delays.len() {
            ingest_webhook(&s, EVENT_INGEST_START, &self.id, 1);
            return Err(ended(TaskPhase::Failed, false));
        }
        let delay = self.delays[self.failures];
        self.failures += 1;
        ingest_webhook(&s, EVENT_INGEST_START, &self.id, 2);
        set_phase(&s, &self.id, TaskPhase::Reconnecting);
        if let Some(t) = s.lock().tasks.get_mut(&self.id) {
            t.reconnects += 1;
        }
        drop(s);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            cmd = self.commands.recv() => match cmd {
                Some(TaskCommand::Kill) => return Err(ended(TaskPhase::Killed, true)),
                Some(TaskCommand::Update { url, volume, .. }) => {
                    if let Some(u) = url {
                        self.url = u;
                    }
                    if let Some(v) = volume {
                        self.gain.store(v as u32, Ordering::Relaxed);
                    }
                }
                _ => return Err(ended(TaskPhase::Stopped, true)),
            },
        }
        Ok(())
    }
}
