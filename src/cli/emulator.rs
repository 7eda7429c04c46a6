//! `callfeed emulator`: a local Tencent cloud (call engine, TRTC ingest, room observer) on
//! one port until Ctrl-C or SIGTERM.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::args::PaceArg;
use crate::app;
use crate::config::Config;
use crate::emulator::Emulator;

#[derive(Args)]
pub(super) struct EmulatorArgs {
    /// Address to serve both APIs and the control API on.
    #[arg(long, default_value = "127.0.0.1:8720", value_parser = super::args::listen_addr)]
    listen: std::net::SocketAddr,
    /// How the room observer consumes streams (default: the config's, else realtime).
    #[arg(long, value_enum)]
    pace: Option<PaceArg>,
}

pub(super) async fn run(config: &Config, args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    // Like `call --emulator`: without an account, the demo credentials (a client pointed
    // at this emulator uses the same ones: see the endpoints line).
    let mut config = config.clone();
    if config.require_credentials(&app::CLOUD_CREDENTIALS).is_err() {
        eprintln!(
            "no Tencent credentials configured: the emulator accepts callfeed's demo ones, as `callfeed call --emulator` does"
        );
    }
    app::use_demo_credentials(&mut config);
    let mut settings = app::emulator_config(&config)?;
    if let Some(pace) = args.pace {
        settings.pace = pace.into();
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
