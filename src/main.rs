//! The `callfeed` command line: parse, load the configuration, call into the library, and
//! turn the outcome into output and an exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use callfeed::app;
use callfeed::cloud::call::{
    self, DeleteCallback, EndCall, GetCallInfo, GetCallback, GetRecordByCallId, GetRecordByFilter,
    MediaType, SetCallback, StartCallByRobot,
};
use callfeed::cloud::ingest::{
    DescribeStreamIngest, StartStreamIngest, StopStreamIngest, UpdateStreamIngest,
};
use callfeed::cloud::webhook::CallWebhook;
use callfeed::cloud::{
    CloudError, InvalidArgument, RoomKind, RoomRef, Transport, UserId, css, usersig,
};
use callfeed::config::{Config, ConfigError};
use callfeed::emulator::{Emulator, EmulatorConfig, Pace};
use callfeed::media::contract::{Contract, Profile};
use callfeed::media::engine::{LiveSettings, LiveStream, Loops, MediaEvent};
use callfeed::media::input::InputSpec;
use callfeed::media::topology::Topologies;

/// Exit code for input refused before anything was sent (clap uses 2 for usage errors too).
const EXIT_INVALID: u8 = 2;
/// Exit code for a failure reported by, or on the way to, the cloud.
const EXIT_FAILED: u8 = 1;

