//! `callfeed serve`: the HTTP service (sessions API, webhooks, metrics, session streams)
//! and the checks it makes before it agrees to listen.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;

use crate::app;
use crate::cloud::InvalidArgument;
use crate::config::Config;
use crate::media::policy::{InputPolicy, Restrictions};
use crate::media::topology::Topologies;
use crate::serve::api::{Service, ServiceConfig};
use crate::serve::webhooks::WebhookKeys;
use crate::session::driver;
use crate::store::Cluster;

#[derive(Args)]
pub(super) struct ServeArgs {
    /// The API and the session streams (`/live/...`, `/files/...`) are served here.
    #[arg(long, default_value = "127.0.0.1:8730", value_parser = super::args::listen_addr)]
    listen: std::net::SocketAddr,
    /// The base URL the cloud reaches this server at, when it is not the listen address.
    /// It exposes the node like a public --listen: CALLFEED_API_TOKEN is required (or
    /// --allow-unauthenticated).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The session journal (default: $XDG_STATE_HOME/callfeed/journal.sqlite).
    #[arg(long, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// Record sessions in this PostgreSQL database, shared by a cluster of nodes, instead of
    /// the local journal: postgres://user[:password]@host[:port]/database.
    #[arg(
        long,
        env = "CALLFEED_STORE",
        hide_env_values = true,
        value_name = "URL",
        conflicts_with = "journal"
    )]
    store: Option<String>,
    /// With --store: this node's lease on the store's clock. A node that has not renewed it
    /// for this long is taken for gone, and other nodes stop its sessions' cloud tasks.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    lease_secs: f64,
    /// On SIGTERM or POST /v1/drain, let running sessions finish by themselves for this
    /// long before ending the rest (rolling restarts).
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    drain_grace: u64,
    /// How much of this node's room (--max-sessions) a live-encoded session takes, as a
    /// multiple of its profile's cost (audio 1, 360p 2, 540p 3, 720p 5, 1080p 12 units).
    #[arg(long, default_value_t = 1, value_name = "N")]
    live_cost: u32,
    /// The units an announcement, passthrough or handed-over URL takes.
    #[arg(long, default_value_t = 1, value_name = "N")]
    announcement_cost: u32,
    /// With --store: while this node's own CPU use is at or above this share of the machine
    /// (measured at each lease renewal), the cluster places no new session here; 100 never
    /// refuses.
    #[arg(long, default_value_t = 95.0, value_name = "PERCENT")]
    max_cpu: f64,
    /// API clients may play files under this folder (repeatable; none: no files at all).
    #[arg(long, value_name = "DIR")]
    media_root: Vec<PathBuf>,
    /// API clients may use capture devices and custom source topologies.
    #[arg(long)]
    allow_devices: bool,
    /// API clients may name this URL host even though it is private or loopback (repeatable).
    #[arg(long, value_name = "HOST")]
    allow_url_host: Vec<String>,
    /// Serve the API without a token on a non-loopback address or behind --public-url
    /// (CALLFEED_API_TOKEN unset).
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Do not receive call-engine and TRTC webhooks (sessions poll the cloud instead).
    #[arg(long)]
    no_webhooks: bool,
    /// This node's room, in cost units (--live-cost, --announcement-cost): what does not fit
    /// is answered 429 (default: 20 per core, about what the cores encode in real time).
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// How long an ended session stays readable over the API, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    keep_ended: u64,
    /// Open connections at most; one more is closed at once.
    #[arg(long, value_name = "N", default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS)]
    #[arg(value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// Open connections one peer address (an IPv6 /64) may hold; one more is closed at once
    /// (default: a quarter of --max-connections; behind a reverse proxy, every client is
    /// the proxy's address).
    #[arg(long, value_name = "N")]
    #[arg(value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections_per_peer: Option<usize>,
    /// Event streams (SSE) one client may hold open at once: per API token or console login,
    /// or per address without a token; more are answered 429.
    #[arg(long, value_name = "N", default_value_t = crate::serve::api::DEFAULT_MAX_EVENT_STREAMS)]
    #[arg(value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_event_streams: usize,
    /// Run the in-process emulator as the cloud (demo credentials, callees that answer):
    /// try the API and the console at / without a Tencent account.
    #[arg(long)]
    emulator: bool,
    /// With --emulator: callees answer after this many ms.
    #[arg(long, value_name = "MS", default_value_t = 1500, requires = "emulator")]
    callee_answers_after: u64,
    #[command(flatten)]
    input_size: super::args::InputSizeArgs,
    #[command(flatten)]
    feeds: FeedArgs,
    #[command(flatten)]
    monitoring: super::monitoring::MonitorArgs,
    #[command(flatten)]
    webrtc: super::webrtc::WebRtcArgs,
}

