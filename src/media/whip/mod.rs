//! A WHIP publisher's WebRTC session (RFC 9725): its offer answered by `webrtcbin`, and what
//! it sends carried into a feed's inlet as a Matroska stream — depayloaded, not decoded: the
//! feed's input side decodes it as it decodes an RTMP publisher's FLV. One pipeline per
//! publisher; a task owns its bus and ends it when the publisher stops sending, errs, or is
//! let go.
//!
//! ```text
//! webrtcbin ─ rtph264depay ─ h264parse ─┐
//!           ─ rtpvp8depay ──────────────┼─ matroskamux ─ appsink ─► InletWriter
//!           ─ rtpopusdepay ─ opusparse ─┘
//! ```
//!
//! A passed-through feed takes the publisher's H.264 as it comes instead, and its Opus as
//! AAC, each stream written as FLV tags of the contract by an appsink of its own; the
//! publisher is asked for a keyframe every two seconds (a browser sends one only when
//! asked), so a call that joins starts soon.
//!
//! - `offer`: the offer cut down to what callfeed takes (a leaf)
//! - `carry`: where the media goes, and the chains that take it there

mod carry;
pub mod offer;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use secrecy::ExposeSecret;
use tokio::sync::watch;

use super::NullOnDrop;

pub use carry::{Carry, TagSink};
pub use offer::{MAX_OFFER_BYTES, OfferError, Offered, VideoCodec};

/// How long ICE gathering may take before the offer is answered anyway.
const GATHER_WITHIN: Duration = Duration::from_secs(5);
/// How long each of webrtcbin's negotiation steps may take.
const STEP_WITHIN: Duration = Duration::from_secs(10);
/// How long after the answer media must begin, unless the settings say otherwise: a
/// publisher whose ICE or DTLS never completes holds nothing longer than this.
const FIRST_MEDIA_WITHIN: Duration = Duration::from_secs(15);
/// How long a publisher may send nothing before it counts as gone. webrtcbin 1.22 never
/// reports a peer that vanished (no consent freshness; its RTCP timeout takes 5–7 s or
/// never comes), so the silence of its media is what tells.
const SILENT_FOR: Duration = Duration::from_secs(2);
/// How often a passed-through publisher is asked for a keyframe, unless the settings say
/// otherwise.
const KEYFRAME_EVERY: Duration = Duration::from_secs(2);
/// How long a session's pipeline may take to stop.
const TEARDOWN_LIMIT: Duration = Duration::from_secs(5);

/// How the node takes WebRTC.
#[derive(Debug, Clone, Default)]
pub struct WebRtcSettings {
    /// The addresses ICE gathers on; all of the machine's but loopback when empty. Loopback
    /// is gathered only when named (the tests' only address).
    pub bind: Vec<IpAddr>,
    /// The UDP ports ICE may take.
    pub ports: Option<(u16, u16)>,
    /// Put into the answer's host candidates in place of the bound address, for a node
    /// behind 1:1 NAT.
    pub public_ip: Option<IpAddr>,
    /// `stun://host:port`.
    pub stun: Option<String>,
    /// `turn://user:password@host:port` or `turns://…`; their credentials are secret.
    pub turn: Vec<secrecy::SecretString>,
    /// Take publishers' candidates on private and loopback addresses too (by default only
    /// public ones: a publisher on the node's network is found from its own checks).
    pub private_candidates: bool,
    /// How long after the answer a publisher's media must begin (15 s when `None`).
    pub first_media_within: Option<Duration>,
    /// How often a passed-through publisher is asked for a keyframe besides when a call
    /// joins (2 s when `None`).
    pub keyframe_every: Option<Duration>,
}

/// Why a publisher's offer was not answered.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    #[error(transparent)]
    Offer(#[from] OfferError),
    /// webrtcbin would not take the offer (no fingerprint, no ICE credentials, ...).
    #[error("the offer was refused: {0}")]
    Negotiation(String),
    #[error("the WebRTC engine failed: {0}")]
    Engine(String),
}

/// A publisher's running session. Dropping it ends the session.
pub struct WhipPeer {
    stop: watch::Sender<bool>,
    ended: watch::Receiver<Option<String>>,
    keyframe: Arc<tokio::sync::Notify>,
}

