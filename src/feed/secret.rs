//! A feed's id and its publisher's secret: random, unguessable, never logged.

use secrecy::SecretString;

/// 128 random bits as 32 hex digits: what OBS takes as a stream key without escaping.
pub(super) fn stream_key() -> SecretString {
    SecretString::from(hex::encode(rand::random::<[u8; 16]>()))
}

/// A feed's id: short, lowercase, safe in a URL path, an SRT streamid and a file name.
pub(super) fn feed_id() -> String {
    format!("f-{}", hex::encode(rand::random::<[u8; 6]>()))
}
