//! `callfeed push`: turns an input into a stream a cloud can pull. A file becomes an
//! announcement MP4 served with Range (or written with `--mp4`); anything else, or a file
//! with `--live`, becomes a live HTTP-FLV stream, an RTMP push, or both.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::ProgressBar;
use tokio::sync::broadcast;

use super::progress::{self, Watched};
use crate::app;
use crate::cloud::{InvalidArgument, css};
use crate::config::Config;
use crate::media::contract::{Contract, Profile};
use crate::media::input::InputSpec;
use crate::media::inspect::ProbeReport;
use crate::media::live::{LiveSettings, LiveStream, Loops, MediaEvent};
use crate::media::plan::{Mode, PlanOptions, plan};
use crate::media::topology::Topologies;
use crate::publish::StreamServer;

#[derive(Args)]
pub(super) struct PushArgs {
    /// File, URL, playlist:, test: source or device (see the README's input table).
    input: String,
    /// Serve the stream over HTTP on this address (a free port when none is given): a file
    /// as an MP4 announcement (as HTTP-FLV with --live), anything else as live HTTP-FLV.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:0", value_name = "ADDR", value_parser = super::args::listen_addr)]
    serve: Option<std::net::SocketAddr>,
    /// Push to this RTMP URL (nginx-rtmp, SRS, Tencent CSS with txSecret...).
    #[arg(long, value_name = "URL")]
    rtmp: Option<String>,
    /// Push to Tencent CSS on this push domain: the push URL is signed (txSecret/txTime) and
    /// the matching play URL (HTTP-FLV) is printed, ready for StartStreamIngest.
    #[arg(long, value_name = "DOMAIN", conflicts_with = "rtmp", requires_all = ["css_play_domain", "css_stream", "css_push_key"])]
    css_push_domain: Option<String>,
    /// The CSS playback domain; the signed play URL uses it.
    #[arg(long, value_name = "DOMAIN")]
    css_play_domain: Option<String>,
    /// The CSS application name.
    #[arg(long, default_value = "live", value_name = "APP")]
    css_app: String,
    /// The CSS stream name.
    #[arg(long, value_name = "NAME")]
    css_stream: Option<String>,
    #[arg(
        long,
        env = "CALLFEED_CSS_PUSH_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    /// The push domain's auth key.
    css_push_key: Option<String>,
    /// The play domain's auth key, when playback authentication is on.
    #[arg(
        long,
        env = "CALLFEED_CSS_PLAY_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    css_play_key: Option<String>,
    /// Seconds the signed URLs stay valid.
    #[arg(long, default_value_t = 86_400, value_name = "SECS")]
    css_valid_for: u64,
    /// Transcode to this MP4 file (faststart, meeting the contract) and exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["serve", "rtmp"])]
    mp4: Option<PathBuf>,
    /// Replace the --mp4 file if it exists.
    #[arg(long, short = 'y')]
    force: bool,
    /// Stream a file live (HTTP-FLV) instead of serving it as an announcement MP4.
    #[arg(long)]
    live: bool,
    /// Served URLs stop working this many seconds from now.
    #[arg(long, value_name = "SECS")]
    expire: Option<u64>,
    /// Output profile.
    #[arg(long, default_value = "720p", value_parser = super::args::profile_values())]
    profile: Profile,
    /// Play the input N times, or `forever`.
    #[arg(long = "loop", default_value = "1", value_name = "N|forever")]
    loops: Loops,
    /// Start this many seconds into the first file.
    #[arg(long, value_name = "SECS")]
    start: Option<f64>,
    /// Print the stream's counters as one JSON line a second on stdout, for scripts.
    #[arg(long)]
    stats: bool,
    /// Still image shown when the input is gone, and for audio-only inputs instead of their
    /// cover art; black otherwise.
    #[arg(long, value_name = "IMAGE")]
    slate: Option<PathBuf>,
    /// A file's audio track: its number as `callfeed probe` lists them (0 is the first) or
    /// its language code (`en`, `eng`); the first when not given.
    #[arg(long, value_name = "N|LANG")]
    audio_track: Option<crate::media::inspect::tracks::AudioTrack>,
    #[command(flatten)]
    input_size: super::args::InputSizeArgs,
}

