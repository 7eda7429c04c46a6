//! `callfeed session ...`: a serve's running sessions from the command line, through its
//! API (`--api`, the token from CALLFEED_API_TOKEN): show one, change what it plays without
//! hanging up (another input, the volume, a pause, a seek), stop it.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::output::print_json;
use super::remote::{ApiArgs, Client, id_in_path};

#[derive(Args)]
pub(super) struct SessionArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[command(subcommand)]
    command: SessionCommand,
}

#[derive(Subcommand)]
enum SessionCommand {
    /// Show a session's status as JSON.
    Show {
        /// The session's id, as the API gave it.
        id: String,
    },
    /// Change a running session: in the same call, and wherever the cloud allows the same
    /// ingest task. Prints its new status as JSON.
    Update(UpdateArgs),
    /// End a session cleanly (the call hung up, the ingest task stopped).
    Stop {
        /// The session's id, as the API gave it.
        id: String,
    },
}

#[derive(Args)]
struct UpdateArgs {
    /// The session's id, as the API gave it.
    id: String,
    /// Play this input instead, from its start: a file, a URL, feed:ID, test:...
    #[arg(long)]
    media: Option<String>,
    /// The sound's level in percent of the input's own, 0 to 200.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=200))]
    volume: Option<u32>,
    /// Hold the picture and go silent (a file keeps its place).
    #[arg(long, conflicts_with = "resume")]
    pause: bool,
    /// Go on after --pause.
    #[arg(long)]
    resume: bool,
    /// Go on from this many seconds into the current file.
    #[arg(long, value_name = "SECS")]
    seek: Option<f64>,
}

pub(super) async fn run(args: SessionArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.api);
    use reqwest::Method;
    let shown = match args.command {
        SessionCommand::Show { id } => {
            let path = format!("/v1/sessions/{}", path_part(&id)?);
            client.send(client.request(Method::GET, &path)).await?
        }
        SessionCommand::Stop { id } => {
            let path = format!("/v1/sessions/{}", path_part(&id)?);
            client.send(client.request(Method::DELETE, &path)).await?
        }
        SessionCommand::Update(update) => {
            let path = format!("/v1/sessions/{}", path_part(&update.id)?);
            let body = change(&update)?;
            let request = client
                .request(Method::PATCH, &path)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            client.send(request).await?
        }
    };
    print_json(&shown)?;
    Ok(ExitCode::SUCCESS)
}

/// The PATCH body for what was asked; at least one change.
fn change(update: &UpdateArgs) -> anyhow::Result<Value> {
    let mut body = Map::new();
    if let Some(media) = &update.media {
        body.insert("media".into(), json!(media));
    }
    if let Some(volume) = update.volume {
        body.insert("volume".into(), json!(volume));
    }
    if update.pause || update.resume {
        body.insert("paused".into(), json!(update.pause));
    }
    if let Some(seek) = update.seek {
        body.insert("seek_secs".into(), json!(seek));
    }
    if body.is_empty() {
        anyhow::bail!("nothing to change: give --media, --volume, --pause, --resume or --seek");
    }
    Ok(Value::Object(body))
}

/// A session id as it goes into a URL path: what the API makes, nothing else.
fn path_part(id: &str) -> anyhow::Result<&str> {
    id_in_path(
        id,
        "a session id (the API's `id`, e.g. from `GET /v1/sessions`)",
    )
}
