//! One task per session: prepares the media, rings, binds the stream into the room, watches
//! every stage, and tears everything down together. It owns the session's state machine and
//! feeds it what the cloud and the media engine report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::journal::Journal;
use super::state::{Action, Event, Outcome, Phase, Session, Stage};
use super::{CallStatus, CloudOps, SessionSpec, room_key};
use crate::cloud::ingest::StartStreamIngest;
use crate::media::contract::Contract;
use crate::media::engine::{LiveSettings, LiveStream, Loops, MediaEvent, StreamStats};
use crate::media::input::InputSpec;
use crate::media::topology::Topologies;
use crate::serve::streams::StreamServer;

/// How the driver works, beyond the session's own spec.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    pub poll_call: Duration,
    pub poll_task: Duration,
    pub teardown_timeout: Duration,
    /// Where the stream server listens.
    pub stream_listen: SocketAddr,
    /// The public base URL the cloud reaches the stream server at (when it is behind NAT or
    /// a proxy); the listen address otherwise.
    pub public_base: Option<String>,
    pub cache_dir: PathBuf,
    /// A stream server shared by every session (`callfeed serve` mounts it on its own port);
    /// each session starts its own on `stream_listen` otherwise.
    pub stream_server: Option<Arc<StreamServer>>,
}

impl Default for DriverSettings {
    fn default() -> Self {
        Self {
            poll_call: Duration::from_millis(500),
            poll_task: Duration::from_secs(1),
            teardown_timeout: Duration::from_secs(5),
            stream_listen: "127.0.0.1:0".parse().expect("an address"),
            public_base: None,
            cache_dir: crate::media::announce::default_cache_dir(),
            stream_server: None,
        }
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
}

/// What a status line shows while the session runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub phase: String,
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

impl Media {
    fn mode(&self, passthrough: bool) -> &'static str {
        match self {
            Media::Announcement { .. } => "announcement",
            Media::Live(_) if passthrough => "passthrough",
            Media::Live(_) => "live",
        }
    }
}

struct Prepared {
    media: Media,
    url: String,
    repeat_num: i32,
    passthrough: bool,
    server: Arc<StreamServer>,
}