/// Feeds: live inputs encoders push to (or this node pulls), shared by any number of calls.
#[derive(Args)]
struct FeedArgs {
    /// Take RTMP publishers (OBS, ffmpeg, hardware encoders) for feeds on this address, e.g.
    /// 0.0.0.0:1935 (default: no RTMP server; pulled feeds work without one).
    #[arg(long, value_name = "ADDR")]
    rtmp_listen: Option<std::net::SocketAddr>,
    /// The host (or host:port) publishers reach the RTMP server at, as the feeds' publish
    /// settings name it (default: --public-url's host, else the listen address).
    #[arg(long, value_name = "HOST[:PORT]", requires = "rtmp_listen")]
    rtmp_public: Option<String>,
    /// Take SRT publishers for feeds: each SRT feed listens on a UDP port of its own (its
    /// passphrase belongs to the socket) from this range, e.g. 0.0.0.0:9000-9099 (open it in
    /// the firewall); a single port takes one SRT feed (PORT 0: any free port).
    #[arg(long, value_name = "ADDR:PORT[-PORT]", value_parser = srt_ports)]
    srt_listen: Option<(std::net::IpAddr, std::ops::RangeInclusive<u16>)>,
    /// The host publishers reach the SRT ports at (default: --public-url's host, else the
    /// listen address).
    #[arg(long, value_name = "HOST", requires = "srt_listen")]
    srt_public: Option<String>,
    /// SRT's receive latency in milliseconds (publishers' URLs say it in microseconds); the
    /// larger of both sides' applies.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 200,
        requires = "srt_listen"
    )]
    #[arg(value_parser = clap::builder::RangedU64ValueParser::<u32>::new().range(20..=8000))]
    srt_latency: u32,
    /// Feeds running at once at most.
    #[arg(long, value_name = "N", default_value_t = crate::feed::DEFAULT_MAX_FEEDS)]
    #[arg(value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_feeds: usize,
    /// A publisher sending more than this (kbit/s, over a few seconds) is dropped.
    #[arg(long, value_name = "KBPS", default_value_t = 20_000)]
    #[arg(value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(100..))]
    max_feed_kbps: u64,
}

/// `ADDR:PORT` or `ADDR:LOW-HIGH`: where SRT feeds listen.
fn srt_ports(value: &str) -> Result<(std::net::IpAddr, std::ops::RangeInclusive<u16>), String> {
    let wrong = || format!("`{value}`: an address and a port or a range, e.g. 0.0.0.0:9000-9099");
    let (host, ports) = value.rsplit_once(':').ok_or_else(wrong)?;
    let ip: std::net::IpAddr = host.trim_matches(['[', ']']).parse().map_err(|_| wrong())?;
    let (low, high) = ports.split_once('-').unwrap_or((ports, ports));
    let (low, high): (u16, u16) = (
        low.parse().map_err(|_| wrong())?,
        high.parse().map_err(|_| wrong())?,
    );
    if low > high || (low == 0 && high != 0) {
        return Err(wrong());
    }
    Ok((ip, low..=high))
}