impl WhipPeer {
    /// Why the session ended, once it has.
    pub async fn ended(&mut self) -> String {
        match self.ended.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the session's task is gone".into(),
        }
    }

    /// Asks a passed-through publisher for a keyframe now (a call joined).
    pub fn ask_keyframe(&self) {
        self.keyframe.notify_one();
    }

    /// Ends the session (the publisher's DELETE, the feed's end).
    pub fn close(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for WhipPeer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Answers a publisher's `offer`: the answer's SDP (with its candidates: WHIP clients need
/// not trickle), what the offer carries, and the running session, whose media goes where
/// `carry` says. Must run on a tokio runtime.
pub async fn answer(
    offer: &str,
    settings: &WebRtcSettings,
    carry: Carry,
) -> Result<(String, Offered, WhipPeer), WhipError> {
    super::init().map_err(|e| WhipError::Engine(e.to_string()))?;
    let (sdp, offered) = offer::filter(offer, settings.private_candidates)?;
    let carrier = carry::Carrier::new(carry);
    if carrier.passes() && offered.video != Some(VideoCodec::H264) {
        return Err(OfferError::NoCodec(
            "this feed passes the publisher's picture through, which takes H.264 (packetization-mode=1); the offer has none"
                .into(),
        )
        .into());
    }
    let clock = Arc::new(MediaClock::new());
    let video_depayloader = Arc::new(parking_lot::Mutex::new(None));
    let (pipeline, webrtcbin) = build(
        settings,
        offered,
        &carrier,
        clock.clone(),
        video_depayloader.clone(),
    )?;
    let pipeline = NullOnDrop::new(pipeline);
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        pipeline.shut_down(TEARDOWN_LIMIT).await;
        return Err(WhipError::Engine(e.to_string()));
    }
    let answer = match negotiate(&webrtcbin, sdp).await {
        Ok(answer) => answer,
        Err(e) => {
            pipeline.shut_down(TEARDOWN_LIMIT).await;
            return Err(e);
        }
    };
    let answer = match settings.public_ip {
        Some(ip) => with_public_host(&answer, ip),
        None => answer,
    };
    let (stop, stopped) = watch::channel(false);
    let (ended_tx, ended) = watch::channel(None);
    let keyframe = Arc::new(tokio::sync::Notify::new());
    let keyframes = carrier.passes().then(|| Keyframes {
        depayloader: video_depayloader,
        asked: keyframe.clone(),
        every: settings.keyframe_every.unwrap_or(KEYFRAME_EVERY),
    });
    let within = settings.first_media_within.unwrap_or(FIRST_MEDIA_WITHIN);
    tokio::spawn(async move {
        let reason = run(&pipeline, stopped, &clock, keyframes, within).await;
        tracing::info!(%reason, "WHIP session ended");
        carrier.end();
        pipeline.shut_down(TEARDOWN_LIMIT).await;
        let _ = ended_tx.send(Some(reason));
    });
    let peer = WhipPeer {
        stop,
        ended,
        keyframe,
    };
    Ok((answer, offered, peer))
}

/// The session's video depayloader, once its stream came: what keyframes are asked through.
type Depayloader = Arc<parking_lot::Mutex<Option<gst::glib::WeakRef<gst::Element>>>>;

/// When a passed-through publisher is asked for a keyframe: every so often, and when asked.
struct Keyframes {
    depayloader: Depayloader,
    asked: Arc<tokio::sync::Notify>,
    every: Duration,
}

impl Keyframes {
    fn ask(&self) {
        let depayloader = self.depayloader.lock().as_ref().and_then(|w| w.upgrade());
        if let Some(depayloader) = depayloader {
            carry::ask_keyframe(&depayloader);
        }
    }
}

/// When media last came through, in ms after the clock's start (0: never).
struct MediaClock {
    start: Instant,
    last_ms: AtomicU64,
}

impl MediaClock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn tick(&self) {
        let ms = self.start.elapsed().as_millis() as u64 + 1;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since media last came, if it ever did.
    fn quiet_for(&self) -> Option<Duration> {
        match self.last_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.start
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }
}

/// The session's pipeline, with its media going where `carrier` says: webrtcbin, ready to
/// take the offer, and the muxer with its pads for what the offer carries.
fn build(
    settings: &WebRtcSettings,
    offered: Offered,
    carrier: &carry::Carrier,
    clock: Arc<MediaClock>,
    video_depayloader: Depayloader,
) -> Result<(gst::Pipeline, gst::Element), WhipError> {
    let engine = |e: &dyn std::fmt::Display| WhipError::Engine(e.to_string());
    let pipeline = gst::Pipeline::new();
    let webrtcbin = gst::ElementFactory::make("webrtcbin")
        .property_from_str("bundle-policy", "max-bundle")
        .build()
        .map_err(|e| engine(&e))?;
    configure_ice(&webrtcbin, settings)?;
    pipeline.add(&webrtcbin).map_err(|e| engine(&e))?;
    let outlet = carry::outlet(&pipeline, carrier, offered.video.is_some(), offered.audio)
        .map_err(|e| engine(&e))?;
    let weak_pipeline = pipeline.downgrade();
    webrtcbin.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak_pipeline.upgrade() else {
            return;
        };
        let clock = clock.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            clock.tick();
            gst::PadProbeReturn::Ok
        });
        match carry::depayload(&pipeline, pad, &outlet) {
            Ok(Some(video)) => *video_depayloader.lock() = Some(video.downgrade()),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "a WHIP publisher's stream is not carried"),
        }
    });
    Ok((pipeline, webrtcbin))
}

