//! Webhooks the emulated cloud sends: the call engine's three callbacks and TRTC's ingest
//! events, signed and retried as documented.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::TrtcCallback;
use crate::cloud::webhook::trtc_sign;

/// The documented time a receiver has to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// TRTC gives up on a webhook older than this.
const TRTC_RETRY_WINDOW: Duration = Duration::from_secs(60);
const TRTC_RETRY_EVERY: Duration = Duration::from_secs(10);

struct CallHook {
    url: String,
    command: String,
    body: Vec<u8>,
}

/// Sends webhooks in the background. Call webhooks go out one at a time in the order they
/// happened; TRTC webhooks each on their own, as the cloud does (they may arrive out of order).
pub(crate) struct Outbox {
    client: reqwest::Client,
    sdkappid: u64,
    calls: mpsc::UnboundedSender<CallHook>,
}

impl Outbox {
    pub(crate) fn new(sdkappid: u64) -> Self {
        let client = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .unwrap_or_default();
        let (calls, mut queue) = mpsc::unbounded_channel::<CallHook>();
        let sender = client.clone();
        tokio::spawn(async move {
            while let Some(hook) = queue.recv().await {
                let separator = if hook.url.contains('?') { '&' } else { '?' };
                let url = format!(
                    "{}{separator}SdkAppid={sdkappid}&CallbackCommand={}&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI",
                    hook.url, hook.command
                );
                // Undocumented retry policy: one more try on failure.
                for attempt in 0..2 {
                    let sent = sender
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .body(hook.body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => break,
                        other => tracing::debug!(
                            command = %hook.command,
                            attempt,
                            outcome = ?other.map(|r| r.status()),
                            "call webhook not accepted"
                        ),
                    }
                }
            }
        });
        Self {
            client,
            sdkappid,
            calls,
        }
    }

    pub(crate) fn send_call(&self, url: &str, command: &str, body: serde_json::Value) {
        let _ = self.calls.send(CallHook {
            url: url.to_owned(),
            command: command.to_owned(),
            body: serde_json::to_vec(&body).expect("JSON serialises"),
        });
    }

    /// Sends a TRTC webhook: one immediate retry, then every 10 s until a minute old.
    pub(crate) fn send_trtc(&self, callback: &TrtcCallback, body: serde_json::Value) {
        let client = self.client.clone();
        let url = callback.url.clone();
        let body = serde_json::to_vec(&body).expect("JSON serialises");
        let sign = trtc_sign(&callback.key, &body);
        let sdkappid = self.sdkappid.to_string();
        tokio::spawn(async move {
            let born = Instant::now();
            let mut attempt = 0u32;
            loop {
                let sent = client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("Sign", &sign)
                    .header("SdkAppId", &sdkappid)
                    .body(body.clone())
                    .send()
                    .await;
                if matches!(&sent, Ok(r) if r.status().is_success()) {
                    return;
                }
                attempt += 1;
                let wait = if attempt == 1 {
                    Duration::ZERO
                } else {
                    TRTC_RETRY_EVERY
                };
                if born.elapsed() + wait > TRTC_RETRY_WINDOW {
                    tracing::debug!(%url, attempt, "TRTC webhook given up");
                    return;
                }
                tokio::time::sleep(wait).await;
            }
        });
    }
}
