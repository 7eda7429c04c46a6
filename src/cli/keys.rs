//! The signing commands: `usersig` (make or check a UserSig), `private-map-key` (a key into
//! one room) and `css-url` (signed Tencent CSS push and play URLs). None of them calls the
//! cloud.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use secrecy::ExposeSecret;

use super::args::RoomArgs;
use super::output::{EXIT_FAILED, print_json};
use crate::clock::unix_secs;
use crate::cloud::{UserId, css, usersig};
use crate::config::Config;

#[derive(Args)]
pub(super) struct UsersigArgs {
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

#[derive(Args)]
pub(super) struct PrivateMapKeyArgs {
    /// The UserID the key lets into the room.
    user: String,
    #[command(flatten)]
    room: RoomArgs,
    /// Privilege bits: 1 create, 2 enter, 4 send audio, 8 receive audio, 16 send video,
    /// 32 receive video, 64 send sub-stream, 128 receive sub-stream.
    #[arg(long, default_value_t = usersig::privilege::ALL)]
    privilege: u32,
    /// Seconds the key is valid for.
    #[arg(long, default_value_t = 86_400)]
    expire: u32,
    /// Make it as if now were this Unix time (for reproducing a key).
    #[arg(long, value_name = "UNIX")]
    time: Option<u32>,
}

#[derive(Args)]
pub(super) struct CssUrlArgs {
    /// The CSS push domain (CSS console → Domain Management).
    #[arg(long)]
    push_domain: String,
    /// The CSS playback domain the cloud pulls from.
    #[arg(long)]
    play_domain: String,
    /// The CSS application name (the path segment before the stream).
    #[arg(long, default_value = "live")]
    app: String,
    /// The stream name.
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

/// Makes a UserSig, or checks one and prints its fields either way.
pub(super) fn usersig(config: &Config, args: UsersigArgs) -> anyhow::Result<ExitCode> {
    let sdkappid = config.require_sdkappid()?;
    let key = config.require_sdk_secret_key()?;
    let now = args.time.unwrap_or_else(unix_secs);
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

pub(super) fn private_map_key(
    config: &Config,
    args: PrivateMapKeyArgs,
) -> anyhow::Result<ExitCode> {
    let user = UserId::new("USER", &args.user)?;
    let room = args.room.room()?;
    let sdkappid = u32::try_from(config.require_sdkappid()?)
        .context("PrivateMapKey needs a 32-bit SDKAppID")?;
    let key = config.require_sdk_secret_key()?;
    let now = args.time.unwrap_or(unix_secs() as u32);
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

pub(super) fn css_url(args: CssUrlArgs) -> anyhow::Result<ExitCode> {
    let stream = css::CssStream::new(
        &args.push_domain,
        &args.play_domain,
        &args.app,
        &args.stream,
    )?;
    let expires_at = args.expire_at.unwrap_or(unix_secs() + args.valid_for);
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
