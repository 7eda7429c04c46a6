//! `callfeed call`: ring callees from a robot, bind media into the call's room, and watch
//! the session until the call ends; against Tencent Cloud or the embedded emulator.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::args::{IngestAtArg, MediaTypeArg, RelayArgs, RoomArgs};
use super::progress::{self, Stoppable};
use crate::app;
use crate::cloud::InvalidArgument;
use crate::cloud::call;
use crate::config::Config;
use crate::emulator::{Behaviour, Emulator};
use crate::media::contract::Profile;
use crate::media::policy::InputPolicy;
use crate::media::topology::Topologies;
use crate::session::state::Outcome;
use crate::session::{CloudClients, SessionRequest, SessionSpec, driver};
use crate::store::Journal;

#[derive(Args)]
pub(super) struct CallArgs {
    /// A callee; repeat for a group call (at most 8).
    #[arg(long = "to", value_name = "USER", required = true)]
    to: Vec<String>,
    /// What to play: a file, URL, test: source or device (see `callfeed push`), or
    /// `listen:rtmp` to take an encoder's push (OBS, ffmpeg) and ring once it is live.
    #[arg(long, value_name = "INPUT")]
    media: String,
    /// With --media listen:rtmp: where the RTMP server listens for the encoder.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1935")]
    rtmp_listen: std::net::SocketAddr,
    /// With --media listen:rtmp: the host (or host:port) the encoder reaches this machine at.
    #[arg(long, value_name = "HOST[:PORT]")]
    rtmp_public: Option<String>,
    /// With --media listen:rtmp: how long to wait for the encoder before giving up (nothing
    /// rings meanwhile).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    feed_wait: u64,
    #[command(flatten)]
    room: RoomArgs,
    /// The robot account that calls (and whose UserID the stream uses in the room).
    #[arg(long, default_value = "robot")]
    robot: String,
    /// Audio or video call.
    #[arg(long, value_enum, default_value = "video")]
    media_type: MediaTypeArg,
    /// Output profile (default: audio for audio calls, 720p for video calls).
    #[arg(long, value_parser = super::args::profile_values())]
    profile: Option<Profile>,
    /// Bind the stream when the callee answers (announcements) or while it rings (live feeds).
    #[arg(long, value_enum, default_value = "answer")]
    ingest_at: IngestAtArg,
    /// Play the media N times.
    #[arg(long, default_value_t = 1, conflicts_with = "loop_forever")]
    repeat: u32,
    /// Play until the call ends.
    #[arg(long = "loop", value_name = "forever", value_parser = ["forever"])]
    loop_forever: Option<String>,
    /// Seconds the callees' phones ring (10 to 600).
    #[arg(long, default_value_t = call::DEFAULT_RING_TIMEOUT_MS / 1000, value_name = "SECS")]
    ring_timeout: u32,
    /// Seconds of media in the call, from when the stream is bound; then it ends as completed.
    #[arg(long, value_name = "SECS")]
    max_duration: Option<u64>,
    /// Stream a file live (HTTP-FLV) instead of handing the cloud an announcement MP4.
    #[arg(long)]
    live: bool,
    /// A file's audio track: its number as `callfeed probe` lists them (0 is the first) or
    /// its language code (`en`, `eng`); the first when not given.
    #[arg(long, value_name = "N|LANG")]
    audio_track: Option<String>,
    /// Hand a URL to the cloud to pull itself: `auto` when the probe says the cloud takes it
    /// as it is (H.264 without B-frames within 1080p30, AAC or Opus), `always` unprobed (a URL
    /// only the cloud can reach), `never` (always streamed by this node).
    #[arg(long, default_value = "auto", value_name = "auto|always|never")]
    direct: String,
    #[command(flatten)]
    relay: RelayArgs,
    /// Where the stream server listens; the cloud must reach it (see --public-url).
    #[arg(long, default_value = "127.0.0.1:0", value_parser = super::args::listen_addr)]
    stream_listen: std::net::SocketAddr,
    /// The base URL the cloud reaches the stream server at, e.g. https://media.example.com.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Run against the in-process emulator instead of Tencent Cloud.
    #[arg(long)]
    emulator: bool,
    /// With --emulator: callees answer after this many ms.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    callee_answers_after: u64,
    /// With --emulator: callees hang up this many ms after answering.
    #[arg(long, value_name = "MS")]
    callee_hangs_up_after: Option<u64>,
    /// With --emulator: callees decline.
    #[arg(long)]
    callee_rejects: bool,
    /// With --emulator: nobody answers.
    #[arg(long)]
    callee_never_answers: bool,
    /// With --emulator: callees are busy.
    #[arg(long)]
    callee_busy: bool,
    /// Have the cloud publish the room back to this process and measure what the callee
    /// received (`robot`: the robot's stream as the room carries it; `mix`: the room's mix):
    /// the session completes only if the room carried the media. Takes an RTMP server on
    /// --rtmp-listen (reachable from the cloud: --rtmp-public).
    #[arg(long, value_name = "robot|mix", num_args = 0..=1, default_missing_value = "robot")]
    monitor: Option<String>,
    /// Record what the monitor receives into this folder (MP4, or M4A for an audio call).
    #[arg(long, value_name = "DIR")]
    record: Option<std::path::PathBuf>,
    /// One JSON report at the end instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    input_size: super::args::InputSizeArgs,
}

