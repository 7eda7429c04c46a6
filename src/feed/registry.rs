//! The registry of a node's feeds: it makes, finds, leases and ends them, and hands a
//! publisher the feed its key opens.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};

use super::model::{
    self, FeedError, FeedEvent, FeedKind, FeedMode, FeedRequest, FeedState, FeedView,
    PublishEndpoints, PublisherView, SrtEndpoint,
};
use super::monitor::{MonitorDoor, MonitorDoors};
use super::publisher::{Claim, Publisher, PushTarget};
use super::running::{Feed, FeedBirth, FeedMedia};
use super::secret;

use crate::media::contract::{Contract, Profile};
use crate::media::hub::StreamHub;
use crate::media::input::InputSpec;
use crate::media::live::{LiveSettings, Loops, MediaEvent, StreamStats};
use crate::media::topology::Topologies;

/// The most feeds a node runs at once unless told otherwise.
pub const DEFAULT_MAX_FEEDS: usize = 16;
/// How long an ended feed stays visible (its state and why it ended) before it is forgotten.
const KEEP_ENDED: Duration = Duration::from_secs(600);

/// How the registry runs.
#[derive(Clone)]
pub struct FeedSettings {
    pub max_feeds: usize,
    pub topologies: Topologies,
    /// Where publishers reach this node's RTMP server (`rtmp://HOST:PORT/live`), when it runs.
    pub rtmp_base: Option<String>,
    /// The SRT listeners' address, ports and latency, when the node takes SRT publishers.
    pub srt: Option<SrtEndpoint>,
    /// Where WHIP publishers reach the node, and how it takes WebRTC, when it does.
    pub whip: Option<super::model::WhipEndpoint>,
}

/// The feeds of this node; clones share them.
#[derive(Clone)]
pub struct Feeds {
    inner: Arc<Registry>,
}

struct Registry {
    settings: Mutex<FeedSettings>,
    /// Feeds being started (counted against the most a node runs).
    starting: AtomicUsize,
    feeds: Mutex<HashMap<String, Kept>>,
    events: broadcast::Sender<FeedEvent>,
    /// WHIP publishers' sessions, by resource id.
    whip_sessions: WhipSessions,
    /// Addresses that offered wrong WHIP bearer tokens.
    whip_strikes: super::strikes::Strikes,
    /// Sessions' room monitors, by stream key.
    monitors: MonitorDoors,
}

/// A session's hold on a feed: the feed's stream to publish, and its state to follow. The
/// stream is the feed's: dropping the lease only takes the session off the feed.
pub struct FeedLease {
    feed: Arc<Feed>,
    session: String,
    /// The call stays on the slate when the feed ends.
    stays: bool,
}

impl FeedLease {
    pub fn feed_id(&self) -> &str {
        &self.feed.id
    }

    pub fn hub(&self) -> Arc<StreamHub> {
        self.feed.hub()
    }

    pub fn state(&self) -> watch::Receiver<FeedState> {
        self.feed.states()
    }

    pub fn stats(&self) -> Option<StreamStats> {
        self.feed.stats()
    }

    pub fn media_events(&self) -> Option<broadcast::Receiver<MediaEvent>> {
        self.feed.media_events()
    }

    /// Resolves when the feed ends and the session is to end with it (never for a session
    /// that stays on the slate).
    pub async fn ended(&self) {
        if self.stays {
            return std::future::pending().await;
        }
        let mut state = self.feed.states();
        let _ = state.wait_for(|s| *s == FeedState::Ended).await;
    }

    /// Waits until the feed is live, at most `within`; why not otherwise.
    pub async fn live(&self, within: Duration) -> Result<(), String> {
        let mut state = self.feed.states();
        let waited = tokio::time::timeout(within, async {
            state
                .wait_for(|s| matches!(s, FeedState::Live | FeedState::Ended))
                .await
                .map(|s| *s)
        })
        .await;
        match waited {
            Ok(Ok(FeedState::Live)) => Ok(()),
            Ok(_) => Err(format!("feed {} ended before it went live", self.feed.id)),
            Err(_) => Err(format!(
                "feed {} was not live within {}s (feed_wait_secs): nothing rang",
                self.feed.id,
                within.as_secs()
            )),
        }
    }
}

impl Drop for FeedLease {
    fn drop(&mut self) {
        self.feed.leave(&self.session);
    }
}

impl Feeds {
    pub fn new(settings: FeedSettings) -> Self {
        Self {
            inner: Arc::new(Registry {
                settings: Mutex::new(settings),
                feeds: Mutex::new(HashMap::new()),
                starting: AtomicUsize::new(0),
                events: broadcast::channel(1024).0,
                whip_sessions: Default::default(),
                whip_strikes: super::strikes::Strikes::new(WHIP_KEY_FAILURES_PER_MINUTE),
                monitors: MonitorDoors::default(),
            }),
        }
    }