pub(super) async fn run(config: &Config, mut args: PushArgs) -> anyhow::Result<ExitCode> {
    let play_url = sign_css(&mut args)?;
    if args.serve.is_none() && args.rtmp.is_none() && args.mp4.is_none() {
        anyhow::bail!(InvalidArgument::new(
            "output",
            "none",
            "--serve [ADDR], --rtmp URL or --mp4 FILE"
        ));
    }
    if let Some(url) = &args.rtmp {
        let scheme = url::Url::parse(url).map(|u| u.scheme().to_owned());
        if !matches!(scheme.as_deref(), Ok("rtmp" | "rtmps")) {
            anyhow::bail!(InvalidArgument::new(
                "--rtmp",
                crate::redact::redact_url(url),
                "an rtmp:// or rtmps:// URL (for HTTP-FLV, serve with --serve instead)"
            ));
        }
    }
    let spec = InputSpec::parse(&args.input)?;
    if let Some(out) = &args.mp4 {
        check_mp4_output(&spec, out, &args)?;
    }
    let contract = Contract::new(args.profile);
    let topologies = Topologies::load(&config.pipelines)?;
    // A custom: or device input whose pipeline cannot be built is named before anything runs.
    spec.check_sources(&topologies)?;
    let report = probe_input(&spec, contract, &args).await?;
    // An MP4 file is always the announcement; a served stream is one unless --live.
    let plan = plan(
        &spec,
        report.as_ref(),
        PlanOptions {
            live: args.live && args.mp4.is_none(),
            start: args.start.map(Duration::from_secs_f64),
            file_output: args.mp4.is_some() || (args.serve.is_some() && args.rtmp.is_none()),
            // push is the stream a cloud pulls: it never hands its input over.
            direct: crate::media::plan::Direct::Never,
        },
    );
    let mut settings = LiveSettings::new(contract);
    settings.loops = args.loops;
    settings.start = args.start.map(Duration::from_secs_f64);
    settings.input_bounds = args.input_size.into();
    settings.follow(report.as_ref(), args.slate.as_deref());
    let stream = match plan.mode {
        Mode::Announcement { path, .. } => {
            let report = report.as_ref().expect("an announcement was probed");
            return announcement(&path, report, contract, &topologies, &args).await;
        }
        _ if args.mp4.is_some() => {
            anyhow::bail!(InvalidArgument::new(
                "--mp4",
                &args.input,
                "a local audio or video file: a still picture, a URL, a playlist or a live source has no end to write, so it is streamed live (push it with --serve or --rtmp, or give it to a call)"
            ));
        }
        mode => {
            if let Mode::Passthrough { .. } = mode {
                eprintln!("passthrough: {}", plan.reason);
            }
            crate::media::stream::start(&mode, &spec, settings, &topologies)?
        }
    };
    let events = stream.events();
    let server = match args.serve {
        Some(addr) => {
            let server = StreamServer::start(addr).await?;
            let url = server.publish_live(stream.hub(), expiry(args.expire));
            println!("{url}");
            Some(server)
        }
        None => None,
    };
    let rtmp = match &args.rtmp {
        Some(url) => {
            // A signed push URL is a credential: print the play URL instead.
            println!("{}", play_url.as_deref().unwrap_or(url));
            Some(crate::media::rtmp::RtmpOutput::start(
                stream.hub(),
                url.clone(),
            )?)
        }
        None => None,
    };
    let mut pushing = Pushing {
        stream: Some(stream),
        events,
        print_stats: args.stats,
        last_bytes: 0,
        line: progress::spinner(false),
    };
    let line = pushing.line.clone();
    let result = progress::watch(&mut pushing, &line, Duration::from_secs(1)).await?;
    if let Some(rtmp) = rtmp {
        rtmp.stop().await;
    }
    drop(server);
    let reason = result?;
    eprintln!("stream ended: {reason}");
    Ok(ExitCode::SUCCESS)
}

