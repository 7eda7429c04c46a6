//! `callfeed config` and `callfeed version`: what this installation would run with.

use std::process::ExitCode;

use crate::config::Config;

/// The effective configuration, secrets redacted, each value saying where it came from.
pub(super) fn config(config: &Config) -> anyhow::Result<ExitCode> {
    print!("{}", config.render_redacted());
    Ok(ExitCode::SUCCESS)
}

/// callfeed's version, then GStreamer's; a missing GStreamer is reported, not fatal, since
/// the cloud-only commands still work without it.
pub(super) fn version() -> anyhow::Result<ExitCode> {
    println!("callfeed {}", env!("CARGO_PKG_VERSION"));
    match crate::media::runtime_version() {
        Ok(v) => println!("{v}"),
        Err(e) => println!("GStreamer: unavailable ({e})"),
    }
    Ok(ExitCode::SUCCESS)
}
