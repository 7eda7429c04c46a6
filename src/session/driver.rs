//! One task per session: prepares the media, rings, binds the stream into the room, watches
//! every stage, and tears everything down together. It owns the session's state machine and
//! feeds it what the cloud and the media engine report.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::journal::{Admission, Journal};
use super::state::{Action, Event, Outcome, Phase, Session, Stage};
use super::teardown::CloudLeftovers;
use super::{CallStatus, CloudOps, PollBudget, SessionSpec, room_key};
use crate::cloud::http::CloudError;
use crate::cloud::ingest::StartStreamIngest;
use crate::media::contract::Contract;
use crate::media::input::InputSpec;
use crate::media::live::{LiveSettings, LiveStream, Loops, MediaEvent, StreamStats};
use crate::media::topology::Topologies;
use crate::publish::Publisher;

/// How the driver works, beyond the session's own spec.
#[derive(Clone)]
pub struct DriverSettings {
    pub poll_call: Duration,
    pub poll_task: Duration,
    pub teardown_timeout: Duration,
    /// Where the session's stream is published for the cloud to pull.
    pub publisher: Arc<dyn Publisher>,
    pub cache_dir: PathBuf,
    /// How long an unconfirmed teardown is retried before the session returns with it
    /// pending (the journal keeps it for the next run); `None` retries until the cloud
    /// confirms.
    pub teardown_retry_for: Option<Duration>,
    /// The cloud's request rates, shared by every session of this process.
    pub poll_budget: Arc<PollBudget>,
}

impl DriverSettings {
    /// The defaults, publishing through `publisher`.
    pub fn new(publisher: Arc<dyn Publisher>) -> Self {
        Self {
            poll_call: Duration::from_millis(500),
            poll_task: Duration::from_secs(1),
            teardown_timeout: Duration::from_secs(5),
            publisher,
            cache_dir: crate::media::announce::default_cache_dir(),
            teardown_retry_for: Some(Duration::from_secs(30)),
            poll_budget: Arc::new(PollBudget::default()),
        }
    }
}

impl std::fmt::Debug for DriverSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverSettings")
            .field("poll_call", &self.poll_call)
            .field("poll_task", &self.poll_task)
            .field("teardown_timeout", &self.teardown_timeout)
            .field("publisher", &self.publisher.public_base())
            .field("cache_dir", &self.cache_dir)
            .field("teardown_retry_for", &self.teardown_retry_for)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the session started, per stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub prepared_ms: Option<u64>,
    pub call_started_ms: Option<u64>,
    pub answered_ms: Option<u64>,
    pub ingest_started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
}

/// The session's final report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub session_id: String,
    pub call_id: Option<String>,
    pub task_id: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub mode: &'static str,
    pub timings: Timings,
    pub media: Option<StreamStats>,
    pub task_restarts: u32,
    /// The cloud's error code, when the cloud refused something.
    pub error_code: Option<String>,
    pub teardown: Teardown,
}

/// Whether the cloud confirmed the session's task and call gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Teardown {
    Confirmed,
    /// Not yet: the journal keeps the session open and a later run retries.
    Pending {
        reason: String,
    },
}

/// What a status line shows while the session runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub phase: String,
    /// The call and ingest task, once they exist: webhooks find their session by them.
    pub call_id: Option<String>,
    pub task_id: Option<String>,
    pub elapsed_ms: u64,
    pub iteration: u32,
    pub position_ms: u64,
    pub task: Option<&'static str>,
}

enum Media {
    /// A file the cloud plays itself; `expected` is how long all plays take.
    Announcement {
        expected: Option<Duration>,
    },
    Live(LiveStream),
}

struct Prepared {
    media: Media,
    url: String,
    repeat_num: i32,
    /// The plan's name: announcement, passthrough or live.
    mode: &'static str,
}

