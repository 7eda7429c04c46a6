//! The webhook receivers' checks: whose the webhook is, that it is signed, that it is fresh,
//! and that it was not seen before.
//!
//! TRTC signs its webhooks (`Sign` = base64 HMAC-SHA256 of the body under the console's
//! callback key). The call engine documents no signature, so its webhook URL carries a
//! token of ours (`?token=...`, appended to the URL given to `set_callback`). A webhook only
//! makes a session look at the cloud sooner, but a forged or replayed one must not make it
//! look at all: the service would spend the account's request budget on it.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::cloud::webhook::{CallWebhook, TrtcWebhook, verify_trtc_sign};

/// A webhook sent longer ago than this (or dated this far ahead) is refused.
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;
/// Bodies remembered to refuse replays; past this, the oldest are forgotten early.
const REMEMBERED: usize = 65_536;

/// What was made of one webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    WrongSdkAppId,
    BadToken,
    BadSign,
    Stale,
    Replayed,
    Malformed,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::WrongSdkAppId => "wrong_sdkappid",
            Verdict::BadToken => "bad_token",
            Verdict::BadSign => "bad_sign",
            Verdict::Stale => "stale",
            Verdict::Replayed => "replayed",
            Verdict::Malformed => "malformed",
        }
    }
}

/// How the service's webhooks are checked.
#[derive(Debug, Default)]
pub struct WebhookKeys {
    /// TRTC's callback key: `Sign` is checked when set.
    pub callback_key: Option<SecretString>,
    /// The token the call-engine webhook URL must carry when set.
    pub call_token: Option<SecretString>,
}

/// The checks, with the memory of bodies already accepted.
#[derive(Debug)]
pub struct WebhookChecks {
    sdkappid: u64,
    keys: WebhookKeys,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    at: HashMap<[u8; 32], i64>,
    order: VecDeque<([u8; 32], i64)>,
}

impl Seen {
    /// False if `digest` is remembered; remembers it otherwise, from `dated` (the later of
    /// now and the webhook's own date) until it is stale.
    fn first_time(&mut self, digest: [u8; 32], now_ms: i64, dated: i64) -> bool {
        while let Some((old, at)) = self.order.front().copied() {
            if now_ms - at <= MAX_AGE_MS && self.order.len() < REMEMBERED {
                break;
            }
            self.order.pop_front();
            if self.at.get(&old) == Some(&at) {
                self.at.remove(&old);
            }
        }
        if self.at.contains_key(&digest) {
            return false;
        }
        self.at.insert(digest, dated);
        self.order.push_back((digest, dated));
        true
    }
}

/// Equal, in a time that does not depend on where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

impl WebhookChecks {
    pub fn new(sdkappid: u64, keys: WebhookKeys) -> Self {
        Self {
            sdkappid,
            keys,
            seen: Mutex::new(Seen::default()),
        }
    }

    fn fresh_and_new(&self, sent_ms: i64, body: &[u8]) -> Result<(), Verdict> {
        let now = crate::clock::unix_ms();
        if now.abs_diff(sent_ms) > MAX_AGE_MS.unsigned_abs() {
            return Err(Verdict::Stale);
        }
        let digest: [u8; 32] = Sha256::digest(body).into();
        // Remembered until the webhook is stale by its own date, even one dated ahead.
        let dated = now.max(sent_ms);
        if !self.seen.lock().first_time(digest, now, dated) {
            return Err(Verdict::Replayed);
        }
        Ok(())
    }

    /// A call-engine webhook: its `SdkAppid` and `token` query parameters and its body.
    pub fn call(
        &self,
        sdkappid: Option<&str>,
        token: Option<&str>,
        command: Option<&str>,
        body: &[u8],
    ) -> Result<CallWebhook, Verdict> {
        if sdkappid.and_then(|s| s.parse::<u64>().ok()) != Some(self.sdkappid) {
            return Err(Verdict::WrongSdkAppId);
        }
        if let Some(expected) = &self.keys.call_token
            && !token.is_some_and(|t| {
                constant_time_eq(t.as_bytes(), expected.expose_secret().as_bytes())
            })
        {
            return Err(Verdict::BadToken);
        }
        let hook = CallWebhook::parse(body, command).map_err(|_| Verdict::Malformed)?;
        self.fresh_and_new(hook.event_time_ms(), body)?;
        Ok(hook)
    }

    /// A TRTC webhook: its `SdkAppId` and `Sign` headers and its body.
    pub fn trtc(
        &self,
        sdkappid: Option<&str>,
        sign: Option<&str>,
        body: &[u8],
    ) -> Result<TrtcWebhook, Verdict> {
        if sdkappid.and_then(|s| s.parse::<u64>().ok()) != Some(self.sdkappid) {
            return Err(Verdict::WrongSdkAppId);
        }
        if let Some(key) = &self.keys.callback_key
            && !verify_trtc_sign(key.expose_secret(), body, sign.unwrap_or_default())
        {
            return Err(Verdict::BadSign);
        }
        let hook = TrtcWebhook::parse(body).map_err(|_| Verdict::Malformed)?;
        self.fresh_and_new(hook.sent_ms(), body)?;
        Ok(hook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest_body(sent_ms: i64) -> Vec<u8> {
        format!(r#"{{"EventGroupId":7,"EventType":702,"CallbackMsTs":{sent_ms},"EventInfo":{{"EventMsTs":{sent_ms},"TaskId":"t","Status":0}}}}"#).into_bytes()
    }

    fn sign(key: &str, body: &[u8]) -> String {
        use base64::Engine;
        use hmac::Mac;
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(body);
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signed_fresh_once() {
        let checks = WebhookChecks::new(
            1400000000,
            WebhookKeys {
                callback_key: Some("key123".into()),
                call_token: Some("tok".into()),
            },
        );
        let body = ingest_body(crate::clock::unix_ms());
        let good = sign("key123", &body);
        assert_eq!(
            checks.trtc(Some("1"), Some(&good), &body).unwrap_err(),
            Verdict::WrongSdkAppId
        );
        assert_eq!(
            checks
                .trtc(Some("1400000000"), Some("bm9wZQ=="), &body)
                .unwrap_err(),
            Verdict::BadSign
        );
        assert!(checks.trtc(Some("1400000000"), Some(&good), &body).is_ok());
        assert_eq!(
            checks
                .trtc(Some("1400000000"), Some(&good), &body)
                .unwrap_err(),
            Verdict::Replayed
        );
        let old = ingest_body(crate::clock::unix_ms() - MAX_AGE_MS - 1000);
        assert_eq!(
            checks
                .trtc(Some("1400000000"), Some(&sign("key123", &old)), &old)
                .unwrap_err(),
            Verdict::Stale
        );
        let call = format!(
            r#"{{"CallbackCommand":"Call.CallbackAfterMemberChanged","CallId":"c","UserList":[],"ChangedUserList":[],"EventTime":{}}}"#,
            crate::clock::unix_ms()
        );
        assert_eq!(
            checks
                .call(Some("1400000000"), Some("nope"), None, call.as_bytes())
                .unwrap_err(),
            Verdict::BadToken
        );
        assert!(
            checks
                .call(Some("1400000000"), Some("tok"), None, call.as_bytes())
                .is_ok()
        );
    }
}