/// Tencent CSS: signs the push URL into `--rtmp` and returns the play URL a puller is
/// given, when the `--css-*` flags are there; checked and signed as a session's relay is.
fn sign_css(args: &mut PushArgs) -> anyhow::Result<Option<String>> {
    let (Some(push), Some(play), Some(stream), Some(key)) = (
        &args.css_push_domain,
        &args.css_play_domain,
        &args.css_stream,
        &args.css_push_key,
    ) else {
        return Ok(None);
    };
    let fields = crate::publish::relay::RelayFields {
        css_push_domain: Some(push.clone()),
        css_play_domain: Some(play.clone()),
        css_push_key: Some(key.clone().into()),
        css_play_key: args.css_play_key.clone().map(Into::into),
        css_app: Some(args.css_app.clone()),
        ..Default::default()
    };
    let relay = fields.validate()?.expect("the CSS fields name a relay");
    css::CssStream::new(push, play, &args.css_app, stream)?;
    let expires_at = crate::clock::unix_secs() + args.css_valid_for;
    let endpoints = relay.endpoints(stream, expires_at);
    args.rtmp = Some(secrecy::ExposeSecret::expose_secret(&endpoints.push).to_owned());
    Ok(Some(endpoints.play))
}

/// The MP4 output never destroys the input nor, without `--force`, an existing file, and its
/// folder exists; `--loop` and `--start` are for streams, so they are refused rather than
/// silently ignored. All of it is checked before anything is read.
fn check_mp4_output(input: &InputSpec, out: &Path, args: &PushArgs) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if args.loops != Loops::Times(1) || args.start.is_some() {
        anyhow::bail!(InvalidArgument::new(
            "--mp4",
            out.display(),
            "without --loop or --start: the MP4 holds the input once from its start (a call loops an announcement itself with --repeat)"
        ));
    }
    let folder = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        anyhow::bail!(InvalidArgument::new(
            "--mp4",
            out.display(),
            format!(
                "a file in an existing folder (`{}` does not exist)",
                folder.display()
            )
        ));
    }
    let Ok(existing) = std::fs::metadata(out) else {
        return Ok(());
    };
    // The same file, also through a link or another path.
    if let InputSpec::File(path) = input
        && let Ok(source) = std::fs::metadata(path)
        && (source.dev(), source.ino()) == (existing.dev(), existing.ino())
    {
        anyhow::bail!(InvalidArgument::new(
            "--mp4",
            out.display(),
            "a path other than the input's (writing there would destroy the input)"
        ));
    }
    if !args.force {
        anyhow::bail!(InvalidArgument::new(
            "--mp4",
            out.display(),
            "a path where no file exists yet, or add --force to replace it"
        ));
    }
    Ok(())
}

/// Files, playlists and URLs are probed first, so a missing, corrupt or non-media input is
/// named before anything starts. Devices and test sources have nothing to probe.
async fn probe_input(
    spec: &InputSpec,
    contract: Contract,
    args: &PushArgs,
) -> anyhow::Result<Option<ProbeReport>> {
    if !matches!(
        spec,
        InputSpec::File(_) | InputSpec::Playlist(_) | InputSpec::Url(_)
    ) {
        return Ok(None);
    }
    let spec = spec.clone();
    let options = crate::media::inspect::ProbeOptions {
        audio_track: args.audio_track.clone().unwrap_or_default(),
        bounds: args.input_size.into(),
        ..Default::default()
    };
    let report = tokio::task::spawn_blocking(move || {
        crate::media::inspect::probe_with(&spec, contract, &options)
    })
    .await??;
    Ok(Some(report))
}

fn expiry(secs: Option<u64>) -> Option<Instant> {
    secs.map(|s| Instant::now() + Duration::from_secs(s))
}