pub(super) async fn run(mut config: Config, args: CallArgs) -> anyhow::Result<ExitCode> {
    // Everything is checked before the phone rings, by the API's own rules: the same
    // fields are named when something is refused. The user at a shell opens what they like.
    let mut request = session_request(&args, &config)?;
    // An encoder's push: a feed of this process's own, and the call rings once it is live.
    let listening = match args.media.as_str() {
        "listen:rtmp" => Some(listen_rtmp(&config, &args).await?),
        // A feed lives in the serve that made it; this process has none.
        media if media.starts_with("feed:") => {
            anyhow::bail!(InvalidArgument::new(
                "--media",
                media,
                "an input this process plays, or listen:rtmp; a feed lives in the `callfeed serve` that made it: start the session there (POST /v1/sessions, or `callfeed load --api URL --media feed:ID`)"
            ));
        }
        _ => None,
    };
    if let Some((_, _, feed)) = &listening {
        request.media = format!("feed:{feed}");
        request.ring = Some("when_live".into());
        request.feed_wait_secs = Some(args.feed_wait);
    }
    // The config's relay, for a session whose flags name none: its host must resolve too.
    let configured = request
        .relay
        .is_none()
        .then(|| config.relay.clone())
        .flatten();
    if let Some(relay) = &configured {
        relay.resolve().await?;
    }
    let spec = request
        .validate(
            &InputPolicy::Unrestricted,
            &Topologies::load(&config.pipelines)?,
            configured.as_ref(),
            args.input_size.into(),
        )
        .await?;
    let emulator = if args.emulator {
        Some(Arc::new(start_emulator(&mut config, &args, &spec).await?))
    } else {
        None
    };
    let witness = emulator.as_ref().map(app::room_witness);
    let cloud = app::cloud_clients(&config)?;
    let journal = open_journal(emulator.is_some(), &cloud, &spec).await?;
    let journal = journal.journal().clone();
    let mut feeds = listening.as_ref().map(|(feeds, _, _)| feeds.clone());
    // The room monitor's door: the feed's RTMP server, or one of its own.
    let _monitor_server = match (&spec.monitor, &feeds) {
        (Some(_), None) => {
            let (monitor_feeds, server) = rtmp_server(&config, &args).await?;
            feeds = Some(monitor_feeds);
            Some(server)
        }
        _ => None,
    };
    let report = run_session(&config, &args, spec, &cloud, journal, witness, feeds).await?;
    if let Some((feeds, _server, _)) = listening {
        feeds.end_all("the call ended").await;
    }
    let room_view = emulator
        .as_ref()
        .and_then(|e| report.call_id.as_deref().and_then(|id| e.call_view(id)));
    let code = report.outcome.exit_code();
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(room) = room_view {
            v["observed"] = room;
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print_report(&report, args.record.as_deref());
        if let Some(view) = room_view {
            print_room(&view);
        }
    }
    if let Some(e) = emulator
        && let Ok(e) = Arc::try_unwrap(e)
    {
        e.shutdown().await;
    }
    Ok(ExitCode::from(code))
}

