//! UserSig (TLSSigAPIv2) and PrivateMapKey: generation and verification.
//!
//! A UserSig is a zlib-compressed JSON document carrying an HMAC-SHA256 over five fixed lines,
//! encoded with Tencent's own base64 alphabet (`+`→`*`, `/`→`-`, `=`→`_`). Verification
//! inflates and parses it; SDKs differ in JSON field order, spacing and compression level, so
//! strings are never compared.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::room::{RoomKind, RoomRef};

type HmacSha256 = Hmac<Sha256>;

/// The SDKs' default lifetime: 180 days.
pub const DEFAULT_EXPIRE_SECS: u64 = 180 * 86_400;
/// An inflated UserSig larger than this is not a UserSig; stops a zlib bomb.
const MAX_INFLATED_BYTES: u64 = 64 * 1024;

/// Why a UserSig was refused, with the IM error code the cloud reports for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSigError {
    #[error("UserSig expired at {expired_at} (issued {time} for {expire} s; now {now})")]
    Expired {
        time: u64,
        expire: u64,
        expired_at: u64,
        now: u64,
    },
    #[error("UserSig cannot be parsed: {0}")]
    Malformed(String),
    #[error("UserSig signature does not match: it was made with another secret key")]
    BadSignature,
    #[error("UserSig was made for identifier `{found}`, not `{expected}`")]
    IdentifierMismatch { expected: String, found: String },
    #[error("UserSig was made for SDKAppID {found}, not {expected}")]
    SdkAppIdMismatch { expected: u64, found: u64 },
    #[error("UserSig userbuf does not match the one expected")]
    UserbufMismatch,
}

impl UserSigError {
    /// The IM error code the cloud answers with for this failure.
    pub fn im_code(&self) -> i64 {
        match self {
            UserSigError::Expired { .. } => 70001,
            UserSigError::Malformed(_) => 70003,
            UserSigError::BadSignature | UserSigError::UserbufMismatch => 70009,
            UserSigError::IdentifierMismatch { .. } => 70013,
            UserSigError::SdkAppIdMismatch { .. } => 70014,
        }
    }
}

/// The fields of a verified UserSig.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserSigFields {
    pub version: String,
    pub identifier: String,
    pub sdkappid: u64,
    pub time: u64,
    pub expire: u64,
    pub expires_at: u64,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_opt")]
    pub userbuf: Option<Vec<u8>>,
}

fn hex_opt<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

/// The standard base64 alphabet with the three characters that are unsafe in URLs swapped.
pub fn encode_tls_base64(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

pub fn decode_tls_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let standard: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect();
    STANDARD.decode(standard)
}

/// The HMAC over the five lines, in the order every SDK uses: identifier, sdkappid, time,
/// expire, then the optional userbuf. Each line ends with `\n`, the last one too.
fn sig_mac(
    key: &[u8],
    identifier: &str,
    sdkappid: u64,
    time: u64,
    expire: u64,
    b64_userbuf: Option<&str>,
) -> HmacSha256 {
    let mut text = format!(
        "TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time}\nTLS.expire:{expire}\n"
    );
    if let Some(ub) = b64_userbuf {
        text.push_str(&format!("TLS.userbuf:{ub}\n"));
    }
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(text.as_bytes());
    mac
}