async fn prepare(
    spec: &SessionSpec,
    settings: &DriverSettings,
    topologies: &Topologies,
) -> Result<Prepared, String> {
    use crate::media::plan::{Mode, PlanOptions, plan};
    let input = spec.input.clone();
    let contract = Contract::new(spec.profile);
    let report = match &input {
        InputSpec::File(_) | InputSpec::Playlist(_) | InputSpec::Url(_) => {
            let probe_input = input.clone();
            let guard = spec.source_guard.clone();
            Some(
                tokio::task::spawn_blocking(move || {
                    crate::media::probe::probe_guarded(&probe_input, contract, guard.as_ref())
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
            )
        }
        _ => None,
    };
    let publisher = &settings.publisher;
    let plan = plan(
        &input,
        report.as_ref(),
        PlanOptions {
            live: spec.live,
            start: None,
            file_output: true,
        },
    );
    tracing::info!(mode = plan.name(), reason = %plan.reason, "media plan");
    let mode = plan.name();
    let (media, url, repeat_num) = match plan.mode {
        Mode::Announcement { path, conforms } => {
            let report = report.as_ref().expect("an announcement was probed");
            let file = if conforms {
                path
            } else {
                crate::media::announce::prepare(
                    &path,
                    report,
                    contract,
                    topologies,
                    &settings.cache_dir,
                    &|_| {},
                )
                .await
                .map_err(|e| e.to_string())?
            };
            let expected = report
                .duration_ms
                .zip(spec.repeat)
                .map(|(ms, n)| Duration::from_millis(ms * u64::from(n)));
            let repeat_num = spec.repeat.map_or(-1, |n| n as i32);
            let url = publisher.publish_file(file, None);
            (Media::Announcement { expected }, url, repeat_num)
        }
        mode => {
            let mut live = LiveSettings::new(contract);
            live.loops = match spec.repeat {
                Some(n) => Loops::Times(n.max(1)),
                None => Loops::Forever,
            };
            live.still_image = report
                .as_ref()
                .and_then(|r| r.video.as_ref())
                .is_some_and(|v| v.still_image);
            live.source_guard = spec.source_guard.clone();
            let stream = match mode {
                Mode::Passthrough { path, container } => {
                    LiveStream::start_passthrough(path, &container, live)
                }
                _ => LiveStream::start(input.clone(), live, topologies),
            }
            .map_err(|e| e.to_string())?;
            let url = publisher.publish_live(stream.hub(), None);
            (Media::Live(stream), url, -1)
        }
    };
    Ok(Prepared {
        media,
        url,
        repeat_num,
        mode,
    })
}

/// How the outside follows and steers a running session.
pub struct Controls {
    /// Where the session publishes its status line.
    pub status: watch::Sender<Status>,
    /// Set to `true` to ask for a clean early end (Ctrl-C, DELETE).
    pub stop: watch::Receiver<bool>,
    /// Notified when a webhook says something changed: poll the cloud now, not at the tick.
    pub nudge: Arc<tokio::sync::Notify>,
}

/// Runs one session to its end. A panic inside it is caught: what the journal says the
/// session started is still stopped, and the report says it failed.
pub async fn run<C: CloudOps>(
    session_id: String,
    spec: SessionSpec,
    cloud: &C,
    journal: Option<Arc<Journal>>,
    settings: DriverSettings,
    topologies: Topologies,
    controls: Controls,
) -> Report {
    use futures::FutureExt;
    let status = controls.status.clone();
    // What the session started, shared so a panic still knows what to stop.
    let leftovers = Arc::new(std::sync::Mutex::new(CloudLeftovers::default()));
    let run = SessionRun::new(
        session_id.clone(),
        spec,
        cloud,
        journal.clone(),
        settings.clone(),
        controls,
        leftovers.clone(),
    );
    match std::panic::AssertUnwindSafe(run.run(topologies))
        .catch_unwind()
        .await
    {
        Ok(report) => report,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            tracing::error!(session = %session_id, %reason, "session task panicked; tearing down");
            let known = leftovers.lock().map(|l| l.clone()).unwrap_or_default();
            after_panic(
                session_id, known, cloud, journal, &settings, &status, reason,
            )
            .await
        }
    }
}

/// The session's task died: stop what the journal says it started.
async fn after_panic<C: CloudOps>(
    session_id: String,
    known: CloudLeftovers,
    cloud: &C,
    journal: Option<Arc<Journal>>,
    settings: &DriverSettings,
    status: &watch::Sender<Status>,
    reason: String,
) -> Report {
    let open = journal
        .as_ref()
        .and_then(|j| j.open_session(&session_id).ok().flatten());
    // What the run knew, else what the journal recorded.
    let mut leftovers = CloudLeftovers {
        task_id: known
            .task_id
            .or_else(|| open.as_ref().and_then(|o| o.task_id.clone())),
        call_id: known
            .call_id
            .or_else(|| open.as_ref().and_then(|o| o.call_id.clone())),
    };
    let (call_id, task_id) = (leftovers.call_id.clone(), leftovers.task_id.clone());
    let outcome = Outcome::Failed {
        stage: Stage::Teardown,
        reason: format!("internal error: {reason}"),
    };
    let teardown = confirm_teardown(
        &mut leftovers,
        cloud,
        settings,
        status,
        journal
            .as_deref()
            .map(|j| (j, session_id.as_str(), &outcome)),
    )
    .await;
    Report {
        session_id,
        call_id,
        task_id,
        outcome,
        mode: "none",
        timings: Timings::default(),
        media: None,
        task_restarts: 0,
        error_code: None,
        teardown,
    }
}

/// The journal's note for an outcome.
fn outcome_note(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed { stage, reason } => format!("{stage:?}: {reason}"),
        _ => String::new(),
    }
}

