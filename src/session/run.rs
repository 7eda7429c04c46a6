//! One session while it runs: the state machine fed with what the cloud and the media
//! report, the machine's actions carried out, the polls, and the report at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::media::{Media, Prepared, prepare};
use super::report::{AnnouncementFigures, Controls, MediaFigures, Report, Timings};
use super::settings::DriverSettings;
use super::state::{Action, Event, Phase, Session, Stage};
use super::teardown::CloudLeftovers;
use super::{CallStatus, CloudOps, SessionSpec, room_key};
use crate::cloud::http::CloudError;
use crate::cloud::ingest::StartStreamIngest;
use crate::media::live::MediaEvent;
use crate::media::topology::Topologies;
use crate::publish::relay::RelayLink;
use crate::store::{Admission, Journal, Store};

mod control;
mod ending;
mod monitor;

/// What woke the session's loop.
enum Woke {
    /// Something for the state machine, or nothing to tell it.
    Event(Option<Event>),
    /// A change asked of the running session.
    Change(Box<super::change::ChangeRequest>),
}

/// How often the room's ear is asked which queued items it heard.
const HEARING_EVERY: Duration = Duration::from_millis(100);
/// How often the room monitor's figures are read (and shown).
const ROOM_LOOK_EVERY: Duration = Duration::from_secs(1);

/// How soon an ingest task the cloud ended is started again, at first and at most.
const RESTART_MIN: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(8);

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

/// The next change asked of the session; never, when it takes none.
async fn next_change(
    changes: Option<&mut tokio::sync::mpsc::Receiver<super::change::ChangeRequest>>,
) -> Option<super::change::ChangeRequest> {
    match changes {
        Some(changes) => changes.recv().await,
        None => std::future::pending().await,
    }
}

/// What the cloud started for a session.
#[derive(Clone, Copy)]
enum Started {
    Call,
    Task,
}

/// One session's state while it runs: today's locals of the loop, one method per phase.
pub(super) struct SessionRun<'a, C> {
    id: String,
    spec: SessionSpec,
    cloud: &'a C,
    journal: Option<Arc<Store>>,
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
    /// Why the media took its path, once prepared.
    mode_reason: Option<String>,
    error_code: Option<String>,
    /// A start the cloud may have carried out without the session hearing of it.
    unconfirmed_start: Option<&'static str>,
    /// `max_duration` caps the media time, counted from the first StartStreamIngest.
    deadline: Option<tokio::time::Instant>,
    /// The relay push's figures, once it stopped.
    relay: Option<crate::publish::relay::RelayFigures>,
    /// The room monitor, once the stream is bound (when the session asked for one).
    room_watch: Option<super::room_watch::RoomWatch>,
    next_room_look: tokio::time::Instant,
}