    /// Where publishers reach the RTMP server, once it listens.
    pub fn set_rtmp_base(&self, base: Option<String>) {
        self.inner.settings.lock().rtmp_base = base;
    }

    /// Where the SRT listeners are, when the node takes SRT publishers.
    pub fn set_srt(&self, srt: Option<SrtEndpoint>) {
        self.inner.settings.lock().srt = srt;
    }

    /// Where WHIP publishers reach the node, when it takes them.
    pub fn set_whip(&self, whip: Option<super::model::WhipEndpoint>) {
        self.inner.settings.lock().whip = whip;
    }

    /// Where WHIP publishers reach the node and how it takes WebRTC, when it does.
    pub fn whip_endpoint(&self) -> Option<super::model::WhipEndpoint> {
        self.inner.settings.lock().whip.clone()
    }

    pub(super) fn whip_strikes(&self) -> &super::strikes::Strikes {
        &self.inner.whip_strikes
    }

    pub(super) fn whip_sessions(&self) -> WhipSessions {
        self.inner.whip_sessions.clone()
    }

    fn endpoints(&self) -> PublishEndpoints {
        let settings = self.inner.settings.lock();
        PublishEndpoints {
            rtmp: settings.rtmp_base.clone(),
            srt: settings.srt.clone(),
            whip: settings.whip.as_ref().map(|w| w.base.clone()),
        }
    }

    /// Every feed event: state changes and figures once a second.
    pub fn events(&self) -> broadcast::Receiver<FeedEvent> {
        self.inner.events.subscribe()
    }

    /// Makes a feed and starts its stream. `input` is a pulled feed's input, already
    /// admitted by the caller's policy. The answer holds its publish settings.
    pub fn create(
        &self,
        request: FeedRequest,
        input: Option<InputSpec>,
    ) -> Result<FeedView, FeedError> {
        let kind = request.kind.unwrap_or(FeedKind::Rtmp);
        let name = request
            .name
            .clone()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if let Some(name) = &name
            && (name.chars().count() > model::MAX_NAME || name.chars().any(char::is_control))
        {
            return Err(FeedError::invalid(
                "name",
                format!(
                    "at most {} characters, none of them control characters",
                    model::MAX_NAME
                ),
            ));
        }
        let idle_timeout = request.idle_timeout_secs.map(Duration::from_secs);
        if idle_timeout.is_some_and(|t| t.is_zero() || t > model::MAX_IDLE_TIMEOUT) {
            return Err(FeedError::invalid(
                "idle_timeout_secs",
                format!(
                    "1 to {} seconds, or absent for never",
                    model::MAX_IDLE_TIMEOUT.as_secs()
                ),
            ));
        }
        let settings = self.inner.settings.lock().clone();
        let source = self.source(kind, &request, input, &settings)?;
        let _seat = self.take_seat(settings.max_feeds)?;
        let profile = request.profile.unwrap_or_default();
        let media = match request.mode.unwrap_or_default() {
            FeedMode::Passthrough if !matches!(kind, FeedKind::Rtmp | FeedKind::Whip) => {
                return Err(FeedError::invalid(
                    "mode",
                    "passthrough takes an rtmp or whip publisher's picture as it comes; other kinds are encoded",
                ));
            }
            FeedMode::Passthrough if profile == Profile::Audio => {
                return Err(FeedError::invalid(
                    "mode",
                    "passthrough needs a video profile",
                ));
            }
            FeedMode::Passthrough => FeedMedia::Passthrough {
                hub: Arc::new(StreamHub::new()),
                contract: Contract::new(profile),
            },
            FeedMode::Encoded => {
                let mut live = LiveSettings::new(Contract::new(profile));
                live.loops = Loops::Forever;
                let stream = crate::media::stream::start(
                    &crate::media::plan::Mode::Live,
                    &source.input,
                    live,
                    &settings.topologies,
                )
                .map_err(|e| FeedError::Start(e.to_string()))?;
                FeedMedia::Encoded(stream)
            }
        };
        let id = secret::feed_id();
        let feed = Feed::start(
            FeedBirth {
                id: id.clone(),
                kind,
                name,
                profile,
                idle_timeout,
                input: source.shown,
                secret: source.secret,
                inlet: source.inlet,
                srt_port: source.srt_port,
            },
            media,
            self.inner.events.clone(),
        );
        if let Some(srt) = &settings.srt
            && kind == FeedKind::Srt
            && let Err(e) = super::srt::listen(&feed, srt)
        {
            let started = feed.clone();
            tokio::spawn(async move { started.end("its SRT port could not be listened on").await });
            return Err(FeedError::Start(e));
        }
        tracing::info!(feed = %id, kind = kind.name(), "feed created");
        let endpoints = self.endpoints();
        let view = feed.view(Some(&endpoints));
        self.inner.feeds.lock().insert(id, (feed, None));
        Ok(view)
    }

