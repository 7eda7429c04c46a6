//! One feed while it runs: its stream (decoded and encoded once, whoever watches), its
//! state, its publisher, the sessions on it, and the watcher that keeps its state and
//! figures from what the stream reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, watch};

use super::model::{
    FeedEvent, FeedFigures, FeedKind, FeedMode, FeedState, FeedView, PublishEndpoints,
    PublishSettings, PublisherView, Refusal,
};
use crate::media::contract::Profile;
use crate::media::hub::StreamHub;
use crate::media::inlet::Inlet;
use crate::media::live::{LiveStream, MediaEvent, StreamStats};

/// How long a stopped stream may take to flush before it is let go.
const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How often a feed's figures are sampled (and sent to its event streams).
const FIGURES_EVERY: Duration = Duration::from_secs(1);

/// What a feed was made with.
pub(crate) struct FeedBirth {
    pub(crate) id: String,
    pub(crate) kind: FeedKind,
    pub(crate) name: Option<String>,
    pub(crate) profile: Profile,
    pub(crate) idle_timeout: Option<Duration>,
    /// A pulled feed's input, as a person would name it.
    pub(crate) input: Option<String>,
    pub(crate) secret: Option<SecretString>,
    pub(crate) inlet: Option<Inlet>,
    /// An SRT feed's port.
    pub(crate) srt_port: Option<u16>,
}

pub(crate) struct Feed {
    pub(crate) id: String,
    pub(crate) kind: FeedKind,
    name: Option<String>,
    profile: Profile,
    created: u64,
    idle_timeout: Option<Duration>,
    input: Option<String>,
    secret: Mutex<Option<SecretString>>,
    pub(crate) inlet: Option<Inlet>,
    pub(crate) srt_port: Option<u16>,
    srt: Mutex<Option<crate::media::srt::SrtListener>>,
    hub: Arc<StreamHub>,
    stream: Mutex<Option<LiveStream>>,
    /// A passed-through feed's tags and the events it tells its watcher.
    passthrough: Option<Passthrough>,
    /// The stream's figures as they were when it stopped.
    last_stats: Mutex<Option<StreamStats>>,
    state: watch::Sender<FeedState>,
    since: AtomicU64,
    publisher: Mutex<Option<Connected>>,
    publishers: AtomicU32,
    /// The sessions on it, each with whether it stays on the slate once the feed ends.
    sessions: Mutex<BTreeMap<String, bool>>,
    /// How many of them stay: an ended feed's stream carries the slate until none is left.
    staying: watch::Sender<usize>,
    /// How many times a session joined: a passed-through publisher is asked for a keyframe
    /// each time, so the new call's room starts at once.
    joins: watch::Sender<u64>,
    last_refusal: Mutex<Option<Refusal>>,
    ended_reason: Mutex<Option<String>>,
    kbps: AtomicU64,
    events: broadcast::Sender<FeedEvent>,
}

/// How a feed's media is made.
pub(crate) enum FeedMedia {
    Encoded(LiveStream),
    Passthrough {
        hub: Arc<StreamHub>,
        contract: crate::media::contract::Contract,
    },
}

struct Passthrough {
    tags: Mutex<crate::media::pushed_passthrough::TagPassthrough>,
    told: broadcast::Sender<MediaEvent>,
}

/// The publisher a feed has now.
struct Connected {
    view: PublisherView,
    /// Sent `true` to drop it (the feed ended, its key changed).
    kick: watch::Sender<bool>,
}

impl Feed {
    pub(crate) fn start(
        birth: FeedBirth,
        media: FeedMedia,
        events: broadcast::Sender<FeedEvent>,
    ) -> Arc<Self> {
        // A passed-through stream has no engine to report on it: the publisher's side
        // tells its watcher the same events.
        let (stream, hub, passthrough, media_events) = match media {
            FeedMedia::Encoded(stream) => {
                let (hub, events) = (stream.hub(), stream.events());
                (Some(stream), hub, None, events)
            }
            FeedMedia::Passthrough { hub, contract } => {
                let (told, media_events) = broadcast::channel(64);
                let tags =
                    crate::media::pushed_passthrough::TagPassthrough::new(hub.clone(), contract);
                (
                    None,
                    hub,
                    Some(Passthrough {
                        tags: Mutex::new(tags),
                        told,
                    }),
                    media_events,
                )
            }
        };
        let feed = Arc::new(Self {
            id: birth.id,
            kind: birth.kind,
            name: birth.name,
            profile: birth.profile,
            created: crate::clock::unix_secs(),
            idle_timeout: birth.idle_timeout,
            input: birth.input,
            secret: Mutex::new(birth.secret),
            inlet: birth.inlet,
            srt_port: birth.srt_port,
            srt: Mutex::new(None),
            hub,
            stream: Mutex::new(stream),
            passthrough,
            last_stats: Mutex::new(None),
            state: watch::Sender::new(FeedState::Waiting),
            since: AtomicU64::new(crate::clock::unix_secs()),
            publisher: Mutex::new(None),
            publishers: AtomicU32::new(0),
            sessions: Mutex::new(BTreeMap::new()),
            staying: watch::Sender::new(0),
            joins: watch::Sender::new(0),
            last_refusal: Mutex::new(None),
            ended_reason: Mutex::new(None),
            kbps: AtomicU64::new(0),
            events,
        });
        tokio::spawn(watch_feed(Arc::downgrade(&feed), media_events));
        feed
    }

