//! The push of a session's stream to its relay: a test push before anything rings (a refused key
//! is named before a phone rings), the push itself from just before the stream is bound (a
//! file then starts when the callee can hear it), and what the push does while the call runs.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::broadcast;

use super::target::{Endpoints, Relay, stream_name};
use crate::media::hub::StreamHub;
use crate::media::rtmp::{PublishCheckError, RtmpEvent, RtmpOutput};

/// How long the relay has to accept a push.
const ACCEPT_WITHIN: Duration = Duration::from_secs(10);

/// Refusals in a row, with the relay answering each time, after which the session fails: a
/// key that stopped working does not heal by retrying.
const REFUSALS_TO_FAIL: u32 = 3;

/// Margin on top of the longest the call can last, for the signed URLs' expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(3600);

/// The relay stage as the status line, the SSE events and the report show it.
#[derive(Debug, Clone, Serialize)]
pub struct RelayFigures {
    /// The stream's name on the relay.
    pub stream: String,
    /// What the cloud pulls (any signature hidden).
    pub play_url: String,
    /// `checked`, `connecting`, `publishing`, `lost` or `finished`.
    pub state: &'static str,
    /// When the test push was accepted, in ms since the session started.
    pub checked_ms: Option<u64>,
    /// When the relay first took the stream itself.
    pub publishing_ms: Option<u64>,
    pub reconnects: u32,
    pub bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The push of one session's stream to its relay.
pub struct RelayLink {
    endpoints: Endpoints,
    hub: Arc<StreamHub>,
    output: Option<RtmpOutput>,
    events: Option<broadcast::Receiver<RtmpEvent>>,
    figures: RelayFigures,
    refused_in_row: u32,
}

/// Session `session_id`'s URLs on `relay`, after a test push shows the relay takes them.
/// They stay valid for as long as the call may last (`call_lasts_up_to`: its whole ring and
/// longest media) and a margin, so a reconnect late in the call is still accepted.
pub async fn check(
    relay: &Relay,
    session_id: &str,
    call_lasts_up_to: Duration,
) -> Result<Endpoints, String> {
    let expires_at = crate::clock::unix_secs() + (call_lasts_up_to + EXPIRY_MARGIN).as_secs();
    let endpoints = relay.endpoints(&stream_name(session_id), expires_at);
    let push = endpoints.push.expose_secret();
    let shown = crate::redact::redact_url(push);
    match crate::media::rtmp::check_publish(push, ACCEPT_WITHIN).await {
        Ok(()) => Ok(endpoints),
        Err(PublishCheckError::Unreachable(cause)) => Err(format!(
            "the relay at {shown} cannot be reached ({cause}); check its host and port and that it is running"
        )),
        Err(PublishCheckError::Refused(reason)) => Err(format!(
            "the relay refused the push to {shown} ({reason}); check the push key, or the relay's application name and publish rules"
        )),
        Err(e @ PublishCheckError::NoAnswer(_)) => Err(format!("{shown}: {e}")),
    }
}

impl RelayLink {
    pub fn new(endpoints: Endpoints, hub: Arc<StreamHub>, checked_ms: u64) -> Self {
        let figures = RelayFigures {
            stream: endpoints.stream.clone(),
            play_url: crate::redact::redact_url(&endpoints.play),
            state: "checked",
            checked_ms: Some(checked_ms),
            publishing_ms: None,
            reconnects: 0,
            bytes_out: 0,
            last_error: None,
        };
        Self {
            endpoints,
            hub,
            output: None,
            events: None,
            figures,
            refused_in_row: 0,
        }
    }

    /// The URL the cloud pulls.
    pub fn play_url(&self) -> &str {
        &self.endpoints.play
    }

    /// Starts the push, once, and waits until the relay takes it: the cloud must find the
    /// stream there when it first pulls.
    pub async fn ensure_started(&mut self, now_ms: impl Fn() -> u64) -> Result<(), String> {
        if self.output.is_some() {
            return Ok(());
        }
        let push = self.endpoints.push.expose_secret().to_owned();
        let output = RtmpOutput::start(self.hub.clone(), push).map_err(|e| e.to_string())?;
        let mut events = output.events();
        self.output = Some(output);
        let accepted = tokio::time::timeout(ACCEPT_WITHIN, async {
            loop {
                match events.recv().await {
                    Ok(RtmpEvent::Publishing) => return Ok(()),
                    Ok(event) => {
                        self.on_event(event, now_ms());
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err("the push ended before the relay took it".to_owned());
                    }
                }
            }
        })
        .await;
        match accepted {
            Ok(Ok(())) => {
                self.on_event(RtmpEvent::Publishing, now_ms());
                self.events = Some(events);
                Ok(())
            }
            Ok(Err(reason)) => Err(reason),
            Err(_) => Err(format!(
                "the relay did not take the stream within {} s{}",
                ACCEPT_WITHIN.as_secs(),
                self.figures
                    .last_error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
        }
    }

    /// The push's next event; never, before the push started.
    pub async fn next_event(&mut self) -> RtmpEvent {
        let Some(events) = self.events.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match events.recv().await {
                Ok(event) => return event,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    self.events = None;
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Takes in what the push did; a reason when the session should fail at the relay.
    pub fn on_event(&mut self, event: RtmpEvent, now_ms: u64) -> Option<String> {
        match event {
            RtmpEvent::Connecting { .. } => {
                if self.figures.state != "lost" {
                    self.figures.state = "connecting";
                }
            }
            RtmpEvent::Publishing => {
                self.figures.state = "publishing";
                self.figures.publishing_ms.get_or_insert(now_ms);
                self.refused_in_row = 0;
            }
            RtmpEvent::Lost {
                reason,
                refused,
                unreachable,
                ..
            } => {
                tracing::warn!(stream = %self.figures.stream, %reason, refused, unreachable,
                    "relay push lost; reconnecting");
                self.figures.state = "lost";
                self.figures.reconnects += 1;
                self.figures.last_error = Some(reason.clone());
                self.refused_in_row = if refused { self.refused_in_row + 1 } else { 0 };
                if self.refused_in_row >= REFUSALS_TO_FAIL {
                    return Some(format!(
                        "the relay refused the push {REFUSALS_TO_FAIL} times in a row ({reason}); check the push key and that the signed URL has not expired"
                    ));
                }
            }
            RtmpEvent::Finished => self.figures.state = "finished",
        }
        None
    }

    pub fn figures(&self) -> RelayFigures {
        let mut figures = self.figures.clone();
        if let Some(output) = &self.output {
            figures.bytes_out = output.bytes_out();
        }
        figures
    }

    /// Stops the push; its figures at the end.
    pub async fn stop(mut self, within: Duration) -> RelayFigures {
        let figures = self.figures();
        if let Some(output) = self.output.take() {
            let _ = tokio::time::timeout(within, output.stop()).await;
        }
        figures
    }
}