    /// Where a new feed's media comes from: a publisher's inlet and secret for a pushed
    /// kind (and an SRT feed's port), the admitted input for a pulled one.
    fn source(
        &self,
        kind: FeedKind,
        request: &FeedRequest,
        input: Option<InputSpec>,
        settings: &FeedSettings,
    ) -> Result<Source, FeedError> {
        let pushed = |secret| {
            let inlet = crate::media::inlet::Inlet::new();
            Source {
                input: InputSpec::Pushed(inlet.clone()),
                inlet: Some(inlet),
                secret: Some(secret),
                shown: None,
                srt_port: None,
            }
        };
        if kind.is_pushed() && request.url.is_some() {
            return Err(FeedError::invalid(
                "url",
                "a pushed feed (rtmp, srt, whip) is pushed to: it takes no url",
            ));
        }
        match kind {
            FeedKind::Rtmp if settings.rtmp_base.is_none() => Err(FeedError::NoListener {
                kind: "RTMP",
                flag: "--rtmp-listen ADDR",
            }),
            FeedKind::Rtmp => Ok(pushed(secret::stream_key())),
            FeedKind::Whip if settings.whip.is_none() => Err(FeedError::NoListener {
                kind: "WHIP",
                flag: "its HTTP API (WHIP publishers reach it on the API's own port)",
            }),
            FeedKind::Whip => Ok(pushed(secret::stream_key())),
            FeedKind::Srt => {
                let srt = settings.srt.as_ref().ok_or(FeedError::NoListener {
                    kind: "SRT",
                    flag: "--srt-listen ADDR:PORT[-PORT]",
                })?;
                let port = self.free_srt_port(srt)?;
                Ok(Source {
                    srt_port: Some(port),
                    ..pushed(secret::passphrase())
                })
            }
            FeedKind::Rtsp | FeedKind::Pull => {
                let input = input.ok_or_else(|| {
                    FeedError::invalid(
                        "url",
                        "a pull feed plays a URL, `test:` or a device: give it in url",
                    )
                })?;
                Ok(Source {
                    shown: Some(input.describe()),
                    input,
                    inlet: None,
                    secret: None,
                    srt_port: None,
                })
            }
        }
    }

    /// A port of the SRT range no feed holds and nothing else has bound.
    fn free_srt_port(&self, srt: &SrtEndpoint) -> Result<u16, FeedError> {
        let held: Vec<u16> = self
            .inner
            .feeds
            .lock()
            .values()
            .filter(|(f, _)| f.state() != FeedState::Ended)
            .filter_map(|(f, _)| f.srt_port)
            .collect();
        srt.ports
            .clone()
            .filter(|p| *p == 0 || !held.contains(p))
            .find_map(|p| {
                let socket = std::net::UdpSocket::bind((srt.bind, p)).ok()?;
                socket.local_addr().ok().map(|a| a.port())
            })
            .ok_or_else(|| {
                FeedError::Start(format!(
                    "no free SRT port in {}-{} (--srt-listen)",
                    srt.ports.start(),
                    srt.ports.end()
                ))
            })
    }

