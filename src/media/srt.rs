//! An SRT listener for one feed: GStreamer's `srtsrc` on a UDP port of its own, encrypted
//! with the feed's passphrase (the passphrase belongs to the listening socket, so a secret
//! per feed is a port per feed), taking one caller at a time and handing its MPEG-TS to the
//! feed's [`Inlet`](super::inlet::Inlet).
//!
//! Who may connect is the gate's to say, before the connection is accepted
//! (`caller-connecting`, which srtsrc raises only with `authentication` on): the streamid
//! must be the feed's, and a feed that has a publisher refuses a second one (srtsrc would
//! otherwise take it and drop its packets without a word). A wrong passphrase is refused by
//! libsrt itself and is never seen here.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};

use super::inlet::InletWriter;

/// What decides who publishes through a listener.
pub trait SrtGate: Send + Sync {
    /// Whether a caller from `address` naming `streamid` is let in.
    fn admit(&self, address: &str, streamid: Option<&str>) -> bool;
    /// A caller was let in: where its stream goes (`None` turns it away after all).
    fn added(&self, address: &str) -> Option<InletWriter>;
    /// The caller left, or was dropped for `reason`.
    fn removed(&self, reason: Option<&str>);
}

/// How a listener is set up.
#[derive(Clone)]
pub struct SrtSettings {
    pub bind: IpAddr,
    pub port: u16,
    pub passphrase: SecretString,
    /// SRT's receive latency, in milliseconds (the larger of both sides' applies).
    pub latency_ms: u32,
}

/// A listening SRT socket; dropping it closes it (and drops its caller).
pub struct SrtListener {
    _pipeline: super::NullOnDrop,
}

impl SrtListener {
    /// Binds and listens. Must run on a tokio runtime (one task watches its bus).
    pub fn start(settings: &SrtSettings, gate: Arc<dyn SrtGate>) -> Result<Self, String> {
        super::init().map_err(|e| e.to_string())?;
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("srtsrc")
            .build()
            .map_err(|_| "GStreamer's srtsrc is missing: install gstreamer1.0-plugins-bad")?;
        src.set_property_from_str("mode", "listener");
        src.set_property("localaddress", settings.bind.to_string());
        src.set_property("localport", u32::from(settings.port));
        src.set_property("passphrase", settings.passphrase.expose_secret());
        src.set_property_from_str("latency", &settings.latency_ms.to_string());
        // Without it srtsrc never asks who may connect (its default is off, whatever
        // gst-inspect says).
        src.set_property("authentication", true);
        src.set_property("keep-listening", true);
        let sink = gst_app::AppSink::builder().sync(false).build();
        pipeline
            .add_many([&src, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        src.link(&sink).map_err(|e| e.to_string())?;
        let writer: Arc<Mutex<Option<InletWriter>>> = Arc::default();
        connect_gate(&src, &gate, &writer);
        carry(&sink, &gate, writer);
        let pipeline = super::NullOnDrop::new(pipeline);
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            format!(
                "cannot listen for SRT on {}:{}",
                settings.bind, settings.port
            )
        })?;
        if let Some(bus) = pipeline.bus() {
            tokio::spawn(watch_bus(bus, settings.port));
        }
        Ok(Self {
            _pipeline: pipeline,
        })
    }
}

/// The address a signal names, as `IP:PORT`.
fn address_of(value: Option<&gst::glib::Value>) -> String {
    use gio::prelude::*;
    value
        .and_then(|v| v.get::<gio::InetSocketAddress>().ok())
        .map(|a| format!("{}:{}", a.address(), a.port()))
        .unwrap_or_else(|| "an unknown address".into())
}

fn connect_gate(
    src: &gst::Element,
    gate: &Arc<dyn SrtGate>,
    writer: &Arc<Mutex<Option<InletWriter>>>,
) {
    let asked = gate.clone();
    // (element, address, streamid or NULL) -> whether to accept
    src.connect("caller-connecting", false, move |values| {
        let address = address_of(values.get(1));
        let streamid = values
            .get(2)
            .and_then(|v| v.get::<Option<String>>().ok())
            .flatten();
        Some(asked.admit(&address, streamid.as_deref()).to_value())
    });
    let (added, taken) = (gate.clone(), writer.clone());
    // (element, socket, address)
    src.connect("caller-added", false, move |values| {
        *taken.lock() = added.added(&address_of(values.get(2)));
        None
    });
    let (removed, released) = (gate.clone(), writer.clone());
    src.connect("caller-removed", false, move |_| {
        if released.lock().take().is_some() {
            removed.removed(None);
        }
        None
    });
}

/// Hands what the caller sends to its writer; a writer that refuses it (the stream gave the
/// connection up, or it came faster than real time) is dropped, with the reason.
fn carry(
    sink: &gst_app::AppSink,
    gate: &Arc<dyn SrtGate>,
    writer: Arc<Mutex<Option<InletWriter>>>,
) {
    let gate = gate.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(map) = buffer.map_readable() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let mut held = writer.lock();
                if let Some(w) = held.as_mut()
                    && let Err(e) = w.send_bytes(Bytes::copy_from_slice(map.as_slice()))
                {
                    held.take();
                    drop(held);
                    gate.removed(Some(&e.to_string()));
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Logs what goes wrong with the listening socket (a port taken by another program, say).
async fn watch_bus(bus: gst::Bus, port: u16) {
    use futures::StreamExt;
    let mut messages = bus.stream();
    while let Some(message) = messages.next().await {
        if let gst::MessageView::Error(e) = message.view() {
            tracing::error!(port, error = %e.error(), "SRT listener failed");
            return;
        }
    }
}