/// The node's feeds, and its RTMP server when asked for: `rtmp://HOST:PORT/live` names the
/// host publishers reach.
async fn start_feeds(
    args: &ServeArgs,
    topologies: &Topologies,
) -> anyhow::Result<(crate::feed::Feeds, Option<crate::feed::rtmp::RtmpServer>)> {
    let feeds = crate::feed::Feeds::new(crate::feed::FeedSettings {
        max_feeds: args.feeds.max_feeds,
        topologies: topologies.clone(),
        rtmp_base: None,
        srt: None,
        whip: None,
    });
    let public_url_host = args
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    if let Some((bind, ports)) = &args.feeds.srt_listen {
        let public_host = args
            .feeds
            .srt_public
            .clone()
            .or_else(|| public_url_host.clone())
            .unwrap_or_else(|| match bind.is_unspecified() {
                true => "127.0.0.1".to_owned(),
                false => bind.to_string(),
            });
        feeds.set_srt(Some(crate::feed::SrtEndpoint {
            bind: *bind,
            ports: ports.clone(),
            public_host,
            latency_ms: args.feeds.srt_latency,
        }));
    }
    let Some(listen) = args.feeds.rtmp_listen else {
        return Ok((feeds, None));
    };
    let limits = crate::feed::rtmp::RtmpLimits {
        max_kbps: args.feeds.max_feed_kbps,
        max_connections: args.feeds.max_feeds * 4 + 16,
        ..Default::default()
    };
    let public_host = args.feeds.rtmp_public.clone().or(public_url_host);
    let server = super::feed::start_rtmp(&feeds, listen, public_host.as_deref(), limits).await?;
    Ok((feeds, Some(server)))
}

/// The secret in an environment variable, if set and not empty.
fn secret_env(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
}

/// The flag that makes this node reachable from beyond this machine, and its value: a
/// non-loopback --listen, else a --public-url. The one place that decides what counts as
/// exposed.
fn exposed_by(args: &ServeArgs) -> Option<(&'static str, String)> {
    if !args.listen.ip().is_loopback() {
        return Some(("--listen", args.listen.to_string()));
    }
    let public = args.public_url.as_deref()?;
    Some(("--public-url", crate::redact::redact_url(public)))
}

/// What `serve` refuses to start with when exposed (see `exposed_by`): no API token, or, on
/// a public listen address, webhooks nobody could tell from forgeries.
fn check_exposure(
    args: &ServeArgs,
    token: &Option<SecretString>,
    keys: &WebhookKeys,
) -> anyhow::Result<()> {
    let Some((flag, value)) = exposed_by(args) else {
        return Ok(());
    };
    if token.is_none() && !args.allow_unauthenticated {
        let allowed = match flag {
            "--listen" => {
                "a loopback address, or set CALLFEED_API_TOKEN (or pass --allow-unauthenticated to serve the API to anyone who reaches it)"
            }
            _ => {
                "only with CALLFEED_API_TOKEN set (or pass --allow-unauthenticated to serve the API to anyone who reaches the node through that URL)"
            }
        };
        anyhow::bail!(InvalidArgument::new(flag, value, allowed));
    }
    // A reverse proxy at the public URL may pass the webhooks on or not: only a public
    // listen address is known to receive them from anyone.
    if flag == "--listen"
        && !args.no_webhooks
        && (keys.callback_key.is_none() || keys.call_token.is_none())
    {
        anyhow::bail!(InvalidArgument::new(
            "--listen",
            args.listen,
            "a loopback address, or set CALLFEED_CALLBACK_KEY (TRTC's callback key) and CALLFEED_CALL_WEBHOOK_TOKEN (append ?token=... to the call webhook URL), or pass --no-webhooks"
        ));
    }
    Ok(())
}

/// What one client may hold of the server: the defaults for --max-connections, and the
/// per-peer cap if given.
fn http_limits(args: &ServeArgs) -> crate::server::HttpLimits {
    let mut limits = crate::server::HttpLimits::with_max_connections(args.max_connections);
    if let Some(per_peer) = args.max_connections_per_peer {
        limits.max_connections_per_peer = per_peer;
    }
    limits
}