/// Stops `leftovers` until the cloud confirms, within the settings' retry time, and records
/// the result: finished, or `teardown_pending` for a later run.
async fn confirm_teardown<C: CloudOps>(
    leftovers: &mut CloudLeftovers,
    cloud: &C,
    settings: &DriverSettings,
    status: &watch::Sender<Status>,
    journal: Option<(&Journal, &str, &Outcome)>,
) -> Teardown {
    let note = journal.map(|(_, _, o)| outcome_note(o)).unwrap_or_default();
    let result = leftovers
        .stop_until_confirmed(
            cloud,
            settings.teardown_timeout,
            settings.teardown_retry_for,
            |e| {
                tracing::warn!(error = %e, "the cloud has not confirmed the teardown; retrying");
                status.send_modify(|s| s.phase = "teardown_pending".into());
                if let Some((j, id, outcome)) = journal
                    && let Err(e) = j.teardown_pending(id, outcome.name(), &note)
                {
                    tracing::error!(error = %e, "journal write failed");
                }
            },
        )
        .await;
    match result {
        Ok(()) => {
            if let Some((j, id, outcome)) = journal
                && let Err(e) = j.finish(id, outcome.name(), &note)
            {
                tracing::error!(error = %e, "journal write failed");
            }
            Teardown::Confirmed
        }
        Err(reason) => {
            tracing::error!(%reason, "teardown not confirmed; the journal keeps the session for the next run");
            Teardown::Pending { reason }
        }
    }
}

/// A cloud request in flight.
type InFlight<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CloudError>> + Send + 'a>>;

/// The session's polls of the cloud: the one in flight of each kind, and when the next is due.
struct Polls<'a> {
    call: Option<InFlight<'a, CallStatus>>,
    task: Option<InFlight<'a, bool>>,
    next_call: tokio::time::Instant,
    next_task: tokio::time::Instant,
}

/// One session's state while it runs: today's locals of the loop, one method per phase.
struct SessionRun<'a, C> {
    id: String,
    spec: SessionSpec,
    cloud: &'a C,
    journal: Option<Arc<Journal>>,
    settings: DriverSettings,
    controls: Controls,
    machine: Session,
    started: Instant,
    timings: Timings,
    /// Shared with `run`, which stops it if this task panics.
    leftovers: Arc<std::sync::Mutex<CloudLeftovers>>,
    call_id: Option<String>,
    task_id: Option<String>,
    ever_answered: bool,
    ringing_since: Option<Instant>,
    ingest_started: Option<Instant>,
    task_restarts: u32,
    error_code: Option<String>,
    /// `max_duration` caps the media time, counted from the first StartStreamIngest.
    deadline: Option<tokio::time::Instant>,
}

