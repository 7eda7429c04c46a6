//! Events callfeed tells an operator's endpoint (`--event-webhook URL`): what a room monitor
//! noticed (`room_silent`, `room_frozen`, `room_lost`) and a finished recording
//! (`recording_ready`). Each is a JSON POST
//! `{"type", "session_id", "at_ms", "data"}`, signed when `CALLFEED_EVENT_WEBHOOK_KEY` is set:
//! `X-Callfeed-Signature: t=UNIX,v1=HEX`, the HMAC-SHA256 of `"{t}.{body}"` under the key,
//! so a receiver tells them from forgeries and refuses replays by `t`.
//!
//! One task delivers them in order from a bounded queue: each POST bounded by a timeout,
//! tried again with jittered backoff only when the failure may pass (no answer, 5xx, 429);
//! a queue that is full drops the newest, with a warning, rather than hold sessions up.

use std::time::Duration;

use backon::BackoffBuilder;
use hmac::Mac;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Events waiting at most.
const QUEUED: usize = 1000;
/// One POST may take this long.
const POST_WITHIN: Duration = Duration::from_secs(5);
/// Tries of one event at most.
const TRIES: usize = 5;

/// Where events go, and the key that signs them.
#[derive(Clone)]
pub struct EventWebhook {
    pub url: url::Url,
    pub key: Option<SecretString>,
}

impl std::fmt::Debug for EventWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWebhook")
            .field("url", &crate::redact::redact_url(self.url.as_str()))
            .field("signed", &self.key.is_some())
            .finish()
    }
}

/// The sending side; clones share the queue.
#[derive(Clone, Debug)]
pub struct Outbound {
    queue: mpsc::Sender<Value>,
}

impl Outbound {
    /// Starts delivering to `hook` (on the current tokio runtime).
    pub fn start(hook: EventWebhook) -> Self {
        let (queue, events) = mpsc::channel(QUEUED);
        let client = reqwest::Client::builder()
            .timeout(POST_WITHIN)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        tokio::spawn(deliver(hook, client, events));
        Self { queue }
    }

    /// Queues one event of `kind` for `session`.
    pub fn tell(&self, kind: &str, session: &str, data: Value) {
        let event = json!({"type": kind, "session_id": session,
            "at_ms": crate::clock::unix_ms(), "data": data});
        if self.queue.try_send(event).is_err() {
            tracing::warn!(kind, session, "event webhook queue full: event dropped");
        }
    }
}

/// `t=UNIX,v1=HEX` for `body` at `t` under `key`.
pub fn signature(key: &str, t: i64, body: &str) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(hook: EventWebhook, client: reqwest::Client, mut events: mpsc::Receiver<Value>) {
    let shown = crate::redact::redact_url(hook.url.as_str());
    while let Some(event) = events.recv().await {
        let body = event.to_string();
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .build();
        for attempt in 1..=TRIES {
            let mut post = client
                .post(hook.url.clone())
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(key) = &hook.key {
                let t = crate::clock::unix_secs() as i64;
                post = post.header(
                    "x-callfeed-signature",
                    signature(key.expose_secret(), t, &body),
                );
            }
            let passing = match post.send().await {
                Ok(r) if r.status().is_success() => break,
                Ok(r) => {
                    let status = r.status();
                    tracing::warn!(url = %shown, %status, attempt, "event webhook refused");
                    status.is_server_error() || status.as_u16() == 429
                }
                Err(e) => {
                    tracing::warn!(url = %shown, error = %e, attempt, "event webhook not delivered");
                    true
                }
            };
            if !passing || attempt == TRIES {
                break;
            }
            tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(10))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_the_hmac_of_the_time_and_the_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            super::signature("key", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
    }
}