/// Where ICE gathers and what helps it: addresses, ports, STUN and TURN.
fn configure_ice(webrtcbin: &gst::Element, settings: &WebRtcSettings) -> Result<(), WhipError> {
    use gst_webrtc::prelude::WebRTCICEExt;
    if let Some(stun) = &settings.stun {
        webrtcbin.set_property("stun-server", stun);
    }
    for turn in &settings.turn {
        let added: bool = webrtcbin.emit_by_name("add-turn-server", &[&turn.expose_secret()]);
        if !added {
            return Err(WhipError::Engine(
                "a TURN server was not taken (--ice-server turn:…)".into(),
            ));
        }
    }
    let ice = webrtcbin.property::<gst_webrtc::WebRTCICE>("ice-agent");
    for ip in &gather_on(&settings.bind, &interface_addresses()) {
        if !ice.emit_add_local_ip_address(&ip.to_string()) {
            return Err(WhipError::Engine(format!("ICE cannot gather on {ip}")));
        }
    }
    if let Some((low, high)) = settings.ports {
        ice.set_min_rtp_port(u32::from(low));
        ice.set_max_rtp_port(u32::from(high));
    }
    ice.set_property("ice-tcp", false);
    // Without it libnice asks the network for a UPnP gateway and waits 200 ms each time.
    ice.property::<gst::glib::Object>("agent")
        .set_property("upnp", false);
    webrtcbin.connect("on-new-transceiver", false, |values| {
        if let Some(t) = values
            .get(1)
            .and_then(|v| v.get::<gst_webrtc::WebRTCRTPTransceiver>().ok())
        {
            t.set_property("do-nack", true);
        }
        None
    });
    Ok(())
}

/// The addresses ICE gathers on: those named; with none named, libnice's default (every
/// interface's but loopback's), unless the node has nothing but loopback (a network
/// namespace with only `lo`): then loopback, which a publisher on the same host reaches.
fn gather_on(named: &[IpAddr], interfaces: &[IpAddr]) -> Vec<IpAddr> {
    if named.is_empty() && interfaces.iter().all(IpAddr::is_loopback) {
        return vec![IpAddr::from([127, 0, 0, 1])];
    }
    named.to_vec()
}

/// The node's interface addresses (none when they cannot be read).
fn interface_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|all| all.iter().map(if_addrs::Interface::ip).collect())
        .unwrap_or_default()
}