/// An RTMP server on --rtmp-listen, named by --rtmp-public: where an encoder pushes
/// (`--media listen:rtmp`) and the cloud publishes the room to (`--monitor`).
async fn rtmp_server(
    config: &Config,
    args: &CallArgs,
) -> anyhow::Result<(crate::feed::Feeds, crate::feed::rtmp::RtmpServer)> {
    let feeds = crate::feed::Feeds::new(crate::feed::FeedSettings {
        max_feeds: 1,
        topologies: Topologies::load(&config.pipelines)?,
        rtmp_base: None,
        srt: None,
        whip: None,
    });
    let server = super::feed::start_rtmp(
        &feeds,
        args.rtmp_listen,
        args.rtmp_public.as_deref(),
        Default::default(),
    )
    .await?;
    Ok((feeds, server))
}

/// `--media listen:rtmp`: an RTMP server and one feed on it, its settings told to the
/// person at the shell; the registry, the server (listening while held) and the feed's id.
async fn listen_rtmp(
    config: &Config,
    args: &CallArgs,
) -> anyhow::Result<(crate::feed::Feeds, crate::feed::rtmp::RtmpServer, String)> {
    let (feeds, server) = rtmp_server(config, args).await?;
    let request = crate::feed::FeedRequest {
        profile: args.profile,
        ..Default::default()
    };
    let feed = feeds.create(request, None)?;
    super::feed::tell_publish_settings(&feed);
    Ok((feeds, server, feed.id))
}

/// The session the flags describe, as an API client would ask for it.
fn session_request(args: &CallArgs, config: &Config) -> anyhow::Result<SessionRequest> {
    Ok(SessionRequest {
        to: args.to.clone(),
        media: args.media.clone(),
        room: args.room.room.clone(),
        room_type: value_name(&args.room.room_type),
        robot: args.robot.clone(),
        media_type: value_name(&args.media_type),
        profile: args.profile.map(|p| p.name().to_owned()),
        ingest_at: value_name(&args.ingest_at),
        repeat: args.loop_forever.is_none().then_some(args.repeat),
        loop_forever: args.loop_forever.is_some(),
        ring_timeout_secs: args.ring_timeout,
        max_duration_secs: args.max_duration,
        live: args.live,
        audio_track: args.audio_track.clone(),
        direct: Some(args.direct.clone()),
        relay: args.relay.named(config)?,
        ring: None,
        feed_wait_secs: None,
        on_feed_end: None,
        monitor: args.monitor.clone().map(serde_json::Value::String),
        record: args
            .record
            .is_some()
            .then_some(serde_json::Value::Bool(true)),
    })
}