impl<'a, C: CloudOps> SessionRun<'a, C> {
    fn new(
        id: String,
        spec: SessionSpec,
        cloud: &'a C,
        journal: Option<Arc<Journal>>,
        settings: DriverSettings,
        controls: Controls,
        leftovers: Arc<std::sync::Mutex<CloudLeftovers>>,
    ) -> Self {
        Self {
            machine: Session::new(spec.ingest_at, spec.ring_timeout),
            id,
            spec,
            cloud,
            journal,
            settings,
            controls,
            started: Instant::now(),
            timings: Timings::default(),
            leftovers,
            call_id: None,
            task_id: None,
            ever_answered: false,
            ringing_since: None,
            ingest_started: None,
            task_restarts: 0,
            error_code: None,
            deadline: None,
        }
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn journal_note(&self, f: impl FnOnce(&Journal) -> Result<(), super::journal::JournalError>) {
        if let Some(j) = &self.journal
            && let Err(e) = f(j)
        {
            tracing::error!(session = %self.id, error = %e, "journal write failed");
        }
    }

    fn remember(&self, change: impl FnOnce(&mut CloudLeftovers)) {
        if let Ok(mut l) = self.leftovers.lock() {
            change(&mut l);
        }
    }

    fn publish_phase(&self) {
        let (phase, elapsed) = (self.machine.phase.name(), self.ms());
        self.controls.status.send_modify(|s| {
            s.phase = phase.to_owned();
            s.elapsed_ms = elapsed;
        });
    }

    /// Takes the room in the journal, unless an API already admitted this session.
    fn admit(&self) -> Result<(), String> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        match j.admit(
            &self.id,
            &room_key(&self.spec.room),
            self.spec.robot.as_str(),
        ) {
            Ok(Admission::Admitted) => Ok(()),
            Ok(Admission::Busy { existing }) if existing == self.id => Ok(()),
            Ok(Admission::Busy { existing }) => Err(format!(
                "{} already has a session for {} ({existing})",
                self.spec.room, self.spec.robot
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn run(mut self, topologies: Topologies) -> Report {
        let prepared = match self.admit() {
            Err(reason) => Some(Err(reason)),
            Ok(()) => tokio::select! {
                p = prepare(&self.spec, &self.settings, &topologies) => Some(p),
                _ = self.controls.stop.changed() => None,
            },
        };
        let mut prepared = match prepared {
            Some(Ok(p)) => p,
            Some(Err(reason)) => {
                self.machine.on(Event::Failed {
                    stage: Stage::Prepare,
                    reason,
                });
                return self.into_report("none", None).await;
            }
            None => {
                self.machine.on(Event::StopRequested);
                return self.into_report("none", None).await;
            }
        };
        self.timings.prepared_ms = Some(self.ms());
        let actions = self.machine.on(Event::Prepared);
        let torn_down = self.drive(&mut prepared, actions).await;
        // The URL dies with the session, on a shared server too.
        self.settings.publisher.withdraw(&prepared.url);
        let mode = prepared.mode;
        let stats = match prepared.media {
            Media::Live(stream) => {
                let stats = stream.stats();
                let _ = tokio::time::timeout(self.settings.teardown_timeout, stream.stop()).await;
                Some(stats)
            }
            Media::Announcement { .. } => None,
        };
        debug_assert!(torn_down);
        self.into_report(mode, stats).await
    }

    /// Carries out the machine's actions and feeds it what happens, until it asks for the
    /// teardown.
    async fn drive(&mut self, prepared: &mut Prepared, mut actions: Vec<Action>) -> bool {
        let mut media_events = match &prepared.media {
            Media::Live(s) => Some(s.events()),
            Media::Announcement { .. } => None,
        };
        let _seat = self.settings.poll_budget.join();
        let now = tokio::time::Instant::now();
        let mut polls = Polls {
            call: None,
            task: None,
            next_call: now,
            next_task: now,
        };
        loop {
            while let Some(action) = actions.pop() {
                self.publish_phase();
                match action {
                    Action::StartCall => actions.extend(self.start_call().await),
                    Action::StartIngest => {
                        actions.extend(self.start_ingest(&prepared.url, prepared.repeat_num).await)
                    }
                    Action::RestartIngest { attempt } => {
                        self.task_restarts = attempt;
                        // Jittered backoff: 0.5, 1, 2 s... so a flapping cloud is not hammered.
                        let base = 500u64 << attempt.min(4).saturating_sub(1);
                        let jitter = rand::random::<u64>() % (base / 2 + 1);
                        let pause = tokio::time::sleep(Duration::from_millis(base + jitter));
                        tokio::select! {
                            _ = pause => actions.extend(self.start_ingest(&prepared.url, prepared.repeat_num).await),
                            _ = self.controls.stop.changed() => actions.extend(self.machine.on(Event::StopRequested)),
                        }
                    }
                    Action::TearDown => return true,
                }
            }
            self.publish_phase();
            if let Media::Live(stream) = &prepared.media {
                let s = stream.stats();
                self.controls.status.send_modify(|st| {
                    st.iteration = s.iteration;
                    st.position_ms = s.position_ms;
                });
            }
            let event = self
                .next_event(prepared, &mut media_events, &mut polls)
                .await;
            if let Some(event) = event {
                tracing::info!(session = %self.id, ?event, "session event");
                actions.extend(self.machine.on(event));
            }
        }
    }

    /// Waits for the next thing that happens. A poll in flight lives across waits (a media
    /// event or a nudge does not cancel it, so a slow cloud still gets answered); a stop
    /// request drops it at once instead of waiting for its answer.
    async fn next_event(
        &mut self,
        prepared: &Prepared,
        media_events: &mut Option<tokio::sync::broadcast::Receiver<MediaEvent>>,
        polls: &mut Polls<'a>,
    ) -> Option<Event> {
        let cloud = self.cloud;
        let budget = self.settings.poll_budget.clone();
        let robot = self.spec.robot.as_str().to_owned();
        let deadline = self.deadline;
        let call_due = self.call_id.is_some() && polls.call.is_none();
        let task_due = self.task_id.is_some() && polls.task.is_none();
        let (call_at, task_at) = (polls.next_call, polls.next_task);
        tokio::select! {
            _ = self.controls.stop.changed() => Some(Event::StopRequested),
            _ = self.controls.nudge.notified() => {
                let now = tokio::time::Instant::now();
                polls.next_call = now;
                polls.next_task = now;
                None
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => Some(if matches!(self.machine.phase, Phase::Ingesting) { Event::MediaFinished } else { Event::StopRequested }),
            _ = tokio::time::sleep_until(call_at), if call_due => {
                let id = self.call_id.clone().unwrap_or_default();
                polls.call = Some(Box::pin(async move { cloud.call_status(&id, &robot).await }));
                polls.next_call = tokio::time::Instant::now()
                    + budget.interval(self.settings.poll_call, crate::cloud::http::CALL_COMMAND_PER_SECOND);
                None
            }
            _ = tokio::time::sleep_until(task_at), if task_due => {
                let id = self.task_id.clone().unwrap_or_default();
                polls.task = Some(Box::pin(async move { cloud.task_alive(&id).await }));
                polls.next_task = tokio::time::Instant::now()
                    + budget.interval(self.settings.poll_task, crate::cloud::http::INGEST_ACTION_PER_SECOND);
                None
            }
            answer = async {
                match polls.call.as_mut() {
                    Some(poll) => poll.await,
                    None => std::future::pending().await,
                }
            } => {
                polls.call = None;
                self.on_call_status(answer)
            }
            answer = async {
                match polls.task.as_mut() {
                    Some(poll) => poll.await,
                    None => std::future::pending().await,
                }
            } => {
                polls.task = None;
                self.on_task_status(answer, &prepared.media)
            }
            event = async {
                match media_events.as_mut() {
                    Some(rx) => rx.recv().await.ok(),
                    None => std::future::pending().await,
                }
            } => match event {
                Some(MediaEvent::Ended { .. }) => Some(Event::MediaFinished),
                Some(MediaEvent::Failed { reason }) => Some(Event::Failed { stage: Stage::Media, reason }),
                _ => None,
            },
        }
    }

    fn on_call_status(
        &mut self,
        answer: Result<CallStatus, crate::cloud::http::CloudError>,
    ) -> Option<Event> {
        match answer {
            Ok(CallStatus::Live { answered: true }) if !self.ever_answered => {
                self.ever_answered = true;
                self.timings.answered_ms = Some(self.ms());
                Some(Event::Answered)
            }
            Ok(CallStatus::Gone) => Some(Event::CallGone {
                ever_answered: self.ever_answered,
                rang_for: self.ringing_since.map_or(Duration::ZERO, |t| t.elapsed()),
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "get_call_info failed");
                None
            }
        }
    }

    fn on_task_status(
        &mut self,
        answer: Result<bool, crate::cloud::http::CloudError>,
        media: &Media,
    ) -> Option<Event> {
        match answer {
            Ok(false) => {
                self.controls
                    .status
                    .send_modify(|s| s.task = Some("NotExist"));
                let done = match media {
                    // The cloud played the announcement through: that is the end.
                    Media::Announcement { expected: Some(e) } => self
                        .ingest_started
                        .is_some_and(|t| t.elapsed().as_secs_f64() >= e.as_secs_f64() * 0.9),
                    _ => false,
                };
                if done {
                    Some(Event::MediaFinished)
                } else {
                    // The cloud reported the task gone: nothing of it is left to stop.
                    self.remember(|l| l.task_id = None);
                    Some(Event::TaskGone)
                }
            }
            Ok(true) => {
                self.controls
                    .status
                    .send_modify(|s| s.task = Some("InProgress"));
                None
            }
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "DescribeStreamIngest failed");
                None
            }
        }
    }

    async fn start_call(&mut self) -> Vec<Action> {
        match self.cloud.start_call(&self.spec.start_call_request()).await {
            Ok(id) => {
                tracing::info!(session = %self.id, call_id = %id, "call started");
                self.journal_note(|j| j.set_call(&self.id, &id));
                self.controls
                    .status
                    .send_modify(|s| s.call_id = Some(id.clone()));
                self.remember(|l| l.call_id = Some(id.clone()));
                self.call_id = Some(id);
                self.timings.call_started_ms = Some(self.ms());
                self.ringing_since = Some(Instant::now());
                self.machine.on(Event::CallStarted)
            }
            Err(e) => {
                self.error_code = e.code();
                self.machine.on(Event::Failed {
                    stage: Stage::Ring,
                    reason: e.to_string(),
                })
            }
        }
    }

    async fn start_ingest(&mut self, url: &str, repeat_num: i32) -> Vec<Action> {
        let mut req = StartStreamIngest::new(
            self.spec.room.clone(),
            self.spec.ingest_user.clone(),
            url.to_owned(),
        );
        req.repeat_num = Some(repeat_num);
        match self.cloud.start_ingest(&req).await {
            Ok(id) => {
                tracing::info!(session = %self.id, task_id = %id, "ingest started");
                self.journal_note(|j| j.set_task(&self.id, &id));
                self.controls
                    .status
                    .send_modify(|s| s.task_id = Some(id.clone()));
                self.remember(|l| l.task_id = Some(id.clone()));
                self.task_id = Some(id);
                self.ingest_started = Some(Instant::now());
                self.timings.ingest_started_ms.get_or_insert(self.ms());
                if self.deadline.is_none() {
                    self.deadline = self
                        .spec
                        .max_duration
                        .and_then(|d| tokio::time::Instant::now().checked_add(d));
                }
                self.machine.on(Event::IngestStarted)
            }
            Err(e) => {
                self.error_code = e.code();
                self.machine.on(Event::Failed {
                    stage: Stage::Ingest,
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Stops what the session started until the cloud confirms it, and reports.
    async fn into_report(mut self, mode: &'static str, media: Option<StreamStats>) -> Report {
        let outcome = match &self.machine.phase {
            Phase::Ended { outcome } | Phase::Ending { outcome } => outcome.clone(),
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
            journal.as_deref().map(|j| (j, self.id.as_str(), &outcome)),
        )
        .await;
        self.machine.on(Event::TornDown);
        self.timings.ended_ms = Some(self.ms());
        Report {
            session_id: self.id,
            call_id: self.call_id,
            task_id: self.task_id,
            outcome,
            mode,
            timings: self.timings,
            media,
            task_restarts: self.task_restarts,
            error_code: self.error_code,
            teardown,
        }
    }
}
