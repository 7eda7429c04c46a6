//! `callfeed feed ...`: a serve's feeds from the command line, through its API (`--api`,
//! the token from CALLFEED_API_TOKEN): create one and print what to paste into OBS, list,
//! show, delete, give a new key, and watch one's figures live.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::{Value, json};

use super::output::print_json;
use super::remote::{ApiArgs, Client, id_in_path};
use crate::media::contract::Profile;

#[derive(Args)]
pub(super) struct FeedArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Print the API's JSON instead of the settings as a person reads them.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: FeedCommand,
}

#[derive(Subcommand)]
enum FeedCommand {
    /// Make a feed: an RTMP one encoders push to (default), or one the node pulls (--url).
    Create(CreateArgs),
    /// List the feeds.
    List,
    /// Show one feed, with its publish settings.
    Show {
        /// The feed's id, as `list` shows it.
        id: String,
    },
    /// End a feed: its publisher is dropped, its key refused, its calls ended.
    Delete {
        /// The feed's id, as `list` shows it.
        id: String,
    },
    /// Give a feed a new stream key; the old one stops working.
    Key {
        /// The feed's id, as `list` shows it.
        id: String,
    },
    /// Print a feed's figures as they come, until it ends or Ctrl-C.
    Watch {
        /// The feed's id, as `list` shows it.
        id: String,
    },
}

#[derive(Args)]
struct CreateArgs {
    /// `rtmp`, `srt` or `whip` (an encoder, OBS or a browser pushes to this node), `rtsp`
    /// (the node pulls the camera at --url) or `pull` (the node plays --url: any input).
    #[arg(long, default_value = "rtmp", value_parser = ["rtmp", "srt", "whip", "rtsp", "pull"])]
    kind: String,
    /// A name people recognise it by.
    #[arg(long)]
    name: Option<String>,
    /// What the feed is encoded to, once for all its calls.
    #[arg(long, value_parser = super::args::profile_values())]
    profile: Option<Profile>,
    /// What a pull feed plays: a URL, `test:` or a device.
    #[arg(long)]
    url: Option<String>,
    /// End the feed after this long without media.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,
    /// Pass an RTMP publisher's stream to the calls untouched (it must already be H.264
    /// without B-frames and AAC 48 kHz; no slate while it is away).
    #[arg(long)]
    passthrough: bool,
}

pub(super) async fn run(args: FeedArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.api);
    use reqwest::Method;
    let shown = match args.command {
        FeedCommand::Create(create) => {
            let body = json!({
                "kind": create.kind,
                "name": create.name,
                "profile": create.profile,
                "url": create.url,
                "idle_timeout_secs": create.idle_timeout,
                "mode": if create.passthrough { "passthrough" } else { "encoded" },
            });
            let request = client
                .request(Method::POST, "/v1/feeds")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            client.send(request).await?
        }
        FeedCommand::List => {
            let listed = client
                .send(client.request(Method::GET, "/v1/feeds"))
                .await?;
            if args.json {
                print_json(&listed)?;
            } else {
                print_list(&listed);
            }
            return Ok(ExitCode::SUCCESS);
        }
        FeedCommand::Show { id } => {
            client
                .send(client.request(Method::GET, &format!("/v1/feeds/{}", path_part(&id)?)))
                .await?
        }
        FeedCommand::Delete { id } => {
            client
                .send(client.request(Method::DELETE, &format!("/v1/feeds/{}", path_part(&id)?)))
                .await?
        }
        FeedCommand::Key { id } => {
            client
                .send(client.request(Method::POST, &format!("/v1/feeds/{}/key", path_part(&id)?)))
                .await?
        }
        FeedCommand::Watch { id } => return watch(&client, &id, args.json).await,
    };
    if args.json {
        print_json(&shown)?;
    } else {
        print_feed(&shown);
    }
    Ok(ExitCode::SUCCESS)
}

/// A feed id as it goes into a URL path: what the API makes, nothing else.
fn path_part(id: &str) -> anyhow::Result<&str> {
    id_in_path(id, "a feed id: `callfeed feed list` shows them")
}

/// A feed as a person reads it: what it is, how it stands, and what to paste into OBS.
fn print_feed(feed: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    println!("feed     {}", text(&feed["id"]));
    if let Some(name) = feed["name"].as_str() {
        println!("name     {name}");
    }
    println!("kind     {}", text(&feed["kind"]));
    println!("state    {}", text(&feed["state"]));
    println!("profile  {}", text(&feed["profile"]));
    if let Some(input) = feed["input"].as_str() {
        println!("input    {input}");
    }
    let publish = &feed["publish"];
    if let Some(server) = publish["server"].as_str() {
        println!();
        println!("In OBS: Settings > Stream > Service: Custom...");
        println!("  Server      {server}");
        println!("  Stream Key  {}", text(&publish["stream_key"]));
        println!("For ffmpeg or GStreamer: {}", text(&publish["url"]));
    } else if let Some(bearer) = publish["bearer"].as_str() {
        println!();
        println!("In OBS 30+: Settings > Stream > Service: WHIP");
        println!("  Server        {}", text(&publish["url"]));
        println!("  Bearer Token  {bearer}");
        println!("From a web page: POST the offer there (application/sdp) with that bearer token.");
    } else if let Some(passphrase) = publish["passphrase"].as_str() {
        println!();
        println!("In OBS: Settings > Stream > Service: Custom... (leave the Stream Key empty)");
        println!("  Server      {}", text(&publish["url"]));
        println!(
            "streamid {}, passphrase {passphrase}",
            text(&publish["streamid"])
        );
    }
    if let Some(publisher) = feed["publisher"].as_object() {
        println!();
        println!(
            "publisher {} since {}",
            publisher
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or("-"),
            publisher.get("since").and_then(Value::as_u64).unwrap_or(0)
        );
    }
    let sessions = feed["sessions"].as_array().map_or(0, Vec::len);
    println!("sessions {sessions}");
    if let Some(reason) = feed["last_refusal"]["reason"].as_str() {
        println!("last refused: {reason}");
    }
    if let Some(reason) = feed["ended_reason"].as_str() {
        println!("ended: {reason}");
    }
}