pub(super) async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    let emulator = if args.emulator {
        if args.store.is_some() {
            anyhow::bail!(InvalidArgument::new(
                "--emulator",
                "with --store",
                "one node on its own journal: the emulator lives in this process, a cluster's nodes would each have their own cloud"
            ));
        }
        let answer = crate::emulator::Behaviour::Answer {
            after_ms: args.callee_answers_after,
            hangup_after_ms: None,
        };
        Some(std::sync::Arc::new(
            app::start_embedded_emulator(&mut config, answer, &[]).await?,
        ))
    } else {
        None
    };
    let config = &config;
    let token = secret_env("CALLFEED_API_TOKEN");
    let fingerprint = crate::serve::cluster::token_fingerprint(token.as_ref());
    let webhook_keys = WebhookKeys {
        callback_key: secret_env("CALLFEED_CALLBACK_KEY"),
        call_token: secret_env("CALLFEED_CALL_WEBHOOK_TOKEN"),
    };
    check_exposure(&args, &token, &webhook_keys)?;
    let record = args.monitoring.start()?;
    let event_webhook = args
        .monitoring
        .event_webhook(secret_env("CALLFEED_EVENT_WEBHOOK_KEY"))?;
    let default_monitor = super::monitoring::default_monitor(config.monitor.as_ref())?;
    if let Some(m) = default_monitor {
        if args.feeds.rtmp_listen.is_none() {
            anyhow::bail!(InvalidArgument::new(
                "[monitor]",
                "set",
                "a node with an RTMP server for the cloud to publish rooms to: add --rtmp-listen",
            ));
        }
        if m.record.is_some() && record.is_none() {
            anyhow::bail!(InvalidArgument::new(
                "[monitor] record",
                "set",
                "a node that records: add --record-dir DIR",
            ));
        }
    }
    let restrictions =
        Restrictions::new(&args.media_root, args.allow_devices, &args.allow_url_host)
            .map_err(|e| InvalidArgument::new("--media-root", e, "an existing folder"))?;
    let cloud = app::cloud_clients(config)?;
    let journal = journal_at(&args, emulator.is_some())?.open().await?;
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
    let (streams, stream_routes) = crate::publish::StreamServer::attached(&public);
    let cluster = lease_of(&args)?;
    let max_sessions = capacity(&args);
    let topologies = Topologies::load(&config.pipelines)?;
    let (feeds, _rtmp) = start_feeds(&args, &topologies).await?;
    // WHIP publishers reach the node where its API is, under the public URL if given.
    feeds.set_whip(Some(crate::feed::WhipEndpoint {
        base: public.trim_end_matches('/').to_owned(),
        webrtc: args.webrtc.settings(addr.ip())?,
    }));
    let service = Service::new(
        cloud,
        journal.journal().clone(),
        ServiceConfig {
            token,
            sdkappid: config.require_sdkappid()?,
            webhook_keys,
            webhooks: !args.no_webhooks,
            driver: driver::DriverSettings {
                room_witness: emulator.as_ref().map(app::room_witness),
                input_bounds: args.input_size.into(),
                feeds: Some(feeds.clone()),
                record,
                ..driver::DriverSettings::new(streams)
            },
            room_view: emulator.as_ref().map(app::room_view),
            topologies,
            policy: InputPolicy::Restricted(restrictions),
            max_sessions,
            keep_ended: std::time::Duration::from_secs(args.keep_ended),
            relay: config.relay.clone(),
            cluster: cluster.clone(),
            listen: Some(addr),
            public_url: args.public_url.clone(),
            max_event_streams: args.max_event_streams,
            event_webhook,
            default_monitor,
            drain_grace: std::time::Duration::from_secs(args.drain_grace),
            costs: crate::serve::cluster::PlacementCosts {
                live: args.live_cost.max(1),
                announcement: args.announcement_cost.max(1),
            },
        },
    );
    let shared = journal.journal().cluster();
    if let (Some(url), Some(lease), Some(shared)) = (&args.store, &cluster, shared) {
        let info = crate::store::NodeInfo {
            api_url: format!("http://{addr}"),
            stream_base: public.clone(),
            capacity: u32::try_from(max_sessions).unwrap_or(u32::MAX),
            token_fingerprint: fingerprint,
        };
        join_cluster(url, lease, &service, info, shared).await?;
    }
    for (id, note) in service.recover().await {
        eprintln!("recovered session {id} left open by an earlier run: {note}");
    }
    say_where(addr, emulator.is_some(), &args);
    let router = service.router().merge(stream_routes);
    let drained = service.clone();
    crate::server::serve(listener, router, http_limits(&args), async move {
        tokio::select! {
            _ = app::shutdown_signal() => {}
            _ = drained.drain_asked() => {}
        }
        // No new sessions; every running one ends cleanly before the server stops.
        drained.drain().await;
    })
    .await?;
    feeds.end_all("the node stopped").await;
    if cluster.is_some()
        && let Some(shared) = shared
        && let Err(e) = shared.leave().await
    {
        tracing::warn!(error = %e, "could not remove this node from the cluster");
    }
    if let Some(emulator) = emulator.and_then(std::sync::Arc::into_inner) {
        emulator.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where sessions are recorded: the cluster's PostgreSQL (`--store`), a scratch journal for
/// the emulator (it forgets its calls when it stops: nothing to recover later), or a file.
fn journal_at(args: &ServeArgs, emulated: bool) -> anyhow::Result<app::JournalAt> {
    Ok(match &args.store {
        Some(url) => {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("postgres" | "postgresql")) {
                anyhow::bail!(InvalidArgument::new(
                    "--store",
                    crate::redact::redact_url(url),
                    "a postgres://user@host/database URL (without --store, sessions go to the local journal)"
                ));
            }
            app::JournalAt::Postgres(url.clone())
        }
        None if emulated && args.journal.is_none() => app::JournalAt::Scratch,
        None => app::JournalAt::file_or_default(args.journal.clone()),
    })
}