/// A webrtcbin promise's reply, or its error.
async fn reply(
    step: &str,
    future: gst::promise::PromiseFuture,
) -> Result<Option<gst::Structure>, WhipError> {
    let replied = tokio::time::timeout(STEP_WITHIN, future)
        .await
        .map_err(|_| WhipError::Engine(format!("{step} took more than {STEP_WITHIN:?}")))?;
    match replied {
        Ok(Some(reply)) => match reply.get::<gst::glib::Error>("error") {
            Ok(e) => Err(WhipError::Negotiation(e.to_string())),
            Err(_) => Ok(Some(reply.to_owned())),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(WhipError::Engine(format!("{step}: {e:?}"))),
    }
}

/// Takes the offer, makes the answer, and waits (a bounded time) for its candidates.
async fn negotiate(
    webrtcbin: &gst::Element,
    offer: gstreamer_sdp::SDPMessage,
) -> Result<String, WhipError> {
    let (gathered, mut complete) = watch::channel(false);
    let watcher = webrtcbin.connect_notify(Some("ice-gathering-state"), move |bin, _| {
        let state = bin.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if state == gst_webrtc::WebRTCICEGatheringState::Complete {
            let _ = gathered.send(true);
        }
    });
    let offer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    let (promise, future) = gst::Promise::new_future();
    webrtcbin.emit_by_name::<()>("set-remote-description", &[&offer, &promise]);
    reply("set-remote-description", future).await?;
    let (promise, future) = gst::Promise::new_future();
    webrtcbin.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
    let made = reply("create-answer", future)
        .await?
        .ok_or_else(|| WhipError::Engine("create-answer gave nothing".into()))?;
    let answer = made
        .get::<gst_webrtc::WebRTCSessionDescription>("answer")
        .map_err(|e| WhipError::Negotiation(e.to_string()))?;
    let (promise, future) = gst::Promise::new_future();
    webrtcbin.emit_by_name::<()>("set-local-description", &[&answer, &promise]);
    reply("set-local-description", future).await?;
    // A node with no address ICE can use never completes gathering: bounded.
    let _ = tokio::time::timeout(GATHER_WITHIN, complete.wait_for(|done| *done)).await;
    webrtcbin.disconnect(watcher);
    let local = webrtcbin
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .ok_or_else(|| WhipError::Engine("no answer was made".into()))?;
    let text = local
        .sdp()
        .as_text()
        .map_err(|e| WhipError::Engine(e.to_string()))?;
    if !text.contains("a=candidate:") {
        return Err(WhipError::Engine(
            "ICE found no address to offer (--webrtc-bind)".into(),
        ));
    }
    Ok(text)
}

/// The answer with `public` as the address of its host candidates (a node behind 1:1 NAT:
/// the publisher checks the public address, the NAT brings it to the bound socket).
fn with_public_host(answer: &str, public: IpAddr) -> String {
    answer
        .split("\r\n")
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let host = line.starts_with("a=candidate:")
                && fields.len() > 7
                && fields[6] == "typ"
                && fields[7] == "host";
            if host {
                let mut fields = fields;
                let public = public.to_string();
                fields[4] = &public;
                fields.join(" ")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The session's life: until it is let go, errs, or its publisher is silent too long;
/// asking a passed-through publisher for keyframes through `keyframes`.
async fn run(
    pipeline: &gst::Pipeline,
    mut stop: watch::Receiver<bool>,
    clock: &MediaClock,
    keyframes: Option<Keyframes>,
    first_media_within: Duration,
) -> String {
    let Some(bus) = pipeline.bus() else {
        return "the session's pipeline has no bus".into();
    };
    let mut messages = bus.stream();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut keyframe_tick =
        tokio::time::interval(keyframes.as_ref().map_or(KEYFRAME_EVERY, |k| k.every));
    let never = Arc::new(tokio::sync::Notify::new());
    let asked = keyframes.as_ref().map_or(never, |k| k.asked.clone());
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return "let go".into(),
            _ = keyframe_tick.tick(), if keyframes.is_some() => {
                if let Some(k) = &keyframes {
                    k.ask();
                }
            }
            () = asked.notified() => {
                if let Some(k) = &keyframes {
                    k.ask();
                }
            }
            msg = messages.next() => match msg.as_ref().map(|m| m.view()) {
                Some(gst::MessageView::Error(e)) => {
                    let source = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                    tracing::debug!(%source, debug = ?e.debug(), "WHIP session error");
                    return format!("{source}: {}", e.error());
                }
                Some(gst::MessageView::Eos(_)) => return "the publisher's stream ended".into(),
                Some(_) => {}
                None => return "the session's bus closed".into(),
            },
            _ = tick.tick() => match clock.quiet_for() {
                None if started.elapsed() > first_media_within => {
                    return format!(
                        "no media within {}s of the answer (ICE or DTLS never completed: is UDP open to --webrtc-ports?)",
                        first_media_within.as_secs()
                    );
                }
                Some(quiet) if quiet > SILENT_FOR => {
                    return format!("the publisher sent nothing for {}s", SILENT_FOR.as_secs());
                }
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_with_only_loopback_gathers_on_it_unless_told_otherwise() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let eth: IpAddr = "10.0.0.5".parse().unwrap();
        let named: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(gather_on(&[], &[lo, "::1".parse().unwrap()]), [lo]);
        assert!(gather_on(&[], &[lo, eth]).is_empty());
        assert_eq!(gather_on(&[named], &[lo]), [named]);
    }

    #[test]
    fn host_candidates_name_the_public_address_and_others_stay() {
        let answer = "v=0\r\na=candidate:1 1 UDP 2015363327 10.0.0.5 40006 typ host\r\n\
a=candidate:2 1 UDP 1679819007 198.51.100.9 40006 typ srflx raddr 10.0.0.5 rport 40006\r\n";
        let out = with_public_host(answer, "203.0.113.7".parse().unwrap());
        assert!(out.contains("a=candidate:1 1 UDP 2015363327 203.0.113.7 40006 typ host"));
        assert!(out.contains("198.51.100.9 40006 typ srflx raddr 10.0.0.5"));
    }
}