/// A live stream on the status line: state, frames, bitrate, readers, restarts, time on
/// the slate; its events are printed above the line as JSON lines on stderr.
struct Pushing {
    /// Taken when Ctrl-C stops it.
    stream: Option<LiveStream>,
    events: broadcast::Receiver<MediaEvent>,
    /// `--stats`: the counters as one JSON line a second on stdout, for scripts.
    print_stats: bool,
    last_bytes: u64,
    line: ProgressBar,
}

impl Watched for Pushing {
    /// The stream's own end (or failure); an event that cannot be printed ends it too.
    type Output = anyhow::Result<String>;

    async fn finished(&mut self) -> Self::Output {
        let Some(stream) = self.stream.as_mut() else {
            return Ok("stopped".into());
        };
        loop {
            tokio::select! {
                result = stream.wait() => return Ok(result?),
                event = self.events.recv() => {
                    if let Ok(event) = event
                        && !matches!(event, MediaEvent::FirstMedia)
                    {
                        // On stderr, one JSON line each, on a terminal or not (a hidden
                        // bar's println would drop them).
                        let line = serde_json::to_string(&event)?;
                        self.line.suspend(|| eprintln!("{line}"));
                    }
                }
            }
        }
    }

    async fn interrupted(&mut self) -> Option<Self::Output> {
        Some(match self.stream.take() {
            Some(stream) => stream.stop().await.map_err(Into::into),
            None => Ok("stopped".into()),
        })
    }

    fn refresh(&mut self, line: &ProgressBar) -> anyhow::Result<()> {
        let Some(stream) = &self.stream else {
            return Ok(());
        };
        let s = stream.stats();
        if self.print_stats {
            println!("{}", serde_json::to_string(&s)?);
        }
        let kbps = (s.bytes_out - self.last_bytes) * 8 / 1000;
        self.last_bytes = s.bytes_out;
        line.set_message(format!(
            "{} | item {} loop {} at {:.1} s | {} frames out, {} in, {} repeated | {kbps} kb/s | {} readers | {} restarts | slate {:.1} s",
            s.state.name(), s.item, s.iteration + 1, s.position_ms as f64 / 1000.0,
            s.frames_out, s.frames_in, s.repeated_frames, s.readers, s.restarts,
            s.slate_ms as f64 / 1000.0
        ));
        line.tick();
        Ok(())
    }
}

/// A file as an announcement: transcoded once (cached) or passed through, then served with
/// Range until Ctrl-C; or written to `--mp4`.
async fn announcement(
    path: &Path,
    report: &ProbeReport,
    contract: Contract,
    topologies: &Topologies,
    args: &PushArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.mp4 {
        progress::transcoding(
            format!("{} was not written", out.display()),
            async |progress| {
                crate::media::announce::write_mp4(
                    path,
                    report,
                    args.slate.as_deref(),
                    contract,
                    topologies,
                    out,
                    progress,
                )
                .await
            },
        )
        .await?;
        println!("{}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let bar = progress::fraction();
    bar.set_message("transcoding");
    let progress = |f: f64| bar.set_position((f * 1000.0) as u64);
    let dir = crate::media::announce::default_cache_dir();
    let slate = args.slate.as_deref();
    let file =
        crate::media::announce::prepare(path, report, slate, contract, topologies, &dir, &progress)
            .await?;
    bar.finish_and_clear();
    let addr = args
        .serve
        .unwrap_or_else(|| "127.0.0.1:0".parse().expect("an address"));
    let server = StreamServer::start(addr).await?;
    println!("{}", server.publish_file(file.clone(), expiry(args.expire)));
    eprintln!(
        "serving {} ({}); Ctrl-C to stop",
        file.display(),
        if report.passthrough {
            "passthrough"
        } else {
            "transcoded"
        }
    );
    app::shutdown_signal().await;
    Ok(ExitCode::SUCCESS)
}