/// This node's lease, when it joins a cluster (`--store`), its limits checked.
fn lease_of(
    args: &ServeArgs,
) -> anyhow::Result<Option<std::sync::Arc<crate::serve::cluster::LeaseState>>> {
    Ok(match &args.store {
        Some(_) if !(0.5..=3600.0).contains(&args.lease_secs) => {
            anyhow::bail!(InvalidArgument::new(
                "--lease-secs",
                args.lease_secs,
                "0.5 to 3600 seconds"
            ));
        }
        Some(_) if !(0.0..=100.0).contains(&args.max_cpu) => {
            anyhow::bail!(InvalidArgument::new(
                "--max-cpu",
                args.max_cpu,
                "0 to 100 percent"
            ));
        }
        Some(_) => Some(crate::serve::cluster::LeaseState::new(
            std::time::Duration::from_secs_f64(args.lease_secs),
            if args.max_cpu >= 100.0 {
                f64::INFINITY
            } else {
                args.max_cpu
            },
        )),
        None => None,
    })
}

/// The node's room in cost units (`--max-sessions`, or what its cores encode in real time).
fn capacity(args: &ServeArgs) -> usize {
    let max_sessions = args
        .max_sessions
        .unwrap_or_else(crate::serve::api::default_max_sessions);
    let largest = crate::media::contract::Profile::P1080.live_cost() * args.live_cost.max(1);
    if max_sessions < largest as usize {
        tracing::warn!(
            max_sessions,
            largest,
            "--max-sessions is a room in cost units: a live 1080p session ({largest} units) never fits; live sessions of that profile are refused"
        );
    }
    max_sessions
}

/// Where the API and the console are: one JSON line on stdout for scripts, a hint on
/// stderr for a person running the embedded emulator.
fn say_where(addr: std::net::SocketAddr, emulated: bool, args: &ServeArgs) {
    println!(
        "{}",
        serde_json::json!({ "api": format!("http://{addr}"), "console": format!("http://{addr}/") })
    );
    if emulated {
        eprintln!(
            "console: http://{addr}/ — the cloud is the in-process emulator (callees answer after {} ms)",
            args.callee_answers_after
        );
    }
}

/// Registers this node in the cluster's store, keeps its lease, and stops its sessions
/// whenever the lease is found gone.
async fn join_cluster<C: crate::session::CloudOps + 'static>(
    url: &str,
    lease: &std::sync::Arc<crate::serve::cluster::LeaseState>,
    service: &std::sync::Arc<Service<C>>,
    info: crate::store::NodeInfo,
    store: &impl Cluster,
) -> anyhow::Result<()> {
    store.register_node(&info, lease.lease).await?;
    let probe = std::sync::Arc::downgrade(service);
    let load: crate::serve::cluster::LoadProbe =
        Box::new(move || probe.upgrade().map_or((0, true), |svc| svc.load()));
    let mut lost = crate::serve::cluster::keep_lease(url.to_owned(), info, lease.clone(), load);
    let service = std::sync::Arc::downgrade(service);
    tokio::spawn(async move {
        while lost.recv().await.is_some() {
            match service.upgrade() {
                Some(svc) => svc.stop_all(),
                None => return,
            }
        }
    });
    Ok(())
}