/// `TLS.sig`: the standard base64 of the HMAC over the five lines.
pub fn hmac_sig(
    key: &[u8],
    identifier: &str,
    sdkappid: u64,
    time: u64,
    expire: u64,
    b64_userbuf: Option<&str>,
) -> String {
    let mac = sig_mac(key, identifier, sdkappid, time, expire, b64_userbuf);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Makes a UserSig. The document is laid out as the official Python SDK lays it out and
/// compressed with zlib at its default level, so the result is byte-identical to that SDK's.
pub fn generate(
    sdkappid: u64,
    key: &[u8],
    identifier: &str,
    expire: u64,
    now: u64,
    userbuf: Option<&[u8]>,
) -> String {
    let b64_userbuf = userbuf.map(|b| STANDARD.encode(b));
    let sig = hmac_sig(
        key,
        identifier,
        sdkappid,
        now,
        expire,
        b64_userbuf.as_deref(),
    );
    let identifier_json = serde_json::to_string(identifier).expect("a str serialises");
    let mut doc = format!(
        "{{\"TLS.ver\": \"2.0\", \"TLS.identifier\": {identifier_json}, \"TLS.sdkappid\": {sdkappid}, \"TLS.expire\": {expire}, \"TLS.time\": {now}"
    );
    if let Some(ub) = &b64_userbuf {
        doc.push_str(&format!(", \"TLS.userbuf\": \"{ub}\""));
    }
    doc.push_str(&format!(", \"TLS.sig\": \"{sig}\"}}"));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    z.write_all(doc.as_bytes())
        .expect("writing to a Vec cannot fail");
    encode_tls_base64(&z.finish().expect("writing to a Vec cannot fail"))
}

#[derive(serde::Deserialize)]
struct SigDoc {
    #[serde(rename = "TLS.ver", default)]
    ver: Option<serde_json::Value>,
    #[serde(rename = "TLS.identifier")]
    identifier: String,
    #[serde(rename = "TLS.sdkappid")]
    sdkappid: serde_json::Value,
    #[serde(rename = "TLS.time")]
    time: serde_json::Value,
    #[serde(rename = "TLS.expire")]
    expire: serde_json::Value,
    #[serde(rename = "TLS.userbuf", default)]
    userbuf: Option<String>,
    #[serde(rename = "TLS.sig")]
    sig: String,
}

/// Some SDKs write numbers as JSON strings; both are accepted.
fn json_u64(field: &str, v: &serde_json::Value) -> Result<u64, UserSigError> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| UserSigError::Malformed(format!("{field} is not an unsigned integer")))
}

/// Inflates and parses a UserSig without checking it. Used by `verify` and for display.
pub fn decode(sig: &str) -> Result<(UserSigFields, String), UserSigError> {
    let raw = decode_tls_base64(sig)
        .map_err(|e| UserSigError::Malformed(format!("not TLS base64: {e}")))?;
    let mut json = Vec::new();
    flate2::read::ZlibDecoder::new(raw.as_slice())
        .take(MAX_INFLATED_BYTES)
        .read_to_end(&mut json)
        .map_err(|e| UserSigError::Malformed(format!("not a zlib stream: {e}")))?;
    let doc: SigDoc = serde_json::from_slice(&json)
        .map_err(|e| UserSigError::Malformed(format!("not a UserSig document: {e}")))?;
    let time = json_u64("TLS.time", &doc.time)?;
    let expire = json_u64("TLS.expire", &doc.expire)?;
    let userbuf = doc
        .userbuf
        .as_deref()
        .map(|ub| {
            STANDARD
                .decode(ub)
                .map_err(|e| UserSigError::Malformed(format!("TLS.userbuf: {e}")))
        })
        .transpose()?;
    let version = match doc.ver {
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let fields = UserSigFields {
        version,
        identifier: doc.identifier,
        sdkappid: json_u64("TLS.sdkappid", &doc.sdkappid)?,
        time,
        expire,
        expires_at: time.saturating_add(expire),
        userbuf,
    };
    Ok((fields, doc.sig))
}

/// What a verifier expects of a UserSig besides a valid signature.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    pub sdkappid: u64,
    pub identifier: &'a str,
    pub now: u64,
    /// `Some` when a userbuf (PrivateMapKey) must be present and equal.
    pub userbuf: Option<&'a [u8]>,
}

/// Verifies a UserSig the way the cloud does: inflate, parse, check the app, the user and
/// the expiry, then recompute the HMAC.
pub fn verify(sig: &str, key: &[u8], want: Expectation<'_>) -> Result<UserSigFields, UserSigError> {
    let (fields, mac) = decode(sig)?;
    if fields.sdkappid != want.sdkappid {
        return Err(UserSigError::SdkAppIdMismatch {
            expected: want.sdkappid,
            found: fields.sdkappid,
        });
    }
    if fields.identifier != want.identifier {
        return Err(UserSigError::IdentifierMismatch {
            expected: want.identifier.to_owned(),
            found: fields.identifier,
        });
    }
    if want.now > fields.expires_at {
        return Err(UserSigError::Expired {
            time: fields.time,
            expire: fields.expire,
            expired_at: fields.expires_at,
            now: want.now,
        });
    }
    if let Some(expected) = want.userbuf
        && fields.userbuf.as_deref() != Some(expected)
    {
        return Err(UserSigError::UserbufMismatch);
    }
    // The userbuf is re-encoded rather than taken from the document: a sig whose userbuf
    // text differs from its bytes must not verify.
    let b64_userbuf = fields.userbuf.as_deref().map(|b| STANDARD.encode(b));
    let presented = STANDARD
        .decode(&mac)
        .map_err(|_| UserSigError::BadSignature)?;
    sig_mac(
        key,
        &fields.identifier,
        fields.sdkappid,
        fields.time,
        fields.expire,
        b64_userbuf.as_deref(),
    )
    .verify_slice(&presented)
    .map_err(|_| UserSigError::BadSignature)?;
    Ok(fields)
}

