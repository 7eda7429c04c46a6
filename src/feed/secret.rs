//! A feed's id and its publisher's secret: random, unguessable, never logged.

use secrecy::SecretString;

/// 128 random bits as 32 hex digits: what OBS takes as a stream key without escaping.
pub(super) fn stream_key() -> SecretString {
    SecretString::from(hex::encode(rand::random::<[u8; 16]>()))
}

/// A WHIP session's resource id: 128 random bits (a resource is found by it).
pub(super) fn resource_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A feed's id: short, lowercase, safe in a URL path, an SRT streamid and a file name.
pub(super) fn feed_id() -> String {
    format!("f-{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// An SRT passphrase: 32 letters and digits (about 190 bits; libsrt takes 10 to 79
/// characters), nothing a URL needs to escape.
pub(super) fn passphrase() -> SecretString {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let text: String = (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    SecretString::from(text)
}
