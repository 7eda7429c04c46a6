//! The console's login to the event stream. A browser's `EventSource` cannot send an
//! `Authorization` header, and a token in a URL ends up in logs and history. So
//! `POST /v1/console/login`, authorised with the bearer token, sets a cookie that opens
//! `GET /v1/events` and nothing else: `HttpOnly`, `SameSite=Strict`, scoped to that path,
//! valid 12 hours. Its value is an expiry and a nonce signed with a key derived from the
//! API token — never the token — so every node sharing the token (a cluster, or this one
//! after a restart) accepts it without a shared table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::Sha256;

use super::Service;
use crate::session::CloudOps;

/// The cookie that admits a console to the event stream.
const VIEWER_COOKIE: &str = "callfeed_viewer";
/// How long a console login lasts (a working day).
const VIEWER_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// What the signing key is derived for, so it is good for nothing else.
const KEY_PURPOSE: &[u8] = b"callfeed console viewer v1";

/// Signs and checks console logins; remembers the ones signed out here until they lapse.
pub(super) struct Viewers {
    key: Vec<u8>,
    signed_out: Mutex<HashMap<String, u64>>,
}

impl Viewers {
    /// Keyed from the API token; without one (an open server), from a random key: the
    /// stream is open then anyway.
    pub(super) fn new(token: Option<&secrecy::SecretString>) -> Self {
        let secret = match token {
            Some(t) => t.expose_secret().as_bytes().to_vec(),
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any key length");
        mac.update(KEY_PURPOSE);
        Self {
            key: mac.finalize().into_bytes().to_vec(),
            signed_out: Mutex::new(HashMap::new()),
        }
    }

    fn sign(&self, expiry: u64, nonce: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(format!("{expiry}.{nonce}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn admit(&self) -> String {
        let expiry = now_secs() + VIEWER_LIFETIME.as_secs();
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        format!("{expiry}.{nonce}.{}", self.sign(expiry, &nonce))
    }

    /// Whether a cookie value is a login this server signed, not lapsed nor signed out.
    fn knows(&self, value: &str) -> bool {
        let mut parts = value.splitn(3, '.');
        let (Some(expiry), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        let expected = self.sign(expiry, nonce);
        super::super::webhooks::constant_time_eq(mac.as_bytes(), expected.as_bytes())
            && expiry > now_secs()
            && !self
                .signed_out
                .lock()
                .expect("viewers lock")
                .contains_key(nonce)
    }

    fn sign_out(&self, value: &str) {
        if !self.knows(value) {
            return;
        }
        let mut parts = value.splitn(3, '.');
        let (Some(expiry), Some(nonce)) = (parts.next(), parts.next()) else {
            return;
        };
        let now = now_secs();
        let mut all = self.signed_out.lock().expect("viewers lock");
        all.retain(|_, until| *until > now);
        all.insert(nonce.to_owned(), expiry.parse().unwrap_or(now));
    }
}

fn now_secs() -> u64 {
    u64::try_from(crate::clock::unix_ms() / 1000).unwrap_or(0)
}

/// The login a request's cookie carries, if any.
fn viewer_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == VIEWER_COOKIE)
        .map(|(_, value)| value)
}

/// The console login a request to the event stream holds (its cookie's value), if any.
pub(super) fn admitted_viewer<C>(svc: &Service<C>, headers: &HeaderMap) -> Option<String> {
    viewer_cookie(headers)
        .filter(|v| svc.viewers.knows(v))
        .map(str::to_owned)
}

fn set_cookie(value: &str, max_age: u64) -> HeaderValue {
    // The path scopes it to the stream (and its logout under it): no other request
    // carries it.
    HeaderValue::from_str(&format!(
        "{VIEWER_COOKIE}={value}; Path=/v1/events; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    ))
    .expect("a cookie of ASCII")
}

/// `GET /v1/console/hello` (open): what the console must know before it asks anything —
/// whether a token is required (so it sends no request bound to be refused) and whether
/// rooms can be looked into (only with the embedded emulator).
pub(super) async fn hello<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    axum::Json(json!({
        "token_required": svc.token.is_some(),
        "room_observer": svc.room_view.is_some(),
    }))
    .into_response()
}

/// `POST /v1/console/login` (bearer token): a cookie for the event stream.
pub(super) async fn login<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    let value = svc.viewers.admit();
    let mut answer = StatusCode::NO_CONTENT.into_response();
    answer.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&value, VIEWER_LIFETIME.as_secs()),
    );
    answer
}

/// `POST /v1/events/logout` (open; under the cookie's path, so the browser sends it): the
/// login is refused here from now on, and the browser drops the cookie.
pub(super) async fn logout<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
) -> Response {
    if let Some(value) = viewer_cookie(&headers) {
        svc.viewers.sign_out(value);
    }
    let mut answer = StatusCode::NO_CONTENT.into_response();
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_good_on_any_node_with_the_token_and_on_none_without_it() {
        let token = secrecy::SecretString::from("the-token");
        let here = Viewers::new(Some(&token));
        let elsewhere = Viewers::new(Some(&token));
        let other_token = Viewers::new(Some(&secrecy::SecretString::from("another")));
        let cookie = here.admit();
        assert!(!cookie.contains("the-token"));
        assert!(here.knows(&cookie) && elsewhere.knows(&cookie));
        assert!(!other_token.knows(&cookie));
        // Tampered: a later expiry, another nonce, a cut signature.
        let (expiry, rest) = cookie.split_once('.').unwrap();
        let later = format!("{}.{rest}", expiry.parse::<u64>().unwrap() + 1);
        assert!(!here.knows(&later));
        assert!(!here.knows(&cookie[..cookie.len() - 2]));
        assert!(!here.knows("") && !here.knows("1.2.3") && !here.knows("a.b"));
        here.sign_out(&cookie);
        assert!(!here.knows(&cookie));
    }

    #[test]
    fn a_lapsed_login_is_refused() {
        let viewers = Viewers::new(Some(&secrecy::SecretString::from("t")));
        let past = now_secs() - 1;
        let lapsed = format!("{past}.abcd.{}", viewers.sign(past, "abcd"));
        assert!(!viewers.knows(&lapsed));
    }
}