    /// Whether the publisher's stream goes to the calls as it comes.
    pub(crate) fn passes_through(&self) -> bool {
        self.passthrough.is_some()
    }

    /// A new publisher's connection begins on a passed-through feed.
    pub(crate) fn pass_connected(&self) {
        if let Some(p) = &self.passthrough {
            p.tags.lock().connected();
        }
    }

    /// One of the publisher's media messages, passed through; why it cannot be otherwise.
    pub(crate) fn pass(&self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<(), String> {
        let Some(p) = &self.passthrough else {
            return Err("not a passthrough feed".into());
        };
        let passed = p.tags.lock().send(kind, timestamp_ms, body)?;
        if let Some(inlet) = &self.inlet {
            inlet.count(body.len());
        }
        if passed == crate::media::pushed_passthrough::Passed::FirstMedia {
            let _ = p.told.send(MediaEvent::FirstMedia);
        }
        Ok(())
    }

    /// The publisher of a passed-through feed left: its calls' picture holds.
    pub(crate) fn pass_gone(&self, reason: &str) {
        if let Some(p) = &self.passthrough {
            let _ = p.told.send(MediaEvent::OnSlate {
                reason: reason.to_owned(),
            });
        }
    }

    pub(crate) fn state(&self) -> FeedState {
        *self.state.borrow()
    }

    pub(crate) fn states(&self) -> watch::Receiver<FeedState> {
        self.state.subscribe()
    }

    pub(crate) fn hub(&self) -> Arc<StreamHub> {
        self.hub.clone()
    }

    pub(crate) fn media_events(&self) -> Option<broadcast::Receiver<MediaEvent>> {
        self.stream.lock().as_ref().map(LiveStream::events)
    }

    pub(crate) fn stats(&self) -> Option<StreamStats> {
        let running = self.stream.lock().as_ref().map(LiveStream::stats);
        running.or_else(|| self.last_stats.lock().clone())
    }

    /// Whether `key` is this feed's stream key, compared in constant time.
    pub(crate) fn has_key(&self, key: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.secret
            .lock()
            .as_ref()
            .is_some_and(|s| bool::from(s.expose_secret().as_bytes().ct_eq(key.as_bytes())))
    }

    /// Gives the feed a new secret; a connected publisher (who used the old one) is dropped.
    pub(crate) fn replace_secret(&self, secret: SecretString) {
        *self.secret.lock() = Some(secret);
        self.kick_publisher();
    }

    /// The secret an SRT listener is opened with.
    pub(crate) fn secret(&self) -> Option<SecretString> {
        self.secret.lock().clone()
    }

    /// Holds the feed's SRT listener (dropping the one it had, which closes its socket).
    pub(crate) fn hold_srt(&self, listener: Option<crate::media::srt::SrtListener>) {
        let old = self.srt.lock().take();
        drop(old);
        *self.srt.lock() = listener;
    }

    pub(crate) fn publish_settings(&self, endpoints: &PublishEndpoints) -> Option<PublishSettings> {
        let secret = self.secret.lock();
        let key = secret.as_ref()?.expose_secret();
        match self.kind {
            FeedKind::Rtmp => {
                let server = endpoints.rtmp.clone()?;
                Some(PublishSettings::Rtmp {
                    url: format!("{server}/{key}"),
                    server,
                    stream_key: key.to_owned(),
                })
            }
            FeedKind::Srt => {
                let srt = endpoints.srt.as_ref()?;
                let port = self.srt_port?;
                let latency_us = u64::from(srt.latency_ms) * 1000;
                Some(PublishSettings::Srt {
                    url: format!(
                        "srt://{}:{port}?streamid={}&passphrase={key}&latency={latency_us}",
                        srt.public_host, self.id
                    ),
                    streamid: self.id.clone(),
                    passphrase: key.to_owned(),
                    latency_ms: srt.latency_ms,
                })
            }
            FeedKind::Whip => Some(PublishSettings::Whip {
                url: format!("{}/v1/whip/{}", endpoints.whip.as_ref()?, self.id),
                bearer: key.to_owned(),
            }),
            FeedKind::Rtsp | FeedKind::Pull => None,
        }
    }

    /// Takes a publisher, unless one is connected already (the first keeps the feed).
    pub(crate) fn take_publisher(&self, view: PublisherView) -> Option<watch::Receiver<bool>> {
        if self.state() == FeedState::Ended {
            return None;
        }
        let mut publisher = self.publisher.lock();
        if publisher.is_some() {
            return None;
        }
        let (kick, kicked) = watch::channel(false);
        *publisher = Some(Connected { view, kick });
        self.publishers.fetch_add(1, Ordering::Relaxed);
        Some(kicked)
    }

    /// What the publisher says of its stream (its metadata), for the feed's view.
    pub(crate) fn describe_publisher(&self, update: impl FnOnce(&mut PublisherView)) {
        if let Some(p) = self.publisher.lock().as_mut() {
            update(&mut p.view);
        }
    }

    pub(crate) fn has_publisher(&self) -> bool {
        self.publisher.lock().is_some()
    }

    pub(crate) fn release_publisher(&self) {
        self.publisher.lock().take();
    }

    fn kick_publisher(&self) {
        if let Some(p) = self.publisher.lock().as_ref() {
            let _ = p.kick.send(true);
        }
    }

    /// Notes why a publisher was turned away or dropped.
    pub(crate) fn refused(&self, reason: &str, address: &str) {
        tracing::warn!(feed = %self.id, %address, %reason, "feed publisher refused");
        *self.last_refusal.lock() = Some(Refusal {
            reason: reason.to_owned(),
            address: address.to_owned(),
            at: crate::clock::unix_secs(),
        });
    }

    /// Puts a session on the feed; `stays` keeps its call on the slate when the feed ends.
    pub(crate) fn join(&self, session: &str, stays: bool) -> Result<(), String> {
        if stays && self.stream.lock().is_none() {
            return Err(format!(
                "on_feed_end: slate needs a feed callfeed encodes; feed {} passes its publisher's stream through and has no slate (create it with mode: encoded, or use on_feed_end: end)",
                self.id
            ));
        }
        let mut sessions = self.sessions.lock();
        sessions.insert(session.to_owned(), stays);
        self.staying
            .send_replace(sessions.values().filter(|s| **s).count());
        self.joins.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Changes each time a session joins.
    pub(crate) fn joins(&self) -> watch::Receiver<u64> {
        self.joins.subscribe()
    }

    pub(crate) fn leave(&self, session: &str) {
        let staying = {
            let mut sessions = self.sessions.lock();
            sessions.remove(session);
            let staying = sessions.values().filter(|s| **s).count();
            self.staying.send_replace(staying);
            staying
        };
        if staying == 0 && self.state() == FeedState::Ended {
            // The last call that stayed on the slate is gone: so is the reason to encode it.
            // Dropping the stream stops it; its task flushes and ends by itself.
            if let Some(stream) = self.stream.lock().take() {
                *self.last_stats.lock() = Some(stream.stats());
            }
        }
    }

    /// Ends the feed: its publisher dropped, its sessions told (they watch its state), its
    /// stream stopped — or, while sessions that stay on the slate are on it, let go of its
    /// input and kept on the slate until the last of them leaves.
    pub(crate) async fn end(&self, reason: &str) {
        if self.state() != FeedState::Ended {
            *self.ended_reason.lock() = Some(reason.to_owned());
            tracing::info!(feed = %self.id, %reason, "feed ended");
        }
        self.set_state(FeedState::Ended);
        self.kick_publisher();
        self.hold_srt(None);
        let stream = {
            let mut stream = self.stream.lock();
            if *self.staying.borrow() > 0 {
                if let Some(stream) = stream.as_ref() {
                    stream.let_input_go();
                }
                None
            } else {
                stream.take()
            }
        };
        if let Some(stream) = stream {
            *self.last_stats.lock() = Some(stream.stats());
            let _ = tokio::time::timeout(STOP_WITHIN, stream.stop()).await;
        }
    }

    /// Resolves when the feed has ended and its stream is let go (no session stays on its
    /// slate): what its encode held is free from then.
    pub(crate) async fn released(&self) {
        let _ = self.states().wait_for(|s| *s == FeedState::Ended).await;
        let _ = self.staying.subscribe().wait_for(|n| *n == 0).await;
    }

    fn set_state(&self, state: FeedState) {
        let changed = self.state.send_if_modified(|s| {
            // Ended is for good: a late event of the stream does not bring a feed back.
            let changed = *s != state && *s != FeedState::Ended;
            if changed {
                *s = state;
            }
            changed
        });
        if changed {
            self.since
                .store(crate::clock::unix_secs(), Ordering::Relaxed);
            tracing::info!(feed = %self.id, state = state.name(), "feed state");
            let _ = self.events.send(FeedEvent::State {
                feed: Box::new(self.view(None)),
            });
        }
    }

    pub(crate) fn figures(&self) -> FeedFigures {
        let stats = self.stats();
        let get = |f: fn(&StreamStats) -> u64| stats.as_ref().map_or(0, f);
        FeedFigures {
            kbps: self.kbps.load(Ordering::Relaxed),
            bytes_in: self.inlet.as_ref().map_or(0, Inlet::bytes_in),
            frames_in: get(|s| s.frames_in),
            frames_out: get(|s| s.frames_out),
            slate_ms: get(|s| s.slate_ms),
            reconnects: match self.kind {
                FeedKind::Rtmp | FeedKind::Srt | FeedKind::Whip => {
                    self.publishers.load(Ordering::Relaxed).saturating_sub(1)
                }
                FeedKind::Rtsp | FeedKind::Pull => stats.as_ref().map_or(0, |s| s.restarts),
            },
        }
    }

    /// The feed as the API shows it: with its publish settings (its secret) when given
    /// where publishers reach this node, without when `None`.
    pub(crate) fn view(&self, endpoints: Option<&PublishEndpoints>) -> FeedView {
        FeedView {
            id: self.id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            state: self.state(),
            since: self.since.load(Ordering::Relaxed),
            created: self.created,
            profile: self.profile,
            mode: if self.passes_through() {
                FeedMode::Passthrough
            } else {
                FeedMode::Encoded
            },
            mode_reason: if self.passes_through() && self.kind == FeedKind::Whip {
                "the publisher's H.264 as it comes, its Opus as AAC; no slate while it is away"
            } else if self.passes_through() {
                "the publisher's stream as it comes, checked against the contract; no slate while it is away"
            } else {
                "decoded and encoded once to the profile, for all its calls"
            },
            publish: endpoints.and_then(|e| self.publish_settings(e)),
            input: self.input.clone(),
            publisher: self.publisher.lock().as_ref().map(|p| p.view.clone()),
            figures: self.figures(),
            sessions: self.sessions.lock().keys().cloned().collect(),
            idle_timeout_secs: self.idle_timeout.map(|d| d.as_secs()),
            last_refusal: self.last_refusal.lock().clone(),
            ended_reason: self.ended_reason.lock().clone(),
        }
    }
}

/// Keeps a feed's state from its stream's events, samples its figures once a second, and
/// ends it when it has been without media for its idle timeout or its stream ended.
async fn watch_feed(feed: Weak<Feed>, mut media: broadcast::Receiver<MediaEvent>) {
    let mut tick = tokio::time::interval(FIGURES_EVERY);
    let mut last_bytes = 0u64;
    let mut without_media_since = Some(Instant::now());
    loop {
        let event = tokio::select! {
            event = media.recv() => match event {
                Ok(event) => Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => Some(MediaEvent::Ended { reason: "the stream ended".into() }),
            },
            _ = tick.tick() => None,
        };
        let Some(feed) = feed.upgrade() else { return };
        if feed.state() == FeedState::Ended {
            return;
        }
        match event {
            Some(MediaEvent::FirstMedia | MediaEvent::BackOnInput) => {
                without_media_since = None;
                feed.set_state(FeedState::Live);
            }
            Some(MediaEvent::OnSlate { .. }) => {
                without_media_since = Some(Instant::now());
                if feed.state() == FeedState::Live {
                    feed.set_state(FeedState::Lost);
                }
            }
            Some(MediaEvent::Ended { reason } | MediaEvent::Failed { reason }) => {
                feed.end(&reason).await;
                return;
            }
            Some(_) => {}
            None => {
                let bytes = feed.inlet.as_ref().map_or(0, Inlet::bytes_in);
                let per_second = bytes.saturating_sub(last_bytes) * 8 / 1000;
                last_bytes = bytes;
                feed.kbps.store(per_second, Ordering::Relaxed);
                let _ = feed.events.send(FeedEvent::Stats {
                    id: feed.id.clone(),
                    state: feed.state(),
                    figures: feed.figures(),
                });
                if let (Some(limit), Some(since)) = (feed.idle_timeout, without_media_since)
                    && since.elapsed() >= limit
                {
                    feed.end(&format!(
                        "no media for {}s (idle_timeout_secs)",
                        limit.as_secs()
                    ))
                    .await;
                    return;
                }
            }
        }
    }
}