fn print_list(listed: &Value) {
    let feeds = listed["feeds"].as_array().cloned().unwrap_or_default();
    if feeds.is_empty() {
        println!("no feeds: make one with `callfeed feed create`");
        return;
    }
    println!(
        "{:<16} {:<6} {:<8} {:>8} {:>8}  NAME",
        "ID", "KIND", "STATE", "SESSIONS", "KBIT/S"
    );
    for f in feeds {
        println!(
            "{:<16} {:<6} {:<8} {:>8} {:>8}  {}",
            f["id"].as_str().unwrap_or("-"),
            f["kind"].as_str().unwrap_or("-"),
            f["state"].as_str().unwrap_or("-"),
            f["sessions"].as_array().map_or(0, Vec::len),
            f["figures"]["kbps"].as_u64().unwrap_or(0),
            f["name"].as_str().unwrap_or(""),
        );
    }
}

/// Follows a feed's event stream, a line per event.
async fn watch(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/feeds/{}/events", path_part(id)?);
    let answer = client
        .request(reqwest::Method::GET, &path)
        .send()
        .await
        .with_context(|| format!("cannot reach the API at {}", client.base))?;
    if !answer.status().is_success() {
        let status = answer.status();
        let body = answer.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        anyhow::bail!(
            "{status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    let mut chunks = answer.bytes_stream();
    let mut pending = String::new();
    let mut name = String::new();
    loop {
        let chunk = tokio::select! {
            chunk = chunks.next() => chunk,
            _ = crate::app::shutdown_signal() => return Ok(ExitCode::SUCCESS),
        };
        let Some(chunk) = chunk else { break };
        pending.push_str(&String::from_utf8_lossy(
            &chunk.context("the event stream broke")?,
        ));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let line = line.trim_end();
            if let Some(event) = line.strip_prefix("event:") {
                name = event.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                let value: Value = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                if json {
                    println!("{}", json!({"event": name, "data": value}));
                } else {
                    print_event(&name, &value);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_event(name: &str, data: &Value) {
    match name {
        "stats" => {
            let f = &data["figures"];
            println!(
                "{:<8} {:>6} kbit/s  {:>6} frames in  {:>6} out  slate {} ms  reconnects {}",
                data["state"].as_str().unwrap_or("-"),
                f["kbps"].as_u64().unwrap_or(0),
                f["frames_in"].as_u64().unwrap_or(0),
                f["frames_out"].as_u64().unwrap_or(0),
                f["slate_ms"].as_u64().unwrap_or(0),
                f["reconnects"].as_u64().unwrap_or(0),
            );
        }
        "state" => println!("state -> {}", data["feed"]["state"].as_str().unwrap_or("-")),
        _ => print_feed(data),
    }
}

/// Starts the RTMP server for `feeds` on `listen`, and names it in their publish settings as
/// `rtmp://HOST:PORT/live`: `public` (a host, or host:port) when given, else the bound address
/// (loopback when it is every address, with a warning).
pub(super) async fn start_rtmp(
    feeds: &crate::feed::Feeds,
    listen: std::net::SocketAddr,
    public: Option<&str>,
    limits: crate::feed::rtmp::RtmpLimits,
) -> anyhow::Result<crate::feed::rtmp::RtmpServer> {
    let server = crate::feed::rtmp::listen(listen, feeds.clone(), limits)
        .await
        .with_context(|| format!("cannot listen for RTMP on {listen} (--rtmp-listen)"))?;
    let bound = server.local_addr();
    let host = match public {
        Some(given)
            if given
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                && !given.ends_with(']') =>
        {
            given.to_owned()
        }
        Some(given) => format!("{given}:{}", bound.port()),
        None if bound.ip().is_unspecified() => {
            tracing::warn!(
                "RTMP on every address without --rtmp-public: publish settings name 127.0.0.1"
            );
            format!("127.0.0.1:{}", bound.port())
        }
        None => bound.to_string(),
    };
    feeds.set_rtmp_base(Some(format!("rtmp://{host}/{}", crate::feed::rtmp::APP)));
    Ok(server)
}

/// A feed's publish settings, as a person pastes them into OBS, on stderr (stdout may carry
/// a JSON report).
pub(super) fn tell_publish_settings(feed: &crate::feed::FeedView) {
    if let Some(crate::feed::PublishSettings::Rtmp {
        server,
        stream_key,
        url,
    }) = &feed.publish
    {
        eprintln!("Waiting for a publisher. In OBS: Settings > Stream > Service: Custom...");
        eprintln!("  Server      {server}");
        eprintln!("  Stream Key  {stream_key}");
        eprintln!("ffmpeg or GStreamer: {url}");
        eprintln!("The call rings once the stream is live.");
    }
}