impl<'a, C: CloudOps> SessionRun<'a, C> {
    pub(super) fn new(
        id: String,
        spec: SessionSpec,
        cloud: &'a C,
        journal: Option<Arc<Store>>,
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
            mode_reason: None,
            error_code: None,
            unconfirmed_start: None,
            deadline: None,
            relay: None,
            room_watch: None,
            next_room_look: tokio::time::Instant::now(),
        }
    }

    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// What a write to the store came to: a failed write is logged, not fatal.
    fn journal_note(&self, written: Result<(), crate::store::StoreError>) {
        if let Err(e) = written {
            tracing::error!(session = %self.id, error = %e, "journal write failed");
        }
    }

    fn remember(&self, change: impl FnOnce(&mut CloudLeftovers)) {
        if let Ok(mut l) = self.leftovers.lock() {
            change(&mut l);
        }
    }

    fn publish_phase(&self) {
        let (phase, elapsed) = (super::report::Phase::from(&self.machine.phase), self.ms());
        if self.controls.status.borrow().phase != phase {
            tracing::info!(session = %self.id, phase = phase.name(), elapsed_ms = elapsed, "session phase");
        }
        self.controls.status.send_modify(|s| {
            s.phase = phase;
            s.elapsed_ms = elapsed;
            s.timings = self.timings.clone();
        });
    }

    /// Takes the room in the journal, unless an API already admitted this session.
    async fn admit(&self) -> Result<(), String> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        let room = room_key(&self.spec.room);
        match j.admit(&self.id, &room, self.spec.robot.as_str()).await {
            Ok(Admission::Admitted) => Ok(()),
            Ok(Admission::Busy { existing }) if existing == self.id => Ok(()),
            Ok(Admission::Busy { existing }) => Err(format!(
                "{} already has a session for {} ({existing})",
                self.spec.room, self.spec.robot
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) async fn run(mut self, topologies: Topologies) -> Report {
        let status = self.controls.status.clone();
        let started = self.started;
        let progress = move |done: f64| {
            status.send_modify(|s| {
                s.prepared = Some(done);
                s.elapsed_ms = started.elapsed().as_millis() as u64;
            })
        };
        let now_ms = move || started.elapsed().as_millis() as u64;
        let prepared = match self.admit().await {
            Err(reason) => Some(Err((Stage::Prepare, reason))),
            Ok(()) => tokio::select! {
                p = prepare(&self.spec, &self.id, &self.settings, &topologies, &progress, &now_ms) => Some(p),
                _ = self.controls.stop.changed() => None,
            },
        };
        let mut prepared = match prepared {
            Some(Ok(p)) => p,
            Some(Err((stage, reason))) => {
                self.machine.on(Event::Failed { stage, reason });
                return self.into_report("none", None).await;
            }
            None => {
                self.machine.on(Event::StopRequested);
                return self.into_report("none", None).await;
            }
        };
        self.timings.prepared_ms = Some(self.ms());
        self.mode_reason = Some(prepared.mode_reason.clone());
        self.controls.status.send_modify(|st| {
            st.mode = Some(prepared.mode);
            st.stream_url = Some(prepared.url.clone());
        });
        let actions = self.machine.on(Event::Prepared);
        let mut relay = prepared.relay.take();
        let torn_down = self
            .drive(&mut prepared, &mut relay, actions, &topologies)
            .await;
        // The URL dies with the session, on a shared server too.
        if relay.is_none() {
            self.settings.publisher.withdraw(&prepared.url);
        }
        if let Some(link) = relay {
            self.relay = Some(link.stop(self.settings.teardown_timeout).await);
        }
        let mode = prepared.mode;
        let stats = match prepared.media {
            Media::Live(stream) => {
                let stats = stream.stats();
                let _ = tokio::time::timeout(self.settings.teardown_timeout, stream.stop()).await;
                MediaFigures::Live(stats)
            }
            // The feed's stream runs on for its other sessions; this one only lets go.
            Media::Feed(lease) => match lease.stats() {
                Some(stats) => MediaFigures::Live(stats),
                None => MediaFigures::Announcement(AnnouncementFigures {
                    kind: mode,
                    duration_ms: None,
                    plays: None,
                    bound_ms: self.ingest_started.map(|t| t.elapsed().as_millis() as u64),
                }),
            },
            Media::Announcement { duration, .. } => {
                MediaFigures::Announcement(AnnouncementFigures {
                    // "announcement", or "direct" for a URL the cloud pulled itself.
                    kind: mode,
                    duration_ms: duration.map(|d| d.as_millis() as u64),
                    plays: self.spec.repeat,
                    bound_ms: self.ingest_started.map(|t| t.elapsed().as_millis() as u64),
                })
            }
        };
        let stats = Some(stats);
        debug_assert!(torn_down);
        self.into_report(mode, stats).await
    }

    /// Carries out the machine's actions and feeds it what happens, until it asks for the
    /// teardown.
    async fn drive(
        &mut self,
        prepared: &mut Prepared,
        relay: &mut Option<RelayLink>,
        mut actions: Vec<Action>,
        topologies: &Topologies,
    ) -> bool {
        let mut media_events = match &prepared.media {
            Media::Live(s) => Some(s.events()),
            // A feed's end is the feed's state, followed on its own.
            Media::Announcement { .. } | Media::Feed(_) => None,
        };
        let _seat = self.settings.poll_budget.join();
        let mut restart_delays = backon::BackoffBuilder::build(
            backon::ExponentialBuilder::default()
                .with_min_delay(RESTART_MIN)
                .with_max_delay(RESTART_MAX)
                .with_jitter()
                .without_max_times(),
        );
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
                        // The stream goes to the relay first: the cloud finds it there.
                        if let Some(link) = relay.as_mut() {
                            let started = self.started;
                            let now = move || started.elapsed().as_millis() as u64;
                            if let Err(reason) = link.ensure_started(now).await {
                                let failed = Event::Failed {
                                    stage: Stage::Relay,
                                    reason,
                                };
                                actions.extend(self.machine.on(failed));
                                continue;
                            }
                        }
                        actions.extend(self.start_ingest(&prepared.url, prepared.repeat_num).await)
                    }
                    Action::RestartIngest { attempt } => {
                        self.task_restarts = attempt;
                        // Jittered backoff, 0.5 s doubling to 8 s, so a flapping cloud is not
                        // hammered.
                        let delay = restart_delays.next().unwrap_or(RESTART_MAX);
                        let pause = tokio::time::sleep(delay);
                        tokio::select! {
                            _ = pause => actions.extend(self.start_ingest(&prepared.url, prepared.repeat_num).await),
                            _ = self.controls.stop.changed() => actions.extend(self.machine.on(Event::StopRequested)),
                        }
                    }
                    Action::TearDown => return true,
                }
            }
            self.publish_phase();
            let live_stats = match &prepared.media {
                Media::Live(stream) => Some(stream.stats()),
                Media::Feed(lease) => lease.stats(),
                Media::Announcement { .. } => None,
            };
            match &prepared.media {
                Media::Live(_) | Media::Feed(_) => {
                    if let Some(s) = live_stats {
                        self.controls.status.send_modify(|st| {
                            st.iteration = s.iteration;
                            st.position_ms = s.position_ms;
                            st.media = Some(s);
                        });
                    }
                }
                // The cloud plays it; where it is comes from how long the task has run.
                Media::Announcement {
                    duration: Some(one_play),
                    ..
                } if !one_play.is_zero() => {
                    if let Some(bound) = self.ingest_started.map(|t| t.elapsed()) {
                        let play = one_play.as_millis() as u64;
                        let ran = bound.as_millis() as u64;
                        self.controls.status.send_modify(|st| {
                            st.iteration = u32::try_from(ran / play).unwrap_or(u32::MAX);
                            st.position_ms = ran % play;
                        });
                    }
                }
                Media::Announcement { .. } => {}
            }
            if let Some(link) = relay.as_ref() {
                let figures = link.figures();
                self.controls
                    .status
                    .send_modify(|st| st.relay = Some(figures));
            }
            let woke = self
                .next_event(prepared, relay, &mut media_events, &mut polls)
                .await;
            match woke {
                Woke::Event(Some(event)) => {
                    tracing::info!(session = %self.id, ?event, "session event");
                    actions.extend(self.machine.on(event));
                }
                Woke::Event(None) => {}
                Woke::Change(request) => {
                    let asked = request.change;
                    let done = self
                        .change(
                            prepared,
                            relay.is_some(),
                            &mut media_events,
                            topologies,
                            asked,
                        )
                        .await;
                    if let Err(e) = &done {
                        tracing::info!(session = %self.id, error = %e, "session change refused");
                    }
                    let _ = request.reply.send(done);
                }
            }
        }
    }

    /// Waits for the next thing that happens. A poll in flight lives across waits (a media
    /// event or a nudge does not cancel it, so a slow cloud still gets answered); a stop
    /// request drops it at once instead of waiting for its answer.
    async fn next_event(
        &mut self,
        prepared: &Prepared,
        relay: &mut Option<RelayLink>,
        media_events: &mut Option<tokio::sync::broadcast::Receiver<MediaEvent>>,
        polls: &mut Polls<'a>,
    ) -> Woke {
        let cloud = self.cloud;
        let budget = self.settings.poll_budget.clone();
        let robot = self.spec.robot.as_str().to_owned();
        let deadline = self.deadline;
        let call_due = self.call_id.is_some() && polls.call.is_none();
        let task_due = self.task_id.is_some() && polls.task.is_none();
        let (call_at, task_at) = (polls.next_call, polls.next_task);
        let hearing = self.awaits_hearing();
        let room_look = self.room_watch.is_some().then_some(self.next_room_look);
        let changes = self.controls.changes.as_mut();
        let woke = tokio::select! {
            change = next_change(changes) => match change {
                Some(request) => return Woke::Change(Box::new(request)),
                None => {
                    self.controls.changes = None;
                    None
                }
            },
            _ = self.controls.stop.changed() => Some(Event::StopRequested),
            // The room's ear, while a queued item's start is not heard yet.
            _ = tokio::time::sleep(HEARING_EVERY), if hearing => {
                self.listen_for_items();
                None
            }
            _ = tokio::time::sleep_until(room_look.unwrap_or(call_at)), if room_look.is_some() => {
                self.next_room_look = tokio::time::Instant::now() + ROOM_LOOK_EVERY;
                self.look_at_room();
                None
            }
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
                let every = if matches!(self.machine.phase, Phase::Ringing) {
                    self.settings.poll_ringing
                } else {
                    self.settings.poll_call
                };
                polls.next_call = tokio::time::Instant::now()
                    + budget.interval(every, crate::cloud::http::CALL_COMMAND_PER_SECOND);
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
            _ = async {
                match &prepared.media {
                    Media::Feed(lease) => lease.ended().await,
                    _ => std::future::pending().await,
                }
            } => Some(Event::FeedEnded),
            event = async {
                match media_events.as_mut() {
                    Some(rx) => rx.recv().await.ok(),
                    None => std::future::pending().await,
                }
            } => match event {
                Some(MediaEvent::Ended { .. }) => Some(Event::MediaFinished),
                Some(MediaEvent::Failed { reason }) => Some(Event::Failed { stage: Stage::Media, reason }),
                Some(queued @ (MediaEvent::QueuedStarted { .. } | MediaEvent::QueuedFinished { .. })) => {
                    self.note_queued(queued);
                    None
                }
                _ => None,
            },
            event = async {
                match relay.as_mut() {
                    Some(link) => link.next_event().await,
                    None => std::future::pending().await,
                }
            } => {
                let now = self.ms();
                relay.as_mut().and_then(|link| {
                    link.on_event(event, now).map(|reason| Event::Failed { stage: Stage::Relay, reason })
                })
            }
        };
        Woke::Event(woke)
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
                    Media::Announcement {
                        expected: Some(e), ..
                    } => self
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

    /// The cloud refused a start: the session fails at `stage`, with the cloud's code.
    fn refused(&mut self, stage: Stage, e: &CloudError) -> Vec<Action> {
        self.error_code = e.code();
        if e.class() == crate::cloud::http::FailureClass::MaybeProcessed {
            tracing::warn!(session = %self.id, error = %e, "the cloud may have carried out a start whose answer was lost");
            self.unconfirmed_start = Some(match stage {
                Stage::Ring => "call",
                _ => "ingest_task",
            });
        }
        self.machine.on(Event::Failed {
            stage,
            reason: e.to_string(),
        })
    }

    /// Why this process may not start anything more in the cloud for the session: another
    /// node took it over (this one's lease ran out). A store that does not answer stops
    /// nothing here: the session keeps running.
    async fn fenced_out(&self) -> Option<String> {
        let j = self.journal.as_ref()?;
        match j.fence(&self.id).await {
            Ok(true) => None,
            Ok(false) => Some(
                "another node took this session over (this node's lease ran out); nothing more is started here"
                    .to_owned(),
            ),
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "fence check failed; going on");
                None
            }
        }
    }

    /// The one place a started call's or task's id is written: the journal (so a crash
    /// still stops it), the status (webhooks find the session by it), what the teardown
    /// stops, and the run's own polls.
    async fn started(&mut self, what: Started, id: String) {
        if let Some(j) = &self.journal {
            let written = match what {
                Started::Call => j.set_call(&self.id, &id).await,
                Started::Task => j.set_task(&self.id, &id).await,
            };
            self.journal_note(written);
        }
        let slot = |call: &'_ mut Option<String>, task: &'_ mut Option<String>| match what {
            Started::Call => *call = Some(id.clone()),
            Started::Task => *task = Some(id.clone()),
        };
        self.controls
            .status
            .send_modify(|s| slot(&mut s.call_id, &mut s.task_id));
        self.remember(|l| slot(&mut l.call_id, &mut l.task_id));
        slot(&mut self.call_id, &mut self.task_id);
    }

    async fn start_call(&mut self) -> Vec<Action> {
        if let Some(reason) = self.fenced_out().await {
            return self.machine.on(Event::Failed {
                stage: Stage::Ring,
                reason,
            });
        }
        match self.cloud.start_call(&self.spec.start_call_request()).await {
            Ok(id) => {
                tracing::info!(session = %self.id, call_id = %id, "call started");
                self.started(Started::Call, id).await;
                self.timings.call_started_ms = Some(self.ms());
                self.ringing_since = Some(Instant::now());
                self.machine.on(Event::CallStarted)
            }
            Err(e) => self.refused(Stage::Ring, &e),
        }
    }

    async fn start_ingest(&mut self, url: &str, repeat_num: i32) -> Vec<Action> {
        if let Some(reason) = self.fenced_out().await {
            return self.machine.on(Event::Failed {
                stage: Stage::Ingest,
                reason,
            });
        }
        let mut req = StartStreamIngest::new(
            self.spec.room.clone(),
            self.spec.ingest_user.clone(),
            url.to_owned(),
        );
        req.repeat_num = Some(repeat_num);
        // A backstop: should this process die and its record of the task be lost, the cloud
        // still ends a looping task shortly after the session's own limit (the cloud takes
        // MaxDuration only with RepeatNum -1; a counted play ends by itself).
        req.max_duration_minutes = self
            .spec
            .max_duration
            .filter(|_| repeat_num == -1)
            .map(|d| {
                let minutes = d.as_secs().div_ceil(60) + 2;
                u32::try_from(minutes)
                    .unwrap_or(u32::MAX)
                    .min(crate::cloud::ingest::MAX_DURATION_MINUTES)
            });
        match self.cloud.start_ingest(&req).await {
            Ok(id) => {
                tracing::info!(session = %self.id, task_id = %id, "ingest started");
                self.started(Started::Task, id).await;
                self.ingest_started = Some(Instant::now());
                self.timings.ingest_started_ms.get_or_insert(self.ms());
                if self.deadline.is_none() {
                    self.deadline = self
                        .spec
                        .max_duration
                        .and_then(|d| tokio::time::Instant::now().checked_add(d));
                }
                let actions = self.machine.on(Event::IngestStarted);
                self.start_monitor().await;
                actions
            }
            Err(e) => self.refused(Stage::Ingest, &e),
        }
    }
}
