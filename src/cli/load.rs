//! `callfeed load`: many full sessions at a given rate against the cloud or the embedded
//! emulator, with per-stage latency percentiles at the end.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::args::{MediaTypeArg, RelayArgs};
use super::output::EXIT_FAILED;
use super::progress::{self, Stoppable};
use crate::app;
use crate::cloud::InvalidArgument;
use crate::cloud::call::MediaType;
use crate::config::Config;
use crate::emulator::{Behaviour, Emulator};
use crate::load::{FirstMediaLookup, LoadPlan, LoadProgress, LoadReport};
use crate::media::contract::Profile;
use crate::media::policy::InputPolicy;
use crate::media::topology::Topologies;
use crate::session::{SessionRequest, driver};

#[derive(Args)]
pub(super) struct LoadArgs {
    /// How many sessions to run in all.
    #[arg(long)]
    calls: u32,
    /// Sessions started per second.
    #[arg(long)]
    rate: f64,
    /// Sessions running at once, at most (default: all).
    #[arg(long)]
    concurrency: Option<u32>,
    /// What each session plays: a file, URL, test: source or device (see `callfeed push`).
    #[arg(long, value_name = "INPUT", default_value = "test:tone")]
    media: String,
    /// How long each session plays before it ends.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    duration: u64,
    /// Audio or video calls.
    #[arg(long, value_enum, default_value = "audio")]
    media_type: MediaTypeArg,
    /// Output profile (default: audio for audio calls, 720p for video calls).
    #[arg(long, value_parser = super::args::profile_values())]
    profile: Option<Profile>,
    /// Hand a URL to the cloud to pull itself: `auto` when it can take it as it is,
    /// `always` unprobed, `never` (see `callfeed call --direct`).
    #[arg(long, default_value = "auto", value_name = "auto|always|never")]
    direct: crate::media::plan::Direct,
    #[command(flatten)]
    relay: RelayArgs,
    /// Run against the in-process emulator.
    #[arg(long, conflicts_with = "api")]
    emulator: bool,
    /// Drive the sessions through the API of these `callfeed serve` nodes (round robin)
    /// instead of in this process; the token is CALLFEED_API_TOKEN's.
    #[arg(long, value_name = "URL[,URL...]", value_delimiter = ',')]
    api: Vec<String>,
    /// With --emulator: callees answer after this many ms.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    callee_answers_after: u64,
    /// Lift the client-side limits at the documented cloud rates.
    #[arg(long)]
    no_rate_limits: bool,
    /// One JSON object on the last line instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(mut config: Config, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let mut template = template(&args)?;
    template.relay = args.relay.fields(&config);
    if !args.api.is_empty() {
        return through_api(args, template).await;
    }
    template
        .validate(
            &InputPolicy::Unrestricted,
            &Topologies::load(&config.pipelines)?,
            config.relay.as_ref(),
            Default::default(),
        )
        .await?;
    if args.no_rate_limits {
        config.http.rate_limits = false;
    }
    let emulator = if args.emulator {
        let default = Behaviour::Answer {
            after_ms: args.callee_answers_after,
            hangup_after_ms: None,
        };
        Some(Arc::new(
            app::start_embedded_emulator(&mut config, default, &[]).await?,
        ))
    } else {
        None
    };
    let cloud = Arc::new(app::cloud_clients(&config)?);
    let (progress_tx, progress_rx) = tokio::sync::watch::channel(LoadProgress::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let plan = LoadPlan {
        calls: args.calls,
        rate: args.rate,
        concurrency: args.concurrency.unwrap_or(args.calls),
        template,
        relay: config.relay.clone(),
    };
    // One stream server for every session of the run, as `serve` has.
    let server = crate::publish::StreamServer::start(([127, 0, 0, 1], 0).into()).await?;
    let mut settings = driver::DriverSettings::new(Arc::new(server));
    settings.room_witness = emulator.as_ref().map(app::room_witness);
    let run = crate::load::run(
        plan,
        cloud,
        settings,
        Topologies::load(&config.pipelines)?,
        progress_tx,
        stop_rx,
        first_media_lookup(emulator.as_ref()),
    );
    let report = watch_and_report(run, &args, stop_tx, progress_rx).await?;
    if let Some(e) = emulator
        && let Ok(e) = Arc::try_unwrap(e)
    {
        e.shutdown().await;
    }
    Ok(exit_code(&report))
}

/// Shows a run's progress until it ends (Ctrl-C ends it cleanly), then prints its report.
async fn watch_and_report(
    run: impl std::future::Future<Output = LoadReport>,
    args: &LoadArgs,
    stop_tx: tokio::sync::watch::Sender<bool>,
    progress_rx: tokio::sync::watch::Receiver<LoadProgress>,
) -> anyhow::Result<LoadReport> {
    let bar = progress::counter(u64::from(args.calls), args.json);
    let mut run = Stoppable::new(run, stop_tx, progress_rx, show_progress);
    let report = progress::watch(&mut run, &bar, std::time::Duration::from_millis(250)).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(report)
}

fn exit_code(report: &LoadReport) -> ExitCode {
    if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// The run through the HTTP API of deployed nodes: each node checks every request itself
/// (its media roots, its policy), so nothing is opened here.
async fn through_api(args: LoadArgs, template: SessionRequest) -> anyhow::Result<ExitCode> {
    for node in &args.api {
        let parsed = url::Url::parse(node).ok();
        if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https")) {
            anyhow::bail!(InvalidArgument::new(
                "--api",
                crate::redact::redact_url(node),
                "the http(s):// URL of a callfeed serve node, e.g. http://10.0.0.5:8730"
            ));
        }
    }
    // Keys are never sent over the API (a request shows none back): the nodes sign with
    // their own [relay] keys.
    if template
        .relay
        .as_ref()
        .is_some_and(|r| r.css_push_key.is_some() || r.css_play_key.is_some())
    {
        anyhow::bail!(InvalidArgument::new(
            "--css-push-key",
            "<redacted>",
            "no key with --api: set it on the nodes (CALLFEED_CSS_PUSH_KEY or `css_push_key` in their [relay])"
        ));
    }
    let plan = LoadPlan {
        calls: args.calls,
        rate: args.rate,
        concurrency: args.concurrency.unwrap_or(args.calls),
        template,
        relay: None,
    };
    let target = crate::load::api::ApiTarget {
        nodes: args.api.clone(),
        token: std::env::var("CALLFEED_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Into::into),
    };
    let (progress_tx, progress_rx) = tokio::sync::watch::channel(LoadProgress::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // A session runs its duration, rings, prepares and tears down: give it ample room.
    let max_session = std::time::Duration::from_secs(args.duration + 300);
    let run = crate::load::api::run(plan, target, max_session, progress_tx, stop_rx);
    let report = watch_and_report(run, &args, stop_tx, progress_rx).await?;
    Ok(exit_code(&report))
}

/// The session every call of the run plays; callee, room and robot are made unique per
/// session by the run.
fn template(args: &LoadArgs) -> anyhow::Result<SessionRequest> {
    if args.calls == 0 || args.rate.is_nan() || args.rate <= 0.0 {
        anyhow::bail!(InvalidArgument::new(
            "--calls/--rate",
            format!("{} at {}/s", args.calls, args.rate),
            "at least one call at a rate above zero"
        ));
    }
    Ok(SessionRequest {
        audio_track: None,
        to: vec!["callee".into()],
        media: args.media.clone(),
        room: "room".into(),
        room_type: "string".into(),
        robot: "robot".into(),
        // A request names media types in lower case.
        media_type: MediaType::from(args.media_type)
            .as_str()
            .to_ascii_lowercase(),
        profile: args.profile.map(|p| p.to_string()),
        ingest_at: "answer".into(),
        repeat: None,
        loop_forever: true,
        ring_timeout_secs: 30,
        max_duration_secs: Some(args.duration),
        live: false,
        direct: Some(args.direct.as_str().to_owned()),
        relay: None,
        ring: None,
        feed_wait_secs: None,
        on_feed_end: None,
        monitor: None,
        record: None,
    })
}

/// When each session's first media arrived in its room: only the emulator's room observer
/// knows; against the real cloud nobody does.
fn first_media_lookup(emulator: Option<&Arc<Emulator>>) -> FirstMediaLookup {
    match emulator {
        Some(e) => {
            let e = e.clone();
            Arc::new(move |r: &driver::Report| {
                let view = e.call_view(r.call_id.as_deref()?)?;
                view["media"].get(0)?["first_media_ms"].as_u64()
            })
        }
        None => Arc::new(|_: &driver::Report| None),
    }
}

fn show_progress(p: &LoadProgress, bar: &indicatif::ProgressBar) {
    bar.set_position(u64::from(p.finished));
    bar.set_message(format!(
        "{} started, {} running, {} ok, {} failed",
        p.started, p.running, p.succeeded, p.failed
    ));
}

fn print_report(report: &LoadReport) {
    println!(
        "{} sessions: {} succeeded, {} failed in {:.1} s ({} sessions/s)",
        report.calls,
        report.succeeded,
        report.failed,
        report.wall_seconds,
        report.sessions_per_second
    );
    let mut rows = vec![
        ("ring (start_call)", &report.ring_ms),
        ("answer", &report.answer_ms),
        ("ingest (StartStreamIngest)", &report.ingest_ms),
    ];
    if let Some(p) = &report.answer_to_first_media_ms {
        rows.push(("answer → first media", p));
    }
    rows.push(("whole session", &report.session_ms));
    // Aligned on the longest name, counted in characters (the arrow is one).
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, p) in rows {
        let pad = " ".repeat(width - name.chars().count());
        println!(
            "  {name}{pad}  p50 {:>6} ms  p95 {:>6} ms  p99 {:>6} ms  max {:>6} ms",
            p.p50, p.p95, p.p99, p.max
        );
    }
    for (code, n) in &report.failures_by_code {
        println!("  failed with {code}: {n}");
    }
    for (result, n) in &report.results {
        println!("  {result}: {n}");
    }
}