async fn prepare(
    spec: &SessionSpec,
    settings: &DriverSettings,
    topologies: &Topologies,
) -> Result<Prepared, String> {
    let input = InputSpec::parse(&spec.media).map_err(|e| e.to_string())?;
    let contract = Contract::new(spec.profile);
    let report = match &input {
        InputSpec::File(_) | InputSpec::Playlist(_) | InputSpec::Url(_) => {
            let probe_input = input.clone();
            Some(
                tokio::task::spawn_blocking(move || {
                    crate::media::probe::probe(&probe_input, contract)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
            )
        }
        _ => None,
    };
    let server = match &settings.stream_server {
        Some(shared) => shared.clone(),
        None => Arc::new(
            StreamServer::start(settings.stream_listen)
                .await
                .map_err(|e| {
                    format!("cannot serve the stream on {}: {e}", settings.stream_listen)
                })?,
        ),
    };
    let still = report
        .as_ref()
        .and_then(|r| r.video.as_ref())
        .is_some_and(|v| v.still_image);
    let loops = match spec.repeat {
        Some(n) => Loops::Times(n.max(1)),
        None => Loops::Forever,
    };
    let (media, url, repeat_num, passthrough) = match (&input, &report) {
        (InputSpec::File(path), Some(r)) if !spec.live && !still => {
            let file = if r.passthrough {
                path.clone()
            } else {
                crate::media::announce::prepare(
                    path,
                    r,
                    contract,
                    topologies,
                    &settings.cache_dir,
                    &|_| {},
                )
                .await
                .map_err(|e| e.to_string())?
            };
            let expected = r
                .duration_ms
                .zip(spec.repeat)
                .map(|(ms, n)| Duration::from_millis(ms * u64::from(n)));
            let repeat_num = spec.repeat.map_or(-1, |n| n as i32);
            (
                Media::Announcement { expected },
                server.publish_file(file, None),
                repeat_num,
                r.passthrough,
            )
        }
        _ => {
            let mut live = LiveSettings::new(contract);
            live.loops = loops;
            live.still_image = still;
            let passthrough = report.as_ref().is_some_and(|r| r.passthrough)
                && matches!(input, InputSpec::File(_));
            let stream = match (&input, &report) {
                (InputSpec::File(path), Some(r)) if passthrough => LiveStream::start_passthrough(
                    path.clone(),
                    r.container.as_deref().unwrap_or_default(),
                    live,
                ),
                _ => LiveStream::start(input.clone(), live, topologies),
            }
            .map_err(|e| e.to_string())?;
            let url = server.publish_live(stream.hub(), None);
            (Media::Live(stream), url, -1, passthrough)
        }
    };
    let url = match &settings.public_base {
        Some(base) => url.replacen(server.base(), base.trim_end_matches('/'), 1),
        None => url,
    };
    Ok(Prepared {
        media,
        url,
        repeat_num,
        passthrough,
        server,
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

/// Runs one session to its end.
pub async fn run<C: CloudOps>(
    session_id: String,
    spec: SessionSpec,
    cloud: &C,
    journal: Option<Arc<Journal>>,
    settings: DriverSettings,
    topologies: Topologies,
    controls: Controls,
) -> Report {
    let Controls {
        status,
        mut stop,
        nudge,
    } = controls;
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let mut machine = Session::new(spec.ingest_at, spec.ring_timeout);
    let mut timings = Timings::default();
    let (mut call_id, mut task_id): (Option<String>, Option<String>) = (None, None);
    let mut ever_answered = false;
    let mut ringing_since: Option<Instant> = None;
    let mut ingest_started: Option<Instant> = None;
    let mut task_restarts = 0u32;
    let mut error_code: Option<String> = None;
    let journal_note = |f: &dyn Fn(&Journal) -> Result<(), super::journal::JournalError>| {
        if let Some(j) = &journal
            && let Err(e) = f(j)
        {
            tracing::error!(error = %e, "journal write failed");
        }
    };
    journal_note(&|j| j.create(&session_id, &room_key(&spec.room), spec.robot.as_str()));
    let set_phase = |machine: &Session, elapsed: u64| {
        let phase = serde_json::to_value(&machine.phase)
            .ok()
            .and_then(|v| v.get("state").and_then(|s| s.as_str()).map(str::to_owned))
            .unwrap_or_default();
        status.send_modify(|s| {
            s.phase = phase;
            s.elapsed_ms = elapsed;
        });
    };

    let prepared = tokio::select! {
        p = prepare(&spec, &settings, &topologies) => Some(p),
        _ = stop.changed() => None,
    };
    let mut prepared = match prepared {
        Some(Ok(p)) => p,
        Some(Err(reason)) => {
            machine.on(Event::Failed {
                stage: Stage::Prepare,
                reason,
            });
            machine.on(Event::TornDown);
            return finish(
                &machine,
                &session_id,
                &journal,
                call_id,
                task_id,
                "none",
                timings,
                None,
                0,
                None,
            );
        }
        None => {
            machine.on(Event::StopRequested);
            machine.on(Event::TornDown);
            return finish(
                &machine,
                &session_id,
                &journal,
                call_id,
                task_id,
                "none",
                timings,
                None,
                0,
                None,
            );
        }
    };
    timings.prepared_ms = Some(ms());
    let mut media_events = match &prepared.media {
        Media::Live(s) => Some(s.events()),
        Media::Announcement { .. } => None,
    };
    let mut actions = machine.on(Event::Prepared);
    let mut call_tick = tokio::time::interval(settings.poll_call);
    let mut task_tick = tokio::time::interval(settings.poll_task);
    // `max_duration` caps the media time in the call, counted from the first StartStreamIngest.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        // Carry out what the machine asked for; each result is fed back at once.
        while let Some(action) = actions.pop() {
            set_phase(&machine, ms());
            match action {
                Action::StartCall => match cloud.start_call(&spec.start_call_request()).await {
                    Ok(id) => {
                        tracing::info!(session = %session_id, call_id = %id, "call started");
                        journal_note(&|j| j.set_call(&session_id, &id));
                        call_id = Some(id);
                        timings.call_started_ms = Some(ms());
                        ringing_since = Some(Instant::now());
                        actions.extend(machine.on(Event::CallStarted));
                    }
                    Err(e) => {
                        error_code = e.code();
                        actions.extend(machine.on(Event::Failed {
                            stage: Stage::Ring,
                            reason: e.to_string(),
                        }))
                    }
                },
                Action::StartIngest | Action::RestartIngest { .. } => {
                    if let Action::RestartIngest { attempt } = action {
                        task_restarts = attempt;
                        // Jittered backoff: 0.5, 1, 2 s... so a flapping cloud is not hammered.
                        let base = 500u64 << attempt.min(4).saturating_sub(1);
                        let jitter = rand::random::<u64>() % (base / 2 + 1);
                        tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                    }
                    let mut req = StartStreamIngest::new(
                        spec.room.clone(),
                        spec.ingest_user.clone(),
                        prepared.url.clone(),
                    );
                    req.repeat_num = Some(prepared.repeat_num);
                    match cloud.start_ingest(&req).await {
                        Ok(id) => {
                            tracing::info!(session = %session_id, task_id = %id, "ingest started");
                            journal_note(&|j| j.set_task(&session_id, &id));
                            task_id = Some(id);
                            ingest_started = Some(Instant::now());
                            timings.ingest_started_ms.get_or_insert(ms());
                            if deadline.is_none() {
                                deadline =
                                    spec.max_duration.map(|d| tokio::time::Instant::now() + d);
                            }
                            actions.extend(machine.on(Event::IngestStarted));
                        }
                        Err(e) => {
                            error_code = e.code();
                            actions.extend(machine.on(Event::Failed {
                                stage: Stage::Ingest,
                                reason: e.to_string(),
                            }))
                        }
                    }
                }
                Action::TearDown => {
                    let teardown = async {
                        if let Some(t) = &task_id
                            && let Err(e) = cloud.stop_ingest(t).await
                        {
                            tracing::warn!(task_id = %t, error = %e, "could not stop the ingest task");
                        }
                        if let Some(c) = &call_id
                            && let Err(e) = cloud.end_call(c).await
                        {
                            tracing::warn!(call_id = %c, error = %e, "could not end the call");
                        }
                    };
                    if tokio::time::timeout(settings.teardown_timeout, teardown)
                        .await
                        .is_err()
                    {
                        tracing::error!(session = %session_id, "teardown timed out");
                    }
                    // The URL dies with the session, on a shared server too.
                    prepared.server.unpublish(&prepared.url);
                    let mode = prepared.media.mode(prepared.passthrough);
                    let media_stats = match std::mem::replace(
                        &mut prepared.media,
                        Media::Announcement { expected: None },
                    ) {
                        Media::Live(stream) => {
                            let stats = stream.stats();
                            let _ = tokio::time::timeout(settings.teardown_timeout, stream.stop())
                                .await;
                            Some(stats)
                        }
                        Media::Announcement { .. } => None,
                    };
                    machine.on(Event::TornDown);
                    timings.ended_ms = Some(ms());
                    return finish(
                        &machine,
                        &session_id,
                        &journal,
                        call_id,
                        task_id,
                        mode,
                        timings,
                        media_stats,
                        task_restarts,
                        error_code,
                    );
                }
            }
        }
        set_phase(&machine, ms());
        if let Media::Live(stream) = &prepared.media {
            let s = stream.stats();
            status.send_modify(|st| {
                st.iteration = s.iteration;
                st.position_ms = s.position_ms;
            });
        }
        let event = tokio::select! {
            _ = stop.changed() => Some(Event::StopRequested),
            _ = nudge.notified() => {
                call_tick.reset_immediately();
                task_tick.reset_immediately();
                None
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => Some(if matches!(machine.phase, Phase::Ingesting) { Event::MediaFinished } else { Event::StopRequested }),
            _ = call_tick.tick() => match &call_id {
                Some(id) => match cloud.call_status(id, spec.robot.as_str()).await {
                    Ok(CallStatus::Live { answered: true }) if !ever_answered => {
                        ever_answered = true;
                        timings.answered_ms = Some(ms());
                        Some(Event::Answered)
                    }
                    Ok(CallStatus::Gone) => Some(Event::CallGone {
                        ever_answered,
                        rang_for: ringing_since.map_or(Duration::ZERO, |t| t.elapsed()),
                    }),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "get_call_info failed");
                        None
                    }
                },
                None => None,
            },
            _ = task_tick.tick() => match &task_id {
                Some(id) => match cloud.task_alive(id).await {
                    Ok(false) => {
                        status.send_modify(|s| s.task = Some("NotExist"));
                        let done = match &prepared.media {
                            // The cloud played the announcement through: that is the end.
                            Media::Announcement { expected: Some(e) } => ingest_started
                                .is_some_and(|t| t.elapsed().as_secs_f64() >= e.as_secs_f64() * 0.9),
                            _ => false,
                        };
                        Some(if done { Event::MediaFinished } else { Event::TaskGone })
                    }
                    Ok(true) => {
                        status.send_modify(|s| s.task = Some("InProgress"));
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "DescribeStreamIngest failed");
                        None
                    }
                },
                None => None,
            },
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
        };
        if let Some(event) = event {
            tracing::info!(session = %session_id, ?event, "session event");
            actions.extend(machine.on(event));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    machine: &Session,
    session_id: &str,
    journal: &Option<Arc<Journal>>,
    call_id: Option<String>,
    task_id: Option<String>,
    mode: &'static str,
    timings: Timings,
    media: Option<StreamStats>,
    task_restarts: u32,
    error_code: Option<String>,
) -> Report {
    let outcome = match &machine.phase {
        Phase::Ended { outcome } | Phase::Ending { outcome } => outcome.clone(),
        _ => Outcome::Failed {
            stage: Stage::Teardown,
            reason: "ended in an unexpected state".into(),
        },
    };
    if let Some(j) = journal {
        let note = match &outcome {
            Outcome::Failed { stage, reason } => format!("{stage:?}: {reason}"),
            _ => String::new(),
        };
        if let Err(e) = j.finish(session_id, outcome.name(), &note) {
            tracing::error!(error = %e, "journal write failed");
        }
    }
    Report {
        session_id: session_id.to_owned(),
        call_id,
        task_id,
        outcome,
        mode,
        timings,
        media,
        task_restarts,
        error_code,
    }
}

/// Stops what sessions of a crashed process left running: each open session's ingest task
/// and call, recording what was done. Returns (session id, note) per recovered session.
pub async fn recover<C: CloudOps>(journal: &Journal, cloud: &C) -> Vec<(String, String)> {
    let mut done = Vec::new();
    let open = match journal.open_sessions() {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the journal");
            return done;
        }
    };
    for s in open {
        let mut notes = Vec::new();
        if let Some(t) = &s.task_id {
            match cloud.stop_ingest(t).await {
                Ok(()) => notes.push(format!("stopped task {t}")),
                Err(e) => notes.push(format!("task {t}: {e}")),
            }
        }
        if let Some(c) = &s.call_id {
            match cloud.end_call(c).await {
                Ok(()) => notes.push(format!("ended call {c}")),
                Err(e) => notes.push(format!("call {c}: {e}")),
            }
        }
        let note = if notes.is_empty() {
            "nothing had started".to_owned()
        } else {
            notes.join("; ")
        };
        tracing::warn!(session = %s.id, %note, "recovered a session a previous process left open");
        let _ = journal.finish(&s.id, "recovered", &note);
        done.push((s.id, note));
    }
    done
}