/// A flag's value as its help spells it.
fn value_name(value: &impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// The embedded emulator, with the `--callee-*` behaviour for every callee. It accepts
/// whatever credentials the client has; demo ones when none are set.
async fn start_emulator(
    config: &mut Config,
    args: &CallArgs,
    spec: &SessionSpec,
) -> anyhow::Result<Emulator> {
    let behaviour = if args.callee_rejects {
        Behaviour::Reject {
            after_ms: args.callee_answers_after.min(2000),
        }
    } else if args.callee_never_answers {
        Behaviour::NeverAnswer
    } else if args.callee_busy {
        Behaviour::Busy
    } else {
        Behaviour::Answer {
            after_ms: args.callee_answers_after,
            hangup_after_ms: args.callee_hangs_up_after,
        }
    };
    let scripted: Vec<(String, Behaviour)> = spec
        .callees
        .iter()
        .map(|c| (c.to_string(), behaviour.clone()))
        .collect();
    app::start_embedded_emulator(config, behaviour, &scripted).await
}

/// The journal: a real one against the cloud (and what a crash left behind is stopped
/// first); a throwaway one against the in-process emulator, which forgets everything.
/// Refuses a room this robot already has a running session in.
async fn open_journal(
    emulated: bool,
    cloud: &CloudClients,
    spec: &SessionSpec,
) -> anyhow::Result<app::OpenJournal> {
    let opened = if emulated {
        app::JournalAt::Scratch
    } else {
        app::JournalAt::Default
    }
    .open()
    .await?;
    let journal = opened.journal();
    if !emulated {
        let limit = Duration::from_secs(5);
        let orphaned = crate::store::OpenSession::orphaned;
        for r in crate::session::teardown::recover(journal, cloud, limit, orphaned).await {
            match r {
                Ok(r) => eprintln!(
                    "recovered session {} left open by an earlier run: {}",
                    r.session_id, r.note
                ),
                Err((id, e)) => eprintln!(
                    "session {id} of an earlier run is still not torn down (will retry next run): {e}"
                ),
            }
        }
    }
    let (room, robot) = (&spec.room, &spec.robot);
    if let Some(existing) = journal
        .active_for(&crate::session::room_key(room), robot.as_str())
        .await?
    {
        anyhow::bail!(InvalidArgument::new(
            "--room",
            room.to_string(),
            format!(
                "a room without a running session for {robot} (session {existing} is using it)"
            )
        ));
    }
    Ok(opened)
}

/// Runs the session to its end with a status line; Ctrl-C or SIGTERM asks it to end early
/// (and still tear down).
async fn run_session(
    config: &Config,
    args: &CallArgs,
    spec: SessionSpec,
    cloud: &CloudClients,
    journal: Arc<crate::store::Store>,
    room_witness: Option<driver::RoomWitness>,
    feeds: Option<crate::feed::Feeds>,
) -> anyhow::Result<driver::Report> {
    let topologies = Topologies::load(&config.pipelines)?;
    // The session is handed where to publish: this command's own stream server.
    let server = crate::publish::StreamServer::start(args.stream_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve the stream on {}: {e}", args.stream_listen))?
        .with_public_base(args.public_url.as_deref());
    let mut settings = driver::DriverSettings::new(Arc::new(server));
    settings.room_witness = room_witness;
    settings.input_bounds = args.input_size.into();
    settings.feeds = feeds;
    settings.record = match &args.record {
        Some(dir) => Some(super::monitoring::record_settings(
            dir,
            driver::DEFAULT_RECORD_SEGMENT,
        )?),
        None => None,
    };
    let session_id = uuid::Uuid::new_v4().to_string();
    let (status_tx, status_rx) = tokio::sync::watch::channel(driver::Status::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = driver::run(
        session_id,
        spec,
        cloud,
        Some(journal),
        settings,
        topologies,
        driver::Controls {
            status: status_tx,
            stop: stop_rx,
            nudge: Arc::new(tokio::sync::Notify::new()),
            changes: None,
        },
    );
    let line = progress::spinner(args.json);
    let mut run = Stoppable::new(run, stop_tx, status_rx, show_status);
    progress::watch(&mut run, &line, Duration::from_millis(250)).await
}

fn show_status(s: &driver::Status, line: &indicatif::ProgressBar) {
    // Preparing an announcement is a transcode: show how far it is, as `push` does.
    if s.phase == driver::Phase::Preparing {
        let done = s.prepared.map_or(String::new(), |f| {
            let width = 20;
            let filled = ((f.clamp(0.0, 1.0) * width as f64) as usize).min(width);
            format!(
                " | transcoding the announcement [{}{}] {:.0} %",
                "#".repeat(filled),
                "-".repeat(width - filled),
                f * 100.0
            )
        });
        line.set_message(format!(
            "preparing | {:.1} s{done}",
            s.elapsed_ms as f64 / 1000.0
        ));
        line.tick();
        return;
    }
    let relay = s.relay.as_ref().map_or(String::new(), |r| {
        format!(
            " | relay {} ({} reconnects, {} kB out)",
            r.state,
            r.reconnects,
            r.bytes_out / 1000
        )
    });
    line.set_message(format!(
        "{} | {:.1} s | media loop {} at {:.1} s | task {}{relay}",
        s.phase,
        s.elapsed_ms as f64 / 1000.0,
        s.iteration + 1,
        s.position_ms as f64 / 1000.0,
        s.task.unwrap_or("-")
    ));
    line.tick();
}

/// How the session ended, its ids and its timeline.
fn print_report(report: &driver::Report, record_root: Option<&std::path::Path>) {
    println!("session {}: {}", report.session_id, report.outcome.name());
    if let Outcome::Failed { stage, reason } = &report.outcome {
        println!("  failed at the {} stage: {reason}", stage.name());
    }
    if let driver::Teardown::Pending { reason } = &report.teardown {
        println!(
            "  the cloud has not confirmed the teardown ({reason}); the next callfeed run against this cloud retries it"
        );
    }
    println!(
        "  CallId {}  TaskId {}",
        report.call_id.as_deref().unwrap_or("-"),
        report.task_id.as_deref().unwrap_or("-")
    );
    let t = &report.timings;
    let at =
        |ms: Option<u64>| ms.map_or("-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
    println!(
        "  rang at {}, answered at {}, stream bound at {}, ended at {} ({} media)",
        at(t.call_started_ms),
        at(t.answered_ms),
        at(t.ingest_started_ms),
        at(t.ended_ms),
        report.mode
    );
    if let Some(why) = &report.mode_reason {
        println!("  {} media: {why}", report.mode);
    }
    if let Some(m) = &report.monitor {
        let f = &m.figures;
        println!(
            "  room monitor ({}, {}): {} ms of audio at {} dB, loudest at {} Hz, {} frames {}x{}, {} gaps",
            m.source.name(),
            m.state,
            f.audio_ms,
            f.audio_level_db.map_or("-".into(), |db| format!("{db:.1}")),
            f.dominant_hz.map_or("-".into(), |hz| format!("{hz:.0}")),
            f.video_frames,
            f.width,
            f.height,
            f.gaps_over_500ms
        );
        for alert in &m.alerts {
            println!(
                "    {} at {}: {}",
                alert.kind,
                at(Some(alert.at_ms)),
                alert.detail
            );
        }
        if let Some(r) = &m.recording {
            let folder = record_root.map(|root| root.join(&report.session_id));
            for file in &r.files {
                match &folder {
                    Some(folder) => println!("    recorded {}", folder.join(file).display()),
                    None => println!("    recorded {file}"),
                }
            }
            if let Some(why) = &r.stopped {
                println!("    the recording stopped: {why}");
            }
        }
    }
    if let Some(r) = &report.relay {
        println!(
            "  relay: pushed as {} (test push accepted at {}, publishing at {}), {} reconnects, {} kB out; the cloud pulled {}",
            r.stream,
            at(r.checked_ms),
            at(r.publishing_ms),
            r.reconnects,
            r.bytes_out / 1000,
            r.play_url
        );
    }
}

/// What the emulator's room observer saw: each callee's state and what reached the room.
fn print_room(view: &serde_json::Value) {
    for m in view["members"].as_array().into_iter().flatten() {
        println!(
            "  callee {}: {}",
            m["user_id"].as_str().unwrap_or(""),
            m["state"].as_str().unwrap_or("")
        );
    }
    for t in view["media"].as_array().into_iter().flatten() {
        let number = |v: &serde_json::Value| v.as_f64().map(|n| format!("{n:.0}"));
        let video = match t["video_frames"].as_u64() {
            Some(0) | None => "no video".to_owned(),
            Some(frames) => format!(
                "{frames} video frames {}x{} at {} fps",
                t["width"],
                t["height"],
                number(&t["fps"]).unwrap_or_else(|| "?".into())
            ),
        };
        let audio = match t["audio_ms"].as_u64() {
            Some(0) | None => "no audio".to_owned(),
            Some(ms) => match number(&t["dominant_hz"]) {
                Some(hz) => format!("{ms} ms of audio (loudest at {hz} Hz)"),
                None => format!("{ms} ms of audio"),
            },
        };
        let first = number(&t["first_media_ms"])
            .map(|ms| format!(", first media {ms} ms after StartStreamIngest"))
            .unwrap_or_default();
        println!(
            "  room {} {} received: {video}, {audio}{first}, {} gaps over 500 ms",
            t["room_kind"].as_str().unwrap_or(""),
            t["room_id"].as_str().unwrap_or(""),
            t["gaps_over_500ms"]
        );
    }
}