    /// A place among the node's `max` feeds, held while one starts (no lock is held while
    /// its stream starts).
    fn take_seat(&self, max: usize) -> Result<Seat<'_>, FeedError> {
        let mut feeds = self.inner.feeds.lock();
        forget_old(&mut feeds);
        let running = feeds
            .values()
            .filter(|(f, _)| f.state() != FeedState::Ended)
            .count();
        let starting = self.inner.starting.fetch_add(1, Ordering::AcqRel);
        let seat = Seat(&self.inner.starting);
        if running + starting >= max {
            return Err(FeedError::Full(max));
        }
        Ok(seat)
    }

    fn find(&self, id: &str) -> Result<Arc<Feed>, FeedError> {
        self.inner
            .feeds
            .lock()
            .get(id)
            .map(|(f, _)| f.clone())
            .ok_or_else(|| FeedError::NotFound(id.to_owned()))
    }

    /// Every feed (without secrets), oldest first.
    pub fn list(&self) -> Vec<FeedView> {
        let feeds: Vec<Arc<Feed>> = {
            let mut feeds = self.inner.feeds.lock();
            forget_old(&mut feeds);
            feeds.values().map(|(f, _)| f.clone()).collect()
        };
        let mut views: Vec<FeedView> = feeds.iter().map(|f| f.view(None)).collect();
        views.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        views
    }

    /// One feed; with its publish settings (its secret) when `with_secret`.
    pub fn get(&self, id: &str, with_secret: bool) -> Result<FeedView, FeedError> {
        let feed = self.find(id)?;
        let endpoints = with_secret.then(|| self.endpoints());
        Ok(feed.view(endpoints.as_ref()))
    }

    /// Ends a feed and forgets it: its publisher dropped, its key refused from now on, its
    /// sessions ended.
    pub async fn delete(&self, id: &str) -> Result<FeedView, FeedError> {
        let (feed, _) = self
            .inner
            .feeds
            .lock()
            .remove(id)
            .ok_or_else(|| FeedError::NotFound(id.to_owned()))?;
        feed.end("deleted").await;
        Ok(feed.view(None))
    }

    /// Resolves when the feed `id` has ended and let its stream go (at once when there is
    /// none): what its encode held is free from then.
    pub fn released(&self, id: &str) -> impl std::future::Future<Output = ()> + Send + 'static {
        let feed = self.find(id).ok();
        async move {
            if let Some(feed) = feed {
                feed.released().await;
            }
        }
    }

    /// Gives a pushed feed a new key; the old one stops working and a connected publisher
    /// is dropped.
    pub fn rotate_key(&self, id: &str) -> Result<FeedView, FeedError> {
        let feed = self.find(id)?;
        if !feed.kind.is_pushed() {
            return Err(FeedError::invalid(
                "kind",
                "only a pushed feed (rtmp, srt) has a key",
            ));
        }
        if feed.state() == FeedState::Ended {
            return Err(FeedError::Ended(id.to_owned()));
        }
        let secret = match feed.kind {
            FeedKind::Srt => secret::passphrase(),
            _ => secret::stream_key(),
        };
        let endpoints = self.endpoints();
        feed.replace_secret(secret);
        if let (FeedKind::Srt, Some(srt)) = (feed.kind, &endpoints.srt) {
            super::srt::listen(&feed, srt).map_err(FeedError::Start)?;
        }
        tracing::info!(feed = %id, "feed key replaced");
        Ok(feed.view(Some(&endpoints)))
    }

    /// Puts `session` on a feed; `stays` keeps its call on the slate when the feed ends.
    pub fn lease(&self, id: &str, session: &str, stays: bool) -> Result<FeedLease, FeedError> {
        let feed = self.running(id)?;
        feed.join(session, stays)
            .map_err(|reason| FeedError::invalid("on_feed_end", reason))?;
        Ok(FeedLease {
            feed,
            session: session.to_owned(),
            stays,
        })
    }

    /// Whether a feed by this id runs and can carry a session that `stays` on its slate
    /// (for checks before a session is admitted).
    pub fn check(&self, id: &str, stays: bool) -> Result<(), FeedError> {
        let feed = self.running(id)?;
        if stays && feed.passes_through() {
            return Err(FeedError::invalid(
                "on_feed_end",
                format!(
                    "slate needs a feed callfeed encodes; feed {id} passes its publisher's stream through and has no slate (create it with mode: encoded, or use on_feed_end: end)"
                ),
            ));
        }
        Ok(())
    }

    /// The feed `id`, unless there is none or it has ended.
    fn running(&self, id: &str) -> Result<Arc<Feed>, FeedError> {
        let feed = self.find(id)?;
        if feed.state() == FeedState::Ended {
            return Err(FeedError::Ended(id.to_owned()));
        }
        Ok(feed)
    }

    /// Takes an RTMP publisher for the feed whose stream key `key` is; a feed that has one
    /// keeps it.
    pub(crate) fn claim_rtmp(&self, key: &str, address: &str) -> Result<PushTarget, Claim> {
        if MonitorDoors::is_monitor_key(key) {
            let seat = self.inner.monitors.claim(key).ok_or(Claim::WrongKey)?;
            tracing::info!(%address, "room monitor publisher connected");
            return Ok(PushTarget::Monitor(seat));
        }
        let feed = self.by_rtmp_key(key).ok_or(Claim::WrongKey)?;
        let inlet = feed.inlet.clone().ok_or(Claim::WrongKey)?;
        // From here the guard gives the feed back, whatever happens.
        let mut publisher = seat_publisher(feed, address)?;
        if publisher.feed.passes_through() {
            publisher.feed.pass_connected();
        } else {
            match inlet.connect(crate::media::inlet::Container::Flv) {
                Ok(writer) => publisher.writer = Some(writer),
                Err(e) => {
                    publisher.feed.refused(&e.to_string(), address);
                    return Err(Claim::Taken);
                }
            }
        }
        Ok(PushTarget::Feed(publisher))
    }

    /// Whether the node can take a room monitor's publish (it runs an RTMP server).
    pub fn takes_monitors(&self) -> bool {
        self.inner.settings.lock().rtmp_base.is_some()
    }

    /// A door for a session's room monitor on the RTMP server: where the cloud publishes
    /// what the room carries. `None` when the node runs no RTMP server (`--rtmp-listen`).
    pub fn open_monitor(&self) -> Option<MonitorDoor> {
        let base = self.inner.settings.lock().rtmp_base.clone()?;
        Some(self.inner.monitors.open(&base))
    }

    /// Takes a WHIP publisher for feed `id` when `bearer` is its key; a feed that has one
    /// keeps it.
    pub(super) fn claim_whip(
        &self,
        id: &str,
        bearer: &str,
        address: &str,
    ) -> Result<Publisher, Claim> {
        let feed = self
            .running(id)
            .ok()
            .filter(|f| f.kind == FeedKind::Whip && f.has_key(bearer))
            .ok_or(Claim::WrongKey)?;
        seat_publisher(feed, address)
    }

    /// The WHIP feed `id`, if it is one; whether `bearer` is its key (compared in constant
    /// time).
    pub(super) fn whip_feed_keyed(&self, id: &str, bearer: &str) -> Option<(Arc<Feed>, bool)> {
        let feed = self.find(id).ok().filter(|f| f.kind == FeedKind::Whip)?;
        let fits = feed.has_key(bearer);
        Some((feed, fits))
    }

    /// The running feed whose stream key `key` is (compared in constant time with each).
    fn by_rtmp_key(&self, key: &str) -> Option<Arc<Feed>> {
        let feeds: Vec<Arc<Feed>> = self
            .inner
            .feeds
            .lock()
            .values()
            .map(|(f, _)| f.clone())
            .filter(|f| f.kind == FeedKind::Rtmp && f.state() != FeedState::Ended)
            .collect();
        // Every key is compared, so how long this takes says nothing of which one matched.
        feeds.into_iter().fold(
            None,
            |found, f| if f.has_key(key) { Some(f) } else { found },
        )
    }

    /// Ends every feed (the node shuts down).
    pub async fn end_all(&self, reason: &str) {
        let feeds: Vec<Arc<Feed>> = self
            .inner
            .feeds
            .lock()
            .drain()
            .map(|(_, (f, _))| f)
            .collect();
        for feed in feeds {
            feed.end(reason).await;
        }
    }
}