#[derive(Parser)]
#[command(
    name = "callfeed",
    version,
    about = "Put media into real-time calls from the server side"
)]
struct Cli {
    /// TOML configuration file (default: $CALLFEED_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `callfeed=debug` (default: $CALLFEED_LOG or `warn`).
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Print callfeed's and GStreamer's versions.
    Version,
    /// Make a UserSig for USER, or check one with --verify.
    Usersig(UsersigArgs),
    /// Make a PrivateMapKey that lets USER into one room only.
    PrivateMapKey(PrivateMapKeyArgs),
    /// Print signed Tencent CSS push and play URLs for a stream.
    CssUrl(CssUrlArgs),
    /// Send one call-engine command or StreamIngest action and print the answer as JSON.
    Api(ApiArgs),
    /// Run a local Tencent cloud (call engine + TRTC ingest + room observer) until Ctrl-C.
    Emulator(EmulatorArgs),
    /// Ring users from a robot and bind media into the call's room, until the call ends.
    Call(Box<CallArgs>),
    /// Run the HTTP service: sessions API, webhooks, metrics; recovers a crashed run first.
    Serve(Box<ServeArgs>),
    /// Place many full sessions at a given rate and report per-stage latency.
    Load(LoadArgs),
    /// Say what an input is, whether it passes through, and the contract it gets.
    Probe(ProbeArgs),
    /// Turn an input into a stream a cloud can pull: served HTTP-FLV or an RTMP push.
    Push(PushArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum IngestAtArg {
    Answer,
    Ring,
}

#[derive(Args)]
struct CallArgs {
    /// A callee; repeat for a group call (at most 8).
    #[arg(long = "to", value_name = "USER", required = true)]
    to: Vec<String>,
    /// What to play: a file, URL, test: source or device (see `callfeed push`).
    #[arg(long, value_name = "INPUT")]
    media: String,
    #[command(flatten)]
    room: RoomArgs,
    /// The robot account that calls (and whose UserID the stream uses in the room).
    #[arg(long, default_value = "robot")]
    robot: String,
    #[arg(long, value_enum, default_value = "video")]
    media_type: MediaTypeArg,
    /// Output profile (default: audio for audio calls, 720p for video calls).
    #[arg(long)]
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
    /// Where the stream server listens; the cloud must reach it (see --public-url).
    #[arg(long, default_value = "127.0.0.1:0")]
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
    /// One JSON report at the end instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LoadArgs {
    #[arg(long)]
    calls: u32,
    /// Sessions started per second.
    #[arg(long)]
    rate: f64,
    /// Sessions running at once, at most (default: all).
    #[arg(long)]
    concurrency: Option<u32>,
    #[arg(long, value_name = "INPUT")]
    media: String,
    /// How long each session plays before it ends.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    duration: u64,
    #[arg(long, value_enum, default_value = "audio")]
    media_type: MediaTypeArg,
    #[arg(long)]
    profile: Option<Profile>,
    /// Run against the in-process emulator.
    #[arg(long)]
    emulator: bool,
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

#[derive(Args)]
struct ServeArgs {
    /// The API and the session streams (`/live/...`, `/files/...`) are served here.
    #[arg(long, default_value = "127.0.0.1:8730")]
    listen: std::net::SocketAddr,
    /// The base URL the cloud reaches this server at, when it is not the listen address.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The session journal (default: $XDG_STATE_HOME/callfeed/journal.sqlite).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// API clients may play files under this folder (repeatable; none: no files at all).
    #[arg(long, value_name = "DIR")]
    media_root: Vec<PathBuf>,
    /// API clients may use capture devices and custom source topologies.
    #[arg(long)]
    allow_devices: bool,
    /// API clients may name this URL host even though it is private or loopback (repeatable).
    #[arg(long, value_name = "HOST")]
    allow_url_host: Vec<String>,
    /// Serve the API without a token on a non-loopback address (CALLFEED_API_TOKEN unset).
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Do not receive call-engine and TRTC webhooks (sessions poll the cloud instead).
    #[arg(long)]
    no_webhooks: bool,
    /// Sessions running at once; more are answered 429 (default: 4 per core).
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// How long an ended session stays readable over the API, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    keep_ended: u64,
    /// Open connections at most; one more is closed at once.
    #[arg(long, value_name = "N", default_value_t = callfeed::serve::http::DEFAULT_MAX_CONNECTIONS)]
    #[arg(value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
}

#[derive(Args)]
struct ProbeArgs {
    /// File, URL, playlist:, test: or device (see the README's input table).
    input: String,
    #[arg(long, default_value = "720p")]
    profile: Profile,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PushArgs {
    input: String,
    /// Serve live HTTP-FLV on this address (a free port when none is given).
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:0", value_name = "ADDR")]
    serve: Option<std::net::SocketAddr>,
    /// Push to this RTMP URL (nginx-rtmp, SRS, Tencent CSS with txSecret...).
    #[arg(long, value_name = "URL")]
    rtmp: Option<String>,
    /// Push to Tencent CSS on this push domain: the push URL is signed (txSecret/txTime) and
    /// the matching play URL (HTTP-FLV) is printed, ready for StartStreamIngest.
    #[arg(long, value_name = "DOMAIN", conflicts_with = "rtmp", requires_all = ["css_play_domain", "css_stream", "css_push_key"])]
    css_push_domain: Option<String>,
    #[arg(long, value_name = "DOMAIN")]
    css_play_domain: Option<String>,
    #[arg(long, default_value = "live", value_name = "APP")]
    css_app: String,
    #[arg(long, value_name = "NAME")]
    css_stream: Option<String>,
    #[arg(
        long,
        env = "CALLFEED_CSS_PUSH_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
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
    /// Stream a file live (HTTP-FLV) instead of serving it as an announcement MP4.
    #[arg(long)]
    live: bool,
    /// Served URLs stop working this many seconds from now.
    #[arg(long, value_name = "SECS")]
    expire: Option<u64>,
    #[arg(long, default_value = "720p")]
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
    /// Still image shown when the input is gone (and for audio-only inputs); black otherwise.
    #[arg(long, value_name = "IMAGE")]
    slate: Option<PathBuf>,
}

#[derive(Args)]
struct EmulatorArgs {
    /// Address to serve both APIs and the control API on.
    #[arg(long, default_value = "127.0.0.1:8720")]
    listen: std::net::SocketAddr,
    /// How the room observer consumes streams (default: the config's, else realtime).
    #[arg(long, value_enum)]
    pace: Option<PaceArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PaceArg {
    Realtime,
    Fast,
}

#[derive(Args)]
struct UsersigArgs {
    /// The UserID to sign for.
    #[arg(required_unless_present = "verify")]
    user: Option<String>,
    /// Seconds of validity.
    #[arg(long, default_value_t = usersig::DEFAULT_EXPIRE_SECS)]
    expire: u64,
    /// Unix time to sign at, or to check expiry against (default: now).
    #[arg(long, value_name = "UNIX")]
    time: Option<u64>,
    /// A UserSig to check instead of making one.
    #[arg(long, value_name = "SIG", requires = "verify_user")]
    verify: Option<String>,
    /// The UserID the checked UserSig must belong to.
    #[arg(long = "user", value_name = "USER", id = "verify_user")]
    verify_user: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoomTypeArg {
    String,
    Numeric,
}

impl From<RoomTypeArg> for RoomKind {
    fn from(r: RoomTypeArg) -> Self {
        match r {
            RoomTypeArg::String => RoomKind::String,
            RoomTypeArg::Numeric => RoomKind::Numeric,
        }
    }
}

#[derive(Args)]
struct RoomArgs {
    /// Room id; digits for a numeric room.
    #[arg(long, value_name = "ID")]
    room: String,
    /// How the room is numbered; the callee's app must join the same kind.
    #[arg(long, value_enum, default_value = "string")]
    room_type: RoomTypeArg,
}

impl RoomArgs {
    fn room(&self) -> Result<RoomRef, InvalidArgument> {
        RoomRef::new(&self.room, self.room_type.into())
    }
}

#[derive(Args)]
struct PrivateMapKeyArgs {
    user: String,
    #[command(flatten)]
    room: RoomArgs,
    /// Privilege bits: 1 create, 2 enter, 4 send audio, 8 receive audio, 16 send video,
    /// 32 receive video, 64 send sub-stream, 128 receive sub-stream.
    #[arg(long, default_value_t = usersig::privilege::ALL)]
    privilege: u32,
    #[arg(long, default_value_t = 86_400)]
    expire: u32,
    #[arg(long, value_name = "UNIX")]
    time: Option<u32>,
}

#[derive(Args)]
struct CssUrlArgs {
    #[arg(long)]
    push_domain: String,
    #[arg(long)]
    play_domain: String,
    #[arg(long, default_value = "live")]
    app: String,
    #[arg(long)]
    stream: String,
    /// The push domain's auth key (MasterAuthKey or BackupAuthKey).
    #[arg(long, env = "CALLFEED_CSS_PUSH_KEY", hide_env_values = true)]
    push_key: String,
    /// The play domain's auth key, when playback authentication is on.
    #[arg(long, env = "CALLFEED_CSS_PLAY_KEY", hide_env_values = true)]
    play_key: Option<String>,
    /// Seconds from now until the URLs expire.
    #[arg(long, default_value_t = 86_400)]
    valid_for: u64,
    /// Absolute expiry (Unix seconds) instead of --valid-for.
    #[arg(long, value_name = "UNIX")]
    expire_at: Option<u64>,
}

#[derive(Args)]
struct ApiArgs {
    /// Print the exact request ({"method","url","headers","body"}) instead of sending it.
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: ApiCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum MediaTypeArg {
    Audio,
    Video,
}

#[derive(Subcommand)]
enum ApiCommand {
    /// start_call_by_robot: ring callees from a robot account.
    StartCall {
        #[arg(long)]
        robot: String,
        /// A callee; repeat for a group call (at most 8).
        #[arg(long = "to", value_name = "USER")]
        to: Vec<String>,
        #[command(flatten)]
        room: RoomArgs,
        #[arg(long, value_enum, default_value = "video")]
        media_type: MediaTypeArg,
        /// Seconds the callees' phones ring (10 to 600).
        #[arg(long, default_value_t = call::DEFAULT_RING_TIMEOUT_MS / 1000, value_name = "SECS")]
        ring_timeout: u32,
        /// Opaque data passed to the callees (at most 1000 bytes).
        #[arg(long)]
        user_data: Option<String>,
        /// OfflinePushInfo as a JSON object.
        #[arg(long, value_name = "JSON")]
        offline_push: Option<String>,
    },
    /// end_call: end a call for everyone.
    EndCall {
        #[arg(long)]
        call_id: String,
    },
    /// get_call_info: members and their states in a live call.
    GetCallInfo {
        #[arg(long)]
        call_id: String,
    },
    /// get_record_by_callid: the record of a finished call.
    GetRecord {
        #[arg(long)]
        call_id: String,
    },
    /// get_record_by_filter: records of the last 7 days.
    GetRecords {
        #[arg(long, value_name = "UNIX")]
        start_time: Option<i64>,
        #[arg(long, value_name = "UNIX")]
        end_time: Option<i64>,
        #[arg(long)]
        per_page: Option<u32>,
        #[arg(long)]
        page: Option<u32>,
        #[arg(long)]
        call_result: Option<String>,
        #[arg(long)]
        call_type: Option<String>,
    },
    /// set_callback: where the call engine posts its webhooks.
    SetCallback {
        #[arg(long)]
        url: String,
        /// A callback command; repeat for several (default: all three).
        #[arg(long = "command", value_name = "NAME")]
        commands: Vec<String>,
    },
    /// get_callback: the webhook configuration.
    GetCallback,
    /// delete_callback: remove the webhook configuration.
    DeleteCallback,
    /// StartStreamIngest: pull a URL into a room.
    StartIngest {
        #[command(flatten)]
        room: RoomArgs,
        /// The UserID the stream appears as in the room.
        #[arg(long)]
        user: String,
        /// http://, https:// or rtmp:// source.
        #[arg(long)]
        url: String,
        /// Use this UserSig instead of minting one from the app key.
        #[arg(long, hide = true)]
        user_sig: Option<String>,
        #[arg(long)]
        private_map_key: Option<String>,
        /// Plays (1 to 1000), or -1 to loop until stopped.
        #[arg(long, allow_hyphen_values = true)]
        repeat: Option<i32>,
        /// Minutes a looping task may run (1 to 10080); needs --repeat -1.
        #[arg(long, value_name = "MINUTES")]
        max_duration: Option<u32>,
        #[arg(long, value_name = "SECS")]
        seek: Option<u32>,
        #[arg(long)]
        volume: Option<u32>,
        #[arg(long)]
        auto_push: bool,
        #[arg(long)]
        enable_progress: bool,
        #[arg(long)]
        tempo: Option<f32>,
        #[arg(long, value_name = "SECS")]
        idle_timeout: Option<u32>,
    },
    /// StopStreamIngest.
    StopIngest {
        #[arg(long)]
        task_id: String,
    },
    /// DescribeStreamIngest: InProgress or NotExist.
    DescribeIngest {
        #[arg(long)]
        task_id: String,
    },
    /// UpdateStreamIngest: change the URL, volume or pause state.
    UpdateIngest {
        #[arg(long)]
        task_id: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        volume: Option<u32>,
        #[arg(long, conflicts_with = "resume")]
        pause: bool,
        #[arg(long)]
        resume: bool,
        #[arg(long)]
        tempo: Option<f32>,
    },
}

fn init_tracing(filter: Option<&str>) {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("CALLFEED_LOG").ok())
        .unwrap_or_else(|| "warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log.as_deref());
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            let invalid = err.chain().any(|e| {
                e.is::<InvalidArgument>()
                    || e.is::<ConfigError>()
                    || e.is::<callfeed::media::input::InputError>()
                    || e.is::<callfeed::media::probe::ProbeError>()
                    || e.is::<callfeed::media::topology::TopologyError>()
                    || matches!(e.downcast_ref::<CloudError>(), Some(CloudError::Invalid(_)))
            });
            ExitCode::from(if invalid { EXIT_INVALID } else { EXIT_FAILED })
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    let command = cli.command;
    match command {
        Command::Config => {
            print!("{}", config.render_redacted());
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("callfeed {}", env!("CARGO_PKG_VERSION"));
            match callfeed::media::runtime_version() {
                Ok(v) => println!("{v}"),
                Err(e) => println!("GStreamer: unavailable ({e})"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Usersig(args) => usersig_command(&config, args),
        Command::PrivateMapKey(args) => {
            let user = UserId::new("USER", &args.user)?;
            let room = args.room.room()?;
            let sdkappid = u32::try_from(config.require_sdkappid()?)
                .context("PrivateMapKey needs a 32-bit SDKAppID")?;
            let key = config.require_sdk_secret_key()?;
            let now = args.time.unwrap_or(unix_now() as u32);
            println!(
                "{}",
                usersig::generate_private_map_key(
                    sdkappid,
                    key.expose_secret().as_bytes(),
                    user.as_str(),
                    &room,
                    args.privilege,
                    args.expire,
                    now
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::CssUrl(args) => {
            let stream = css::CssStream::new(
                &args.push_domain,
                &args.play_domain,
                &args.app,
                &args.stream,
            )?;
            let expires_at = args.expire_at.unwrap_or(unix_now() + args.valid_for);
            let play_key = args.play_key.as_deref();
            print_json(&serde_json::json!({
                "push_rtmp": stream.rtmp_push_url(&args.push_key, expires_at),
                "play_rtmp": stream.rtmp_play_url(play_key, expires_at),
                "play_flv": stream.flv_play_url(play_key, expires_at, true),
                "play_hls": stream.hls_play_url(play_key, expires_at, true),
                "expires_at": expires_at,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Api(args) => api_command(&config, args).await,
        Command::Call(args) => call_command(config, *args).await,
        Command::Serve(args) => serve_command(&config, *args).await,
        Command::Load(args) => load_command(config, args).await,
        Command::Probe(args) => probe_command(args).await,
        Command::Push(args) => push_command(&config, args).await,
        Command::Emulator(args) => {
            let mut settings = EmulatorConfig::from_config(&config)?;
            if let Some(pace) = args.pace {
                settings.pace = match pace {
                    PaceArg::Realtime => Pace::Realtime,
                    PaceArg::Fast => Pace::Fast,
                };
            }
            let emulator = Emulator::start(settings, args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            // Exactly one JSON line on stdout: what a client needs to point at.
            println!("{}", serde_json::to_string(&emulator.endpoints())?);
            app::shutdown_signal().await;
            emulator.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn probe_command(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let spec = InputSpec::parse(&args.input)?;
    let contract = Contract::new(args.profile);
    let report =
        tokio::task::spawn_blocking(move || callfeed::media::probe::probe(&spec, contract))
            .await??;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("input       {} ({})", report.input, report.kind);
        if let Some(c) = &report.container {
            println!("container   {c}");
        }
        if let Some(d) = report.duration_ms {
            println!("duration    {:.3} s", d as f64 / 1000.0);
        }
        if let Some(v) = &report.video {
            println!(
                "video       {} {} {}x{} @ {:.2} fps{}",
                v.codec,
                v.profile.as_deref().unwrap_or(""),
                v.width,
                v.height,
                v.fps,
                if v.still_image { " (still image)" } else { "" }
            );
        }
        if let Some(a) = &report.audio {
            println!("audio       {} {} Hz, {} ch", a.codec, a.rate, a.channels);
        }
        println!("contract    {}", args.profile);
        println!(
            "passthrough {} — {}",
            if report.passthrough { "yes" } else { "no" },
            report.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn load_command(mut config: Config, args: LoadArgs) -> anyhow::Result<ExitCode> {
    use callfeed::session::{SessionRequest, driver};
    if args.calls == 0 || args.rate.is_nan() || args.rate <= 0.0 {
        anyhow::bail!(InvalidArgument::new(
            "--calls/--rate",
            format!("{} at {}/s", args.calls, args.rate),
            "at least one call at a rate above zero"
        ));
    }
    // Callee, room and robot are made unique per session by the run.
    let template = SessionRequest {
        to: vec!["callee".into()],
        media: args.media.clone(),
        room: "room".into(),
        room_type: "string".into(),
        robot: "robot".into(),
        media_type: match args.media_type {
            MediaTypeArg::Audio => "audio".into(),
            MediaTypeArg::Video => "video".into(),
        },
        profile: args.profile.map(|p| p.to_string()),
        ingest_at: "answer".into(),
        repeat: None,
        loop_forever: true,
        ring_timeout_secs: 30,
        max_duration_secs: Some(args.duration),
        live: false,
    };
    template
        .validate(
            &callfeed::media::policy::InputPolicy::Unrestricted,
            &Topologies::load(&config.pipelines)?,
        )
        .await?;
    if args.no_rate_limits {
        config.http.rate_limits = false;
    }
    let emulator = if args.emulator {
        let default = callfeed::emulator::Behaviour::Answer {
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
    let first_media: callfeed::load::FirstMediaLookup = match &emulator {
        Some(e) => {
            let e = e.clone();
            Arc::new(move |r: &driver::Report| {
                let view = e.call_view(r.call_id.as_deref()?)?;
                view["media"].get(0)?["first_media_ms"].as_u64()
            })
        }
        None => Arc::new(|_: &driver::Report| None),
    };
    let (progress_tx, mut progress_rx) =
        tokio::sync::watch::channel(callfeed::load::LoadProgress::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let plan = callfeed::load::LoadPlan {
        calls: args.calls,
        rate: args.rate,
        concurrency: args.concurrency.unwrap_or(args.calls),
        template,
    };
    let run = callfeed::load::run(
        plan,
        cloud,
        driver::DriverSettings::default(),
        Topologies::load(&config.pipelines)?,
        progress_tx,
        stop_rx,
        first_media,
    );
    tokio::pin!(run);
    let bar = indicatif::ProgressBar::new(u64::from(args.calls));
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} done | {msg} | {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let report = loop {
        tokio::select! {
            report = &mut run => break report,
            _ = app::shutdown_signal() => { let _ = stop_tx.send(true); }
            _ = tick.tick() => {
                let p = progress_rx.borrow_and_update().clone();
                bar.set_position(u64::from(p.finished));
                bar.set_message(format!("{} started, {} running, {} ok, {} failed", p.started, p.running, p.succeeded, p.failed));
            }
        }
    };
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} sessions: {} succeeded, {} failed in {:.1} s ({} sessions/s)",
            report.calls,
            report.succeeded,
            report.failed,
            report.wall_seconds,
            report.sessions_per_second
        );
        let row = |name: &str, p: &callfeed::load::Percentiles| {
            println!(
                "  {name:<24} p50 {:>6} ms  p95 {:>6} ms  p99 {:>6} ms  max {:>6} ms",
                p.p50, p.p95, p.p99, p.max
            );
        };
        row("ring (start_call)", &report.ring_ms);
        row("answer", &report.answer_ms);
        row("ingest (StartStreamIngest)", &report.ingest_ms);
        if let Some(p) = &report.answer_to_first_media_ms {
            row("answer → first media", p);
        }
        row("whole session", &report.session_ms);
        for (code, n) in &report.failures_by_code {
            println!("  failed with {code}: {n}");
        }
        for (result, n) in &report.results {
            println!("  {result}: {n}");
        }
    }
    if let Some(e) = emulator
        && let Ok(e) = Arc::try_unwrap(e)
    {
        e.shutdown().await;
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// The secret in an environment variable, if set and not empty.
fn secret_env(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
}

/// What `serve` refuses to start with on a non-loopback address: no API token, or webhooks
/// nobody could tell from forgeries.
fn check_exposure(
    args: &ServeArgs,
    token: &Option<SecretString>,
    keys: &callfeed::serve::webhooks::WebhookKeys,
) -> anyhow::Result<()> {
    if args.listen.ip().is_loopback() {
        return Ok(());
    }
    if token.is_none() && !args.allow_unauthenticated {
        anyhow::bail!(InvalidArgument::new(
            "--listen",
            args.listen,
            "a loopback address, or set CALLFEED_API_TOKEN (or pass --allow-unauthenticated to serve the API to anyone who reaches it)"
        ));
    }
    if !args.no_webhooks && (keys.callback_key.is_none() || keys.call_token.is_none()) {
        anyhow::bail!(InvalidArgument::new(
            "--listen",
            args.listen,
            "a loopback address, or set CALLFEED_CALLBACK_KEY (TRTC's callback key) and CALLFEED_CALL_WEBHOOK_TOKEN (append ?token=... to the call webhook URL), or pass --no-webhooks"
        ));
    }
    Ok(())
}

async fn serve_command(config: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    use callfeed::media::policy::{InputPolicy, Restrictions};
    use callfeed::serve::api::{Service, ServiceConfig};
    use callfeed::session::driver;
    let token = secret_env("CALLFEED_API_TOKEN");
    let webhook_keys = callfeed::serve::webhooks::WebhookKeys {
        callback_key: secret_env("CALLFEED_CALLBACK_KEY"),
        call_token: secret_env("CALLFEED_CALL_WEBHOOK_TOKEN"),
    };
    check_exposure(&args, &token, &webhook_keys)?;
    let restrictions =
        Restrictions::new(&args.media_root, args.allow_devices, &args.allow_url_host)
            .map_err(|e| InvalidArgument::new("--media-root", e, "an existing folder"))?;
    let cloud = app::cloud_clients(config)?;
    let journal = app::JournalAt::file_or_default(args.journal.clone()).open()?;
    if token.is_none() {
        tracing::warn!("CALLFEED_API_TOKEN is not set: the API takes requests without a token");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Session streams are served on the API's own port, under the public URL if given.
    let public = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let (streams, stream_routes) = callfeed::serve::streams::StreamServer::attached(&public);
    let service = Service::new(
        cloud,
        journal.journal().clone(),
        ServiceConfig {
            token,
            sdkappid: config.require_sdkappid()?,
            webhook_keys,
            webhooks: !args.no_webhooks,
            driver: driver::DriverSettings {
                stream_server: Some(streams),
                // A service retries an unconfirmed teardown until the cloud confirms it.
                teardown_retry_for: None,
                ..driver::DriverSettings::default()
            },
            topologies: Topologies::load(&config.pipelines)?,
            policy: InputPolicy::Restricted(restrictions),
            max_sessions: args
                .max_sessions
                .unwrap_or_else(callfeed::serve::api::default_max_sessions),
            keep_ended: std::time::Duration::from_secs(args.keep_ended),
        },
    );
    for (id, note) in service.recover().await {
        eprintln!("recovered session {id} left open by an earlier run: {note}");
    }
    println!("{}", serde_json::json!({ "api": format!("http://{addr}") }));
    let app = service.router().merge(stream_routes);
    let drained = service.clone();
    let limits = callfeed::serve::http::HttpLimits {
        max_connections: args.max_connections,
        ..Default::default()
    };
    callfeed::serve::http::serve(listener, app, limits, async move {
        app::shutdown_signal().await;
        // No new sessions; every running one ends cleanly before the server stops.
        drained.drain().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn call_command(mut config: Config, args: CallArgs) -> anyhow::Result<ExitCode> {
    use callfeed::session::state::IngestAt;
    use callfeed::session::{SessionSpec, driver};
    // Everything is checked before the phone rings.
    let callees = args
        .to
        .iter()
        .map(|c| user("--to", c))
        .collect::<Result<Vec<_>, _>>()?;
    let robot = user("--robot", &args.robot)?;
    let room = args.room.room()?;
    let ring_ms = args.ring_timeout.saturating_mul(1000);
    if !(call::MIN_RING_TIMEOUT_MS..=call::MAX_RING_TIMEOUT_MS).contains(&ring_ms) {
        anyhow::bail!(InvalidArgument::new(
            "--ring-timeout",
            format!("{} s", args.ring_timeout),
            "10 to 600 seconds"
        ));
    }
    let input = InputSpec::parse(&args.media)?;
    let media_type = match args.media_type {
        MediaTypeArg::Audio => MediaType::Audio,
        MediaTypeArg::Video => MediaType::Video,
    };
    let spec = SessionSpec {
        callees: callees.clone(),
        ingest_user: robot.clone(),
        robot: robot.clone(),
        room: room.clone(),
        media: args.media.clone(),
        input,
        media_type,
        profile: args.profile.unwrap_or(match media_type {
            MediaType::Audio => Profile::Audio,
            MediaType::Video => Profile::P720,
        }),
        ingest_at: match args.ingest_at {
            IngestAtArg::Answer => IngestAt::Answer,
            IngestAtArg::Ring => IngestAt::Ring,
        },
        repeat: if args.loop_forever.is_some() {
            None
        } else {
            Some(args.repeat.max(1))
        },
        ring_timeout: std::time::Duration::from_millis(u64::from(ring_ms)),
        max_duration: args.max_duration.map(std::time::Duration::from_secs),
        live: args.live,
    };
    // The emulator accepts whatever credentials the client has; demo ones when none are set.
    let emulator = if args.emulator {
        let behaviour = if args.callee_rejects {
            callfeed::emulator::Behaviour::Reject {
                after_ms: args.callee_answers_after.min(2000),
            }
        } else if args.callee_never_answers {
            callfeed::emulator::Behaviour::NeverAnswer
        } else if args.callee_busy {
            callfeed::emulator::Behaviour::Busy
        } else {
            callfeed::emulator::Behaviour::Answer {
                after_ms: args.callee_answers_after,
                hangup_after_ms: args.callee_hangs_up_after,
            }
        };
        let scripted: Vec<(String, callfeed::emulator::Behaviour)> = callees
            .iter()
            .map(|c| (c.to_string(), behaviour.clone()))
            .collect();
        Some(app::start_embedded_emulator(&mut config, behaviour, &scripted).await?)
    } else {
        None
    };
    let cloud = app::cloud_clients(&config)?;
    // The journal: a real one against the cloud (and what a crash left behind is stopped
    // first); a throwaway one against the in-process emulator, which forgets everything.
    let opened = if emulator.is_some() {
        app::JournalAt::Scratch
    } else {
        app::JournalAt::Default
    }
    .open()?;
    let journal = opened.journal().clone();
    if emulator.is_none() {
        let limit = std::time::Duration::from_secs(5);
        for r in callfeed::session::teardown::recover(&journal, &cloud, limit, Some(limit)).await {
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
    if let Some(existing) =
        journal.active_for(&callfeed::session::room_key(&room), robot.as_str())?
    {
        anyhow::bail!(InvalidArgument::new(
            "--room",
            room.to_string(),
            format!(
                "a room without a running session for {robot} (session {existing} is using it)"
            )
        ));
    }
    let topologies = Topologies::load(&config.pipelines)?;
    let settings = driver::DriverSettings {
        stream_listen: args.stream_listen,
        public_base: args.public_url.clone(),
        ..driver::DriverSettings::default()
    };
    let session_id = uuid::Uuid::new_v4().to_string();
    let (status_tx, mut status_rx) = tokio::sync::watch::channel(driver::Status::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let run = driver::run(
        session_id,
        spec,
        &cloud,
        Some(journal.clone()),
        settings,
        topologies,
        driver::Controls {
            status: status_tx,
            stop: stop_rx,
            nudge: Arc::new(tokio::sync::Notify::new()),
        },
    );
    tokio::pin!(run);
    let line = indicatif::ProgressBar::new_spinner();
    if args.json {
        line.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    line.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
    );
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let report = loop {
        tokio::select! {
            report = &mut run => break report,
            _ = app::shutdown_signal() => { let _ = stop_tx.send(true); }
            _ = tick.tick() => {
                let s = status_rx.borrow_and_update().clone();
                line.set_message(format!(
                    "{} | {:.1} s | media loop {} at {:.1} s | task {}",
                    s.phase, s.elapsed_ms as f64 / 1000.0, s.iteration + 1,
                    s.position_ms as f64 / 1000.0, s.task.unwrap_or("-")
                ));
                line.tick();
            }
        }
    };
    line.finish_and_clear();
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
        println!("session {}: {}", report.session_id, report.outcome.name());
        if let callfeed::session::state::Outcome::Failed { stage, reason } = &report.outcome {
            println!("  failed at {stage:?}: {reason}");
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
        let at = |ms: Option<u64>| {
            ms.map_or("-".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
        };
        println!(
            "  rang at {}, answered at {}, stream bound at {}, ended at {} ({} media)",
            at(t.call_started_ms),
            at(t.answered_ms),
            at(t.ingest_started_ms),
            at(t.ended_ms),
            report.mode
        );
        if let Some(view) = room_view {
            for m in view["members"].as_array().into_iter().flatten() {
                println!(
                    "  callee {}: {}",
                    m["user_id"].as_str().unwrap_or(""),
                    m["state"].as_str().unwrap_or("")
                );
            }
            for t in view["media"].as_array().into_iter().flatten() {
                println!(
                    "  room {} {} received: {} video frames {}x{} at {} fps, {} ms of audio, tone {} Hz, first media {} ms after StartStreamIngest, {} gaps",
                    t["room_kind"].as_str().unwrap_or(""),
                    t["room_id"].as_str().unwrap_or(""),
                    t["video_frames"],
                    t["width"],
                    t["height"],
                    t["fps"],
                    t["audio_ms"],
                    t["dominant_hz"],
                    t["first_media_ms"],
                    t["gaps_over_500ms"]
                );
            }
        }
    }
    if let Some(e) = emulator {
        e.shutdown().await;
    }
    Ok(ExitCode::from(code))
}

fn expiry(secs: Option<u64>) -> Option<std::time::Instant> {
    secs.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s))
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}% {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

async fn push_command(config: &Config, mut args: PushArgs) -> anyhow::Result<ExitCode> {
    // Tencent CSS: sign the push URL, and print the play URL a puller is given.
    let mut play_url = None;
    if let (Some(push), Some(play), Some(stream), Some(key)) = (
        &args.css_push_domain,
        &args.css_play_domain,
        &args.css_stream,
        &args.css_push_key,
    ) {
        let css = css::CssStream::new(push, play, &args.css_app, stream)?;
        let expires_at = unix_now() + args.css_valid_for;
        args.rtmp = Some(css.rtmp_push_url(key, expires_at));
        play_url = Some(css.flv_play_url(args.css_play_key.as_deref(), expires_at, true));
    }
    if args.serve.is_none() && args.rtmp.is_none() && args.mp4.is_none() {
        anyhow::bail!(InvalidArgument::new(
            "output",
            "none",
            "--serve [ADDR], --rtmp URL or --mp4 FILE"
        ));
    }
    let spec = InputSpec::parse(&args.input)?;
    let contract = Contract::new(args.profile);
    let report = if matches!(
        spec,
        InputSpec::File(_) | InputSpec::Playlist(_) | InputSpec::Url(_)
    ) {
        // Fail before anything starts: a missing, corrupt or non-media input is named now.
        let probe_spec = spec.clone();
        Some(
            tokio::task::spawn_blocking(move || {
                callfeed::media::probe::probe(&probe_spec, contract)
            })
            .await??,
        )
    } else {
        None
    };
    let topologies = Topologies::load(&config.pipelines)?;
    // A still picture has no length of its own: it is always shown live, until stopped.
    let still = report
        .as_ref()
        .and_then(|r| r.video.as_ref())
        .is_some_and(|v| v.still_image);
    if let (InputSpec::File(path), Some(report)) = (&spec, &report)
        && !still
        && (args.mp4.is_some() || (args.serve.is_some() && args.rtmp.is_none() && !args.live))
    {
        return announcement(path, report, contract, &topologies, &args).await;
    }
    if args.mp4.is_some() {
        anyhow::bail!(InvalidArgument::new(
            "--mp4",
            &args.input,
            "a file input (live sources are pushed with --serve or --rtmp)"
        ));
    }
    let mut settings = LiveSettings::new(contract);
    settings.loops = args.loops;
    settings.start = args.start.map(std::time::Duration::from_secs_f64);
    settings.slate_image = args.slate;
    settings.still_image = report
        .as_ref()
        .and_then(|r| r.video.as_ref())
        .is_some_and(|v| v.still_image);
    let mut stream = match (&spec, &report) {
        (InputSpec::File(path), Some(r)) if r.passthrough && args.start.is_none() => {
            eprintln!("passthrough: {}", r.reason);
            LiveStream::start_passthrough(
                path.clone(),
                r.container.as_deref().unwrap_or_default(),
                settings,
            )?
        }
        _ => LiveStream::start(spec, settings, &topologies)?,
    };
    let mut events = stream.events();
    let server = match args.serve {
        Some(addr) => {
            let server = callfeed::serve::streams::StreamServer::start(addr).await?;
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
            Some(callfeed::media::rtmp::RtmpOutput::start(
                stream.hub(),
                url.clone(),
            )?)
        }
        None => None,
    };
    // One live line: state, frames, bitrate, readers, restarts, time on the slate.
    let line = indicatif::ProgressBar::new_spinner();
    line.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"),
    );
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut last_bytes = 0u64;
    let result = loop {
        tokio::select! {
            result = stream.wait() => break result,
            _ = app::shutdown_signal() => break stream.stop().await,
            event = events.recv() => {
                if let Ok(event) = event
                    && !matches!(event, MediaEvent::FirstMedia)
                {
                    line.println(serde_json::to_string(&event)?);
                }
            }
            _ = tick.tick() => {
                let s = stream.stats();
                if args.stats {
                    println!("{}", serde_json::to_string(&s)?);
                }
                let kbps = (s.bytes_out - last_bytes) * 8 / 1000;
                last_bytes = s.bytes_out;
                line.set_message(format!(
                    "{:?} | item {} loop {} at {:.1} s | {} frames out, {} in, {} repeated | {kbps} kb/s | {} readers | {} restarts | slate {:.1} s",
                    s.state, s.item, s.iteration + 1, s.position_ms as f64 / 1000.0,
                    s.frames_out, s.frames_in, s.repeated_frames, s.readers, s.restarts,
                    s.slate_frames as f64 / 30.0
                ));
                line.tick();
            }
        }
    };
    line.finish_and_clear();
    if let Some(rtmp) = rtmp {
        rtmp.stop().await;
    }
    drop(server);
    let reason = result?;
    eprintln!("stream ended: {reason}");
    Ok(ExitCode::SUCCESS)
}

/// A file as an announcement: transcoded once (cached) or passed through, then served with
/// Range until Ctrl-C; or written to `--mp4`.
async fn announcement(
    path: &std::path::Path,
    report: &callfeed::media::probe::ProbeReport,
    contract: Contract,
    topologies: &Topologies,
    args: &PushArgs,
) -> anyhow::Result<ExitCode> {
    let bar = progress_bar();
    bar.set_message("transcoding");
    let progress = |f: f64| bar.set_position((f * 1000.0) as u64);
    if let Some(out) = &args.mp4 {
        callfeed::media::announce::transcode(path, report, contract, topologies, out, &progress)
            .await?;
        bar.finish_and_clear();
        println!("{}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let file = if report.passthrough {
        path.to_path_buf()
    } else {
        let dir = callfeed::media::announce::default_cache_dir();
        callfeed::media::announce::prepare(path, report, contract, topologies, &dir, &progress)
            .await?
    };
    bar.finish_and_clear();
    let addr = args
        .serve
        .unwrap_or_else(|| "127.0.0.1:0".parse().expect("an address"));
    let server = callfeed::serve::streams::StreamServer::start(addr).await?;
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

fn usersig_command(config: &Config, args: UsersigArgs) -> anyhow::Result<ExitCode> {
    let sdkappid = config.require_sdkappid()?;
    let key = config.require_sdk_secret_key()?;
    let now = args.time.unwrap_or_else(unix_now);
    if let Some(sig) = args.verify {
        let user = args.verify_user.unwrap_or_default();
        let want = usersig::Expectation {
            sdkappid,
            identifier: &user,
            now,
            userbuf: None,
        };
        return match usersig::verify(&sig, key.expose_secret().as_bytes(), want) {
            Ok(fields) => {
                print_json(&serde_json::json!({ "valid": true, "fields": fields }))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                print_json(&serde_json::json!({
                    "valid": false,
                    "code": e.im_code(),
                    "error": e.to_string(),
                    "fields": usersig::decode(&sig).ok().map(|(f, _)| f),
                }))?;
                eprintln!("error: {} ({})", e, e.im_code());
                Ok(ExitCode::from(EXIT_FAILED))
            }
        };
    }
    let user = UserId::new("USER", args.user.as_deref().unwrap_or_default())?;
    println!(
        "{}",
        usersig::generate(
            sdkappid,
            key.expose_secret().as_bytes(),
            user.as_str(),
            args.expire,
            now,
            None
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn user(field: &'static str, value: &str) -> Result<UserId, InvalidArgument> {
    UserId::new(field, value)
}

/// Runs one command against a client: print the prepared request, or send and print.
macro_rules! run_api {
    ($client:expr, $dry:expr, $cmd:expr) => {{
        let cmd = $cmd;
        if $dry {
            print_json(&$client.prepare(&cmd)?.dry_run_json())?;
        } else {
            let reply = $client.execute(&cmd).await?;
            print_json(&reply)?;
        }
    }};
}

async fn api_command(config: &Config, args: ApiArgs) -> anyhow::Result<ExitCode> {
    let transport = Arc::new(Transport::new(config.http.clone())?);
    let dry = args.dry_run;
    let call_client = || app::call_client(config, transport.clone());
    let ingest_client = || app::ingest_client(config, transport.clone());
    match args.command {
        ApiCommand::StartCall {
            robot,
            to,
            room,
            media_type,
            ring_timeout,
            user_data,
            offline_push,
        } => {
            let callees = to
                .iter()
                .map(|c| user("--to", c))
                .collect::<Result<Vec<_>, _>>()?;
            let offline_push = offline_push
                .map(|j| {
                    serde_json::from_str(&j).map_err(|e| {
                        InvalidArgument::new("--offline-push", &j, format!("a JSON object ({e})"))
                    })
                })
                .transpose()?;
            let cmd = StartCallByRobot {
                robot: user("--robot", &robot)?,
                callees,
                timeout_ms: ring_timeout.saturating_mul(1000),
                media_type: match media_type {
                    MediaTypeArg::Audio => MediaType::Audio,
                    MediaTypeArg::Video => MediaType::Video,
                },
                room: Some(room.room()?),
                user_data,
                offline_push,
            };
            run_api!(call_client()?, dry, cmd)
        }
        ApiCommand::EndCall { call_id } => run_api!(call_client()?, dry, EndCall { call_id }),
        ApiCommand::GetCallInfo { call_id } => {
            run_api!(call_client()?, dry, GetCallInfo { call_id })
        }
        ApiCommand::GetRecord { call_id } => {
            run_api!(call_client()?, dry, GetRecordByCallId { call_id })
        }
        ApiCommand::GetRecords {
            start_time,
            end_time,
            per_page,
            page,
            call_result,
            call_type,
        } => run_api!(
            call_client()?,
            dry,
            GetRecordByFilter {
                start_time,
                end_time,
                number_per_page: per_page,
                page,
                call_result,
                call_type,
            }
        ),
        ApiCommand::SetCallback { url, commands } => {
            let commands = if commands.is_empty() {
                CallWebhook::ALL_COMMANDS.map(str::to_owned).to_vec()
            } else {
                commands
            };
            run_api!(call_client()?, dry, SetCallback { url, commands })
        }
        ApiCommand::GetCallback => run_api!(call_client()?, dry, GetCallback),
        ApiCommand::DeleteCallback => run_api!(call_client()?, dry, DeleteCallback),
        ApiCommand::StartIngest {
            room,
            user: ingest_user,
            url,
            user_sig,
            private_map_key,
            repeat,
            max_duration,
            seek,
            volume,
            auto_push,
            enable_progress,
            tempo,
            idle_timeout,
        } => {
            let mut cmd = StartStreamIngest::new(room.room()?, user("--user", &ingest_user)?, url);
            cmd.user_sig = user_sig.map(SecretString::from);
            cmd.private_map_key = private_map_key.map(SecretString::from);
            cmd.repeat_num = repeat;
            cmd.max_duration_minutes = max_duration;
            cmd.seek_second = seek;
            cmd.volume = volume;
            cmd.auto_push = auto_push.then_some(true);
            cmd.enable_progress = enable_progress.then_some(true);
            cmd.tempo = tempo;
            cmd.idle_timeout_secs = idle_timeout;
            run_api!(ingest_client()?, dry, cmd)
        }
        ApiCommand::StopIngest { task_id } => {
            run_api!(ingest_client()?, dry, StopStreamIngest { task_id })
        }
        ApiCommand::DescribeIngest { task_id } => {
            run_api!(ingest_client()?, dry, DescribeStreamIngest { task_id })
        }
        ApiCommand::UpdateIngest {
            task_id,
            url,
            volume,
            pause,
            resume,
            tempo,
        } => run_api!(
            ingest_client()?,
            dry,
            UpdateStreamIngest {
                task_id,
                stream_url: url,
                volume,
                is_pause: if pause {
                    Some(true)
                } else if resume {
                    Some(false)
                } else {
                    None
                },
                enable_progress: None,
                tempo,
            }
        ),
    }
    Ok(ExitCode::SUCCESS)
}
