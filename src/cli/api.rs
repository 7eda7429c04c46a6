//! `callfeed api ...`: one call-engine command or TRTC action (StreamIngest, PublishCdn), sent as the library
//! sends it (or printed with `--dry-run`), and the cloud's answer printed as JSON.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use secrecy::SecretString;

use super::args::{MediaTypeArg, RoomArgs, callees, user};
use super::output::print_json;
use crate::app;
use crate::cloud::call::{
    self, DeleteCallback, EndCall, GetCallInfo, GetCallback, GetRecordByCallId, GetRecordByFilter,
    SetCallback, StartCallByRobot,
};
use crate::cloud::ingest::{
    DescribeStreamIngest, StartStreamIngest, StopStreamIngest, UpdateStreamIngest,
};
use crate::cloud::publish_cdn::{
    PublishAudio, PublishSource, PublishVideo, StartPublishCdnStream, StopPublishCdnStream,
};
use crate::cloud::webhook::CallWebhook;
use crate::cloud::{InvalidArgument, Transport};
use crate::config::Config;

#[derive(Args)]
pub(super) struct ApiArgs {
    /// Print the exact request ({"method","url","headers","body"}) instead of sending it.
    #[arg(long, global = true)]
    dry_run: bool,
    #[command(subcommand)]
    command: ApiCommand,
}