/// Seats a publisher on `feed` unless it has one: the guard that gives the seat back.
fn seat_publisher(feed: Arc<Feed>, address: &str) -> Result<Publisher, Claim> {
    let Some(kicked) = feed.take_publisher(PublisherView::connected(address)) else {
        feed.refused("the feed already has a publisher", address);
        return Err(Claim::Taken);
    };
    tracing::info!(feed = %feed.id, %address, "feed publisher connected");
    Ok(Publisher {
        feed,
        writer: None,
        kicked,
    })
}

/// Where a new feed's media comes from.
struct Source {
    input: InputSpec,
    inlet: Option<crate::media::inlet::Inlet>,
    secret: Option<secrecy::SecretString>,
    /// A pulled feed's input, as a person would name it.
    shown: Option<String>,
    srt_port: Option<u16>,
}

/// Wrong WHIP bearer tokens an address may offer a minute before it is turned away for one.
const WHIP_KEY_FAILURES_PER_MINUTE: u32 = 10;

/// The running WHIP sessions, by resource id: the feed each publishes to, and what ends it.
pub(super) type WhipSessions = Arc<Mutex<HashMap<String, (String, watch::Sender<bool>)>>>;

/// A feed, and when it was first seen ended.
type Kept = (Arc<Feed>, Option<std::time::Instant>);

/// A feed starting, counted until dropped.
struct Seat<'a>(&'a AtomicUsize);

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Forgets feeds that ended more than [`KEEP_ENDED`] ago (and stamps those just ended).
fn forget_old(feeds: &mut HashMap<String, Kept>) {
    for (feed, ended_at) in feeds.values_mut() {
        if feed.state() == FeedState::Ended && ended_at.is_none() {
            *ended_at = Some(std::time::Instant::now());
        }
    }
    feeds.retain(|_, (_, ended_at)| ended_at.is_none_or(|t| t.elapsed() < KEEP_ENDED));
}
