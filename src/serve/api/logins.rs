//! Console logins: signed, not stored. A login is an expiry and a nonce signed with a key
//! derived from the API token — never the token — so every node sharing the token (a cluster,
//! or this one after a restart) accepts it without a shared table; one signed out here is
//! remembered until it lapses.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use secrecy::ExposeSecret;
use sha2::Sha256;

/// How long a console login lasts (a working day).
pub(super) const VIEWER_LIFETIME: Duration = Duration::from_secs(12 * 3600);
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

    pub(super) fn admit(&self) -> String {
        let expiry = now_secs() + VIEWER_LIFETIME.as_secs();
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        format!("{expiry}.{nonce}.{}", self.sign(expiry, &nonce))
    }

    /// Whether a cookie value is a login this server signed, not lapsed nor signed out.
    pub(super) fn knows(&self, value: &str) -> bool {
        let mut parts = value.splitn(3, '.');
        let (Some(expiry), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expiry) = expiry.parse::<u64>() else {
            return false;
        };
        let expected = self.sign(expiry, nonce);
        crate::serve::webhooks::constant_time_eq(mac.as_bytes(), expected.as_bytes())
            && expiry > now_secs()
            && !self.signed_out.lock().contains_key(nonce)
    }

    pub(super) fn sign_out(&self, value: &str) {
        if !self.knows(value) {
            return;
        }
        let mut parts = value.splitn(3, '.');
        let (Some(expiry), Some(nonce)) = (parts.next(), parts.next()) else {
            return;
        };
        let now = now_secs();
        let mut all = self.signed_out.lock();
        all.retain(|_, until| *until > now);
        all.insert(nonce.to_owned(), expiry.parse().unwrap_or(now));
    }
}

fn now_secs() -> u64 {
    u64::try_from(crate::clock::unix_ms() / 1000).unwrap_or(0)
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