#[derive(Subcommand)]
enum ApiCommand {
    /// start_call_by_robot: ring callees from a robot account.
    StartCall(StartCallArgs),
    /// end_call: end a call for everyone.
    EndCall {
        /// The call to end.
        #[arg(long)]
        call_id: String,
    },
    /// get_call_info: members and their states in a live call.
    GetCallInfo {
        /// The call to look at.
        #[arg(long)]
        call_id: String,
    },
    /// get_record_by_callid: the record of a finished call.
    GetRecord {
        /// The finished call.
        #[arg(long)]
        call_id: String,
    },
    /// get_record_by_filter: records of the last 7 days.
    GetRecords(GetRecordsArgs),
    /// set_callback: where the call engine posts its webhooks.
    SetCallback {
        /// The URL the call engine posts to.
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
    StartIngest(StartIngestArgs),
    /// StopStreamIngest.
    StopIngest {
        /// The task to stop.
        #[arg(long)]
        task_id: String,
    },
    /// DescribeStreamIngest: InProgress or NotExist.
    DescribeIngest {
        /// The task to look at.
        #[arg(long)]
        task_id: String,
    },
    /// UpdateStreamIngest: change the URL, volume or pause state.
    UpdateIngest(UpdateIngestArgs),
    /// StartPublishCdnStream: the cloud publishes a user's stream (or the room's mix) to
    /// RTMP URLs.
    StartPublishCdn(StartPublishCdnArgs),
    /// StopPublishCdnStream.
    StopPublishCdn {
        /// The task to stop.
        #[arg(long)]
        task_id: String,
    },
}

#[derive(Args)]
struct StartCallArgs {
    /// The robot account that calls.
    #[arg(long)]
    robot: String,
    /// A callee; repeat for a group call (at most 8).
    #[arg(long = "to", value_name = "USER")]
    to: Vec<String>,
    #[command(flatten)]
    room: RoomArgs,
    /// Audio or video call.
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
}

impl StartCallArgs {
    fn command(self) -> anyhow::Result<StartCallByRobot> {
        let callees = callees(&self.to)?;
        let offline_push = self
            .offline_push
            .map(|j| {
                serde_json::from_str(&j).map_err(|e| {
                    InvalidArgument::new("--offline-push", &j, format!("a JSON object ({e})"))
                })
            })
            .transpose()?;
        Ok(StartCallByRobot {
            robot: user("--robot", &self.robot)?,
            callees,
            timeout_ms: self.ring_timeout.saturating_mul(1000),
            media_type: self.media_type.into(),
            room: Some(self.room.room()?),
            user_data: self.user_data,
            offline_push,
        })
    }
}

#[derive(Args)]
struct GetRecordsArgs {
    /// Records from this Unix time.
    #[arg(long, value_name = "UNIX")]
    start_time: Option<i64>,
    /// Records up to this Unix time.
    #[arg(long, value_name = "UNIX")]
    end_time: Option<i64>,
    /// Records per page.
    #[arg(long)]
    per_page: Option<u32>,
    /// The page to return, from 1.
    #[arg(long)]
    page: Option<u32>,
    /// Only calls with this result, as the call engine names it.
    #[arg(long)]
    call_result: Option<String>,
    /// Only calls of this type, as the call engine names it.
    #[arg(long)]
    call_type: Option<String>,
}

impl From<GetRecordsArgs> for GetRecordByFilter {
    fn from(a: GetRecordsArgs) -> Self {
        GetRecordByFilter {
            start_time: a.start_time,
            end_time: a.end_time,
            number_per_page: a.per_page,
            page: a.page,
            call_result: a.call_result,
            call_type: a.call_type,
        }
    }
}

#[derive(Args)]
struct StartIngestArgs {
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
    /// A PrivateMapKey for a room with advanced permissions (see `callfeed private-map-key`).
    #[arg(long)]
    private_map_key: Option<String>,
    /// Plays (1 to 1000), or -1 to loop until stopped.
    #[arg(long, allow_hyphen_values = true)]
    repeat: Option<i32>,
    /// Minutes a looping task may run (1 to 10080); needs --repeat -1.
    #[arg(long, value_name = "MINUTES")]
    max_duration: Option<u32>,
    /// Start this many seconds into the media.
    #[arg(long, value_name = "SECS")]
    seek: Option<u32>,
    /// Volume in percent (10 to 100).
    #[arg(long)]
    volume: Option<u32>,
    /// Let the cloud pick the stream up again by itself (AutoPush).
    #[arg(long)]
    auto_push: bool,
    /// Have the cloud report the play position in its callbacks.
    #[arg(long)]
    enable_progress: bool,
    /// Playback speed (1.0 is normal).
    #[arg(long)]
    tempo: Option<f32>,
    /// Seconds without media before the cloud ends the task.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u32>,
}

impl StartIngestArgs {
    fn command(self) -> anyhow::Result<StartStreamIngest> {
        let mut cmd =
            StartStreamIngest::new(self.room.room()?, user("--user", &self.user)?, self.url);
        cmd.user_sig = self.user_sig.map(SecretString::from);
        cmd.private_map_key = self.private_map_key.map(SecretString::from);
        cmd.repeat_num = self.repeat;
        cmd.max_duration_minutes = self.max_duration;
        cmd.seek_second = self.seek;
        cmd.volume = self.volume;
        cmd.auto_push = self.auto_push.then_some(true);
        cmd.enable_progress = self.enable_progress.then_some(true);
        cmd.tempo = self.tempo;
        cmd.idle_timeout_secs = self.idle_timeout;
        Ok(cmd)
    }
}

#[derive(Args)]
struct UpdateIngestArgs {
    /// The task to change.
    #[arg(long)]
    task_id: String,
    /// A new source URL.
    #[arg(long)]
    url: Option<String>,
    /// Volume in percent (10 to 100).
    #[arg(long)]
    volume: Option<u32>,
    /// Pause the task.
    #[arg(long, conflicts_with = "resume")]
    pause: bool,
    /// Resume a paused task.
    #[arg(long)]
    resume: bool,
    /// Playback speed (1.0 is normal).
    #[arg(long)]
    tempo: Option<f32>,
}

impl From<UpdateIngestArgs> for UpdateStreamIngest {
    fn from(a: UpdateIngestArgs) -> Self {
        UpdateStreamIngest {
            task_id: a.task_id,
            stream_url: a.url,
            volume: a.volume,
            is_pause: if a.pause {
                Some(true)
            } else if a.resume {
                Some(false)
            } else {
                None
            },
            enable_progress: None,
            tempo: a.tempo,
        }
    }
}

#[derive(Args)]
struct StartPublishCdnArgs {
    #[command(flatten)]
    room: RoomArgs,
    /// The cloud's own user in the room that subscribes and publishes (not any other user).
    #[arg(long)]
    agent_user: String,
    /// Publish this user's stream as it reaches the room (no mixing).
    #[arg(long, conflicts_with = "mix", required_unless_present = "mix")]
    user: Option<String>,
    /// Publish the room's mix of every user instead.
    #[arg(long)]
    mix: bool,
    /// An rtmp:// URL to publish to; repeat for several (at most 10).
    #[arg(long = "url", value_name = "RTMP_URL", required = true)]
    urls: Vec<String>,
    /// The sound's sample rate.
    #[arg(long, default_value_t = 48_000)]
    audio_rate: u32,
    /// The sound's channels (1 or 2).
    #[arg(long, default_value_t = 1)]
    audio_channels: u32,
    /// The sound's bitrate in kbit/s (8 to 500).
    #[arg(long, default_value_t = 64)]
    audio_kbps: u32,
    /// Publish a picture too: WIDTHxHEIGHT (sound only without it).
    #[arg(long, value_name = "WxH")]
    video: Option<String>,
    /// The picture's frames per second.
    #[arg(long, default_value_t = 15, requires = "video")]
    fps: u32,
    /// The picture's bitrate in kbit/s.
    #[arg(long, default_value_t = 800, requires = "video")]
    video_kbps: u32,
    /// Stop by itself once no user has been in the room this many seconds (5 to 86400).
    #[arg(long, value_name = "SECS")]
    max_idle: Option<u32>,
}

impl StartPublishCdnArgs {
    fn command(self) -> anyhow::Result<StartPublishCdnStream> {
        let source = match &self.user {
            Some(u) => PublishSource::User(user("--user", u)?),
            None => PublishSource::Mix,
        };
        let mut urls = self.urls.into_iter().map(SecretString::from);
        let first = urls.next().expect("clap requires one --url");
        let mut cmd = StartPublishCdnStream::new(
            self.room.room()?,
            user("--agent-user", &self.agent_user)?,
            source,
            first,
        );
        cmd.cdn_urls.extend(urls);
        cmd.max_idle_secs = self.max_idle;
        cmd.audio = PublishAudio {
            sample_rate: self.audio_rate,
            channels: self.audio_channels,
            bitrate_kbps: self.audio_kbps,
            codec: 0,
        };
        if let Some(size) = &self.video {
            let parsed = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
            let Some((width, height)) = parsed else {
                anyhow::bail!(InvalidArgument::new(
                    "--video",
                    size,
                    "WIDTHxHEIGHT, e.g. 640x360"
                ));
            };
            cmd.video = Some(PublishVideo {
                width,
                height,
                fps: self.fps,
                bitrate_kbps: self.video_kbps,
                gop_secs: 2,
            });
        }
        Ok(cmd)
    }
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

pub(super) async fn run(config: &Config, args: ApiArgs) -> anyhow::Result<ExitCode> {
    // A dry run shows the request's shape: without an account it is signed with placeholder
    // credentials, and says so.
    let mut config = config.clone();
    if args.dry_run && config.require_credentials(&app::CLOUD_CREDENTIALS).is_err() {
        eprintln!("no Tencent credentials configured: the request is signed with placeholder ones");
        app::use_demo_credentials(&mut config);
    }
    let config = &config;
    let transport = Arc::new(Transport::new(config.http.clone())?);
    let dry = args.dry_run;
    // Each client is made only when used, so a call-engine command needs no API 3.0 keys.
    let call_client = || app::call_client(config, transport.clone());
    let ingest_client = || app::ingest_client(config, transport.clone());
    match args.command {
        ApiCommand::StartCall(a) => run_api!(call_client()?, dry, a.command()?),
        ApiCommand::EndCall { call_id } => run_api!(call_client()?, dry, EndCall { call_id }),
        ApiCommand::GetCallInfo { call_id } => {
            run_api!(call_client()?, dry, GetCallInfo { call_id })
        }
        ApiCommand::GetRecord { call_id } => {
            run_api!(call_client()?, dry, GetRecordByCallId { call_id })
        }
        ApiCommand::GetRecords(a) => run_api!(call_client()?, dry, GetRecordByFilter::from(a)),
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
        ApiCommand::StartIngest(a) => {
            let mut cmd = a.command()?;
            if dry {
                // Shown, the robot's UserSig and a PrivateMapKey are placeholders; the request
                // is signed over what is shown, so its signature still checks out.
                let shown = || SecretString::from(crate::cloud::http::REDACTED);
                cmd.user_sig = Some(shown());
                cmd.private_map_key = cmd.private_map_key.as_ref().map(|_| shown());
            }
            run_api!(ingest_client()?, dry, cmd)
        }
        ApiCommand::StopIngest { task_id } => {
            run_api!(ingest_client()?, dry, StopStreamIngest { task_id })
        }
        ApiCommand::DescribeIngest { task_id } => {
            run_api!(ingest_client()?, dry, DescribeStreamIngest { task_id })
        }
        ApiCommand::UpdateIngest(a) => {
            run_api!(ingest_client()?, dry, UpdateStreamIngest::from(a))
        }
        ApiCommand::StartPublishCdn(a) => {
            let mut cmd = a.command()?;
            if dry {
                cmd.agent_sig = Some(SecretString::from(crate::cloud::http::REDACTED));
            }
            run_api!(ingest_client()?, dry, cmd)
        }
        ApiCommand::StopPublishCdn { task_id } => {
            run_api!(ingest_client()?, dry, StopPublishCdnStream { task_id })
        }
    }
    Ok(ExitCode::SUCCESS)
}