/// Privileges a PrivateMapKey grants (bit flags).
pub mod privilege {
    pub const CREATE_ROOM: u32 = 1;
    pub const ENTER_ROOM: u32 = 2;
    pub const SEND_AUDIO: u32 = 4;
    pub const RECEIVE_AUDIO: u32 = 8;
    pub const SEND_VIDEO: u32 = 16;
    pub const RECEIVE_VIDEO: u32 = 32;
    pub const SEND_SUB_STREAM: u32 = 64;
    pub const RECEIVE_SUB_STREAM: u32 = 128;
    pub const ALL: u32 = 255;
}

/// The binary userbuf of a PrivateMapKey; all integers big-endian.
pub fn private_map_userbuf(
    identifier: &str,
    sdkappid: u32,
    room: &RoomRef,
    expires_at: u32,
    privilege: u32,
) -> Vec<u8> {
    let string_room = room.kind() == RoomKind::String;
    let mut buf = Vec::with_capacity(25 + identifier.len() + room.id().len());
    buf.push(u8::from(string_room));
    buf.extend_from_slice(&(identifier.len() as u16).to_be_bytes());
    buf.extend_from_slice(identifier.as_bytes());
    buf.extend_from_slice(&sdkappid.to_be_bytes());
    buf.extend_from_slice(&room.numeric_id().unwrap_or(0).to_be_bytes());
    buf.extend_from_slice(&expires_at.to_be_bytes());
    buf.extend_from_slice(&privilege.to_be_bytes());
    buf.extend_from_slice(&0u32.to_be_bytes());
    if string_room {
        buf.extend_from_slice(&(room.id().len() as u16).to_be_bytes());
        buf.extend_from_slice(room.id().as_bytes());
    }
    buf
}

/// Makes a PrivateMapKey: a UserSig whose userbuf grants `privilege` in `room` only.
pub fn generate_private_map_key(
    sdkappid: u32,
    key: &[u8],
    identifier: &str,
    room: &RoomRef,
    privilege: u32,
    expire: u32,
    now: u32,
) -> String {
    let userbuf = private_map_userbuf(
        identifier,
        sdkappid,
        room,
        now.saturating_add(expire),
        privilege,
    );
    generate(
        sdkappid.into(),
        key,
        identifier,
        expire.into(),
        now.into(),
        Some(&userbuf),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

    fn want(now: u64) -> Expectation<'static> {
        Expectation {
            sdkappid: 1_400_000_000,
            identifier: "xiaojun",
            now,
            userbuf: None,
        }
    }

    #[test]
    fn failures_map_to_im_codes() {
        let sig = generate(1_400_000_000, KEY, "xiaojun", 100, 1_700_000_000, None);
        assert!(verify(&sig, KEY, want(1_700_000_100)).is_ok());
        let codes = [
            verify(&sig, KEY, want(1_700_000_101)),
            verify(&sig[..sig.len() / 2], KEY, want(1_700_000_000)),
            verify(&sig, b"another key", want(1_700_000_000)),
            verify(
                &sig,
                KEY,
                Expectation {
                    identifier: "jack",
                    ..want(1_700_000_000)
                },
            ),
            verify(
                &sig,
                KEY,
                Expectation {
                    sdkappid: 1_400_000_001,
                    ..want(1_700_000_000)
                },
            ),
        ]
        .map(|r| r.unwrap_err().im_code());
        assert_eq!(codes, [70001, 70003, 70009, 70013, 70014]);
    }

    #[test]
    fn garbage_is_malformed() {
        for junk in ["", "!!!", "eJw_", "aGVsbG8_"] {
            assert_eq!(
                verify(junk, KEY, want(0)).unwrap_err().im_code(),
                70003,
                "{junk}"
            );
        }
    }
}
