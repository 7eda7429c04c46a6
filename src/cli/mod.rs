//! The `callfeed` command line: the [`Cli`] that `main.rs` parses, one file per command, and
//! the mapping from an outcome to output and an exit code.
//!
//! Exit codes: 0 ok, [`EXIT_FAILED`] for a failure reported by (or on the way to) the cloud,
//! [`EXIT_INVALID`] for input refused before anything was sent, 3 to 6 for how a call
//! ended ([`Outcome::exit_code`](crate::session::state::Outcome::exit_code)).

mod announce;
mod api;
mod args;
mod call;
mod emulator;
mod feed;
mod info;
mod keys;
mod load;
mod monitoring;
mod output;
mod probe;
mod progress;
mod push;
mod remote;
mod serve;
mod session;
mod voices;
mod webrtc;

pub use output::{EXIT_FAILED, EXIT_INVALID};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;
use clap::{Parser, Subcommand};

use crate::cloud::{CloudError, InvalidArgument};
use crate::config::{Config, ConfigError};

/// The whole command line.
#[derive(Parser)]
#[command(
    name = "callfeed",
    version,
    about = "Put media into real-time calls from the server side"
)]
pub struct Cli {
    /// TOML configuration file (default: $CALLFEED_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `callfeed=debug` (default: $CALLFEED_LOG or `warn`).
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    /// Log lines as text for people, or one JSON object a line for log collectors.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "CALLFEED_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Print callfeed's and GStreamer's versions.
    Version,
    /// Print a shell completion script, e.g. `callfeed completions bash > /etc/bash_completion.d/callfeed`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `callfeed man | man -l -`.
    Man,
    /// Make a UserSig for USER, or check one with --verify.
    Usersig(keys::UsersigArgs),
    /// Make a PrivateMapKey that lets USER into one room only.
    PrivateMapKey(keys::PrivateMapKeyArgs),
    /// Print signed Tencent CSS push and play URLs for a stream.
    CssUrl(keys::CssUrlArgs),
    /// Send one call-engine command or StreamIngest action and print the answer as JSON.
    Api(api::ApiArgs),
    /// Run a local Tencent cloud (call engine + TRTC ingest + room observer) until Ctrl-C.
    Emulator(emulator::EmulatorArgs),
    /// Ring users from a robot and bind media into the call's room, until the call ends.
    Call(Box<call::CallArgs>),
    /// Run the HTTP service: sessions API, webhooks, metrics; recovers a crashed run first.
    Serve(Box<serve::ServeArgs>),
    /// A serve's feeds (live inputs any number of calls share): create, list, show, delete,
    /// give a new key, watch.
    Feed(feed::FeedArgs),
    /// A serve's running sessions: show one, change what it plays without hanging up
    /// (another input, volume, pause, seek), stop it.
    Session(session::SessionArgs),
    /// Place many full sessions at a given rate and report per-stage latency.
    Load(load::LoadArgs),
    /// Say what an input is, whether it passes through, and the contract it gets.
    Probe(probe::ProbeArgs),
    /// Turn an input into what a cloud can pull: served over HTTP (an MP4 announcement or
    /// live HTTP-FLV), pushed over RTMP, or written as the contract MP4 (--mp4).
    Push(push::PushArgs),
    /// List the voices `tts:` inputs may name (`?voice=`), from eSpeak NG.
    Voices(voices::VoicesArgs),
    /// Make a file's announcement MP4 once (in the cache sessions use) and print its path,
    /// to put on your own storage and play from there.
    Announce(announce::AnnounceArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Sets up logging, loads the configuration and runs the command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    crate::memory::tune();
    init_tracing(cli.log.as_deref(), cli.log_format);
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Config => info::config(&config),
        Command::Version => info::version(),
        Command::Completions { shell } => info::completions(Cli::command(), shell),
        Command::Man => info::man(Cli::command()),
        Command::Usersig(args) => keys::usersig(&config, args),
        Command::PrivateMapKey(args) => keys::private_map_key(&config, args),
        Command::CssUrl(args) => keys::css_url(args),
        Command::Api(args) => api::run(&config, args).await,
        Command::Emulator(args) => emulator::run(&config, args).await,
        Command::Call(args) => call::run(config, *args).await,
        Command::Serve(args) => serve::run(&config, *args).await,
        Command::Load(args) => load::run(config, args).await,
        Command::Probe(args) => probe::run(&config, args).await,
        Command::Push(args) => push::run(&config, args).await,
        Command::Announce(args) => announce::run(&config, args).await,
        Command::Feed(args) => feed::run(args).await,
        Command::Session(args) => session::run(args).await,
        Command::Voices(args) => voices::run(args).await,
    }
}

/// The code the process exits with; an error is printed first. Input the user can fix
/// (arguments, configuration, media) is [`EXIT_INVALID`], anything else [`EXIT_FAILED`].
pub fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            let invalid = err.chain().any(|e| {
                e.is::<InvalidArgument>()
                    || e.is::<ConfigError>()
                    || e.is::<crate::media::input::InputError>()
                    || e.is::<crate::media::inspect::ProbeError>()
                    || e.is::<crate::session::RequestError>()
                    || e.is::<crate::media::topology::TopologyError>()
                    || e.is::<crate::store::StoreError>()
                    || matches!(e.downcast_ref::<CloudError>(), Some(CloudError::Invalid(_)))
            });
            ExitCode::from(if invalid { EXIT_INVALID } else { EXIT_FAILED })
        }
    }
}

/// An error and its causes on one line, each cause said once: many errors already quote
/// their source in their own words, which `{:#}` would repeat.
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let said = cause.to_string();
        if text.contains(said.as_str()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// Logs go to stderr so stdout stays what scripts parse; colour only on a terminal (and
/// not with `NO_COLOR`), so a log file never holds escape codes.
fn init_tracing(filter: Option<&str>, format: LogFormat) {
    use std::io::IsTerminal;
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("CALLFEED_LOG").ok())
        .unwrap_or_else(|| "warn".to_owned());
    // The database driver logs every statement's parameters at debug: a session's request,
    // media URL and all. Only a filter that names it asks for that.
    let filter = if filter.contains("tokio_postgres") {
        filter
    } else {
        format!("{filter},tokio_postgres=info")
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).try_init()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::describe;

    /// Every command and every flag a user can give has a line of help.
    #[test]
    fn every_command_and_flag_is_documented() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && cmd.get_long_about().is_none() {
                missing.push(format!("{path}: no description"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
    }

    #[test]
    fn each_cause_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open x.mp4: {0}")]
        struct Open(#[source] std::io::Error);
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let err = anyhow::Error::new(Open(io())).context("preparing the media");
        assert_eq!(
            describe(&err),
            "preparing the media: cannot open x.mp4: No such file"
        );
    }
}
