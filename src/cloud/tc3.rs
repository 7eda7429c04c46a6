//! TencentCloud API 3.0 request signing (TC3-HMAC-SHA256): sign and verify.
//!
//! The credential scope uses the UTC date of `X-TC-Timestamp` and the service name (`trtc`
//! even on the intl host); the payload hash is over the exact body bytes. A verifier
//! therefore hashes what it received, never a re-serialisation, and signs exactly the
//! header list the client named in `SignedHeaders`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// The payload-hash marker a client may send instead of hashing the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far `X-TC-Timestamp` may be from the server clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// What goes into a signature. `signed_headers` are (name, value) as sent; names in any case.
#[derive(Debug, Clone)]
pub struct SignInput<'a> {
    pub method: &'a str,
    pub canonical_uri: &'a str,
    pub canonical_query: &'a str,
    pub signed_headers: &'a [(&'a str, &'a str)],
    /// Exact body bytes, or `None` with `X-TC-Content-SHA256: UNSIGNED-PAYLOAD`.
    pub payload: Option<&'a [u8]>,
    pub timestamp: i64,
    pub service: &'a str,
}

/// A signature with every intermediate, so tests can pin each step to the reference.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    pub hashed_payload: String,
    pub canonical_request: String,
    pub hashed_canonical_request: String,
    pub date: String,
    pub credential_scope: String,
    pub string_to_sign: String,
    pub secret_date: [u8; 32],
    pub secret_service: [u8; 32],
    pub secret_signing: [u8; 32],
    pub signature: String,
    pub signed_header_names: String,
}

impl std::fmt::Debug for Signature {
    // The derived keys are secrets in their own right (valid for a day).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signature")
            .field("credential_scope", &self.credential_scope)
            .field("signed_headers", &self.signed_header_names)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl Signature {
    /// The `Authorization` header value.
    pub fn authorization(&self, secret_id: &str) -> String {
        format!(
            "{ALGORITHM} Credential={secret_id}/{}, SignedHeaders={}, Signature={}",
            self.credential_scope, self.signed_header_names, self.signature
        )
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// `YYYY-MM-DD` of a Unix timestamp, in UTC (a local date breaks requests near midnight).
pub fn utc_date(timestamp: i64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp(timestamp)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    dt.format(time::macros::format_description!("[year]-[month]-[day]"))
        .expect("a date always formats")
}

pub fn sign(secret_key: &str, input: &SignInput<'_>) -> Signature {
    let hashed_payload = match input.payload {
        Some(body) => sha256_hex(body),
        None => sha256_hex(UNSIGNED_PAYLOAD.as_bytes()),
    };
    let mut headers: Vec<(String, String)> = input
        .signed_headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_header_names = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.canonical_uri,
        input.canonical_query,
        canonical_headers,
        signed_header_names,
        hashed_payload
    );
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    let date = utc_date(input.timestamp);
    let credential_scope = format!("{date}/{}/tc3_request", input.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{credential_scope}\n{hashed_canonical_request}",
        input.timestamp
    );
    let secret_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let secret_service = hmac(&secret_date, input.service.as_bytes());
    let secret_signing = hmac(&secret_service, b"tc3_request");
    let signature = hex::encode(hmac(&secret_signing, string_to_sign.as_bytes()));
    Signature {
        hashed_payload,
        canonical_request,
        hashed_canonical_request,
        date,
        credential_scope,
        string_to_sign,
        secret_date,
        secret_service,
        secret_signing,
        signature,
        signed_header_names,
    }
}

/// Why a request's signature was refused: the `AuthFailure.*` code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Tc3Error {
    pub code: &'static str,
    pub message: String,
}

impl Tc3Error {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The parts of an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub fn parse_authorization(value: &str) -> Result<Authorization, Tc3Error> {
    let invalid = |why: &str| Tc3Error::new("AuthFailure.InvalidAuthorization", why.to_owned());
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| invalid("Authorization must start with `TC3-HMAC-SHA256 `"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let credential = credential.ok_or_else(|| invalid("Authorization lacks Credential="))?;
    let mut scope = credential.rsplitn(4, '/');
    let (terminator, service, date, secret_id) =
        (scope.next(), scope.next(), scope.next(), scope.next());
    let (Some("tc3_request"), Some(service), Some(date), Some(secret_id)) =
        (terminator, service, date, secret_id)
    else {
        return Err(invalid(
            "Credential must be SecretId/Date/service/tc3_request",
        ));
    };
    let signed_headers: Vec<String> = signed
        .ok_or_else(|| invalid("Authorization lacks SignedHeaders="))?
        .split(';')
        .map(str::to_owned)
        .collect();
    Ok(Authorization {
        secret_id: secret_id.to_owned(),
        date: date.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: signature
            .ok_or_else(|| invalid("Authorization lacks Signature="))?
            .to_owned(),
    })
}

/// A received request, as the verifier needs it.
pub struct ReceivedRequest<'a> {
    pub method: &'a str,
    pub canonical_query: &'a str,
    /// Case-insensitive header lookup.
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: &'a [u8],
}

/// Verifies a received request: the header list comes from the client's `SignedHeaders`,
/// the payload hash from the bytes received.
pub fn verify(
    req: &ReceivedRequest<'_>,
    expected_service: &str,
    secret_key_for: &dyn Fn(&str) -> Option<String>,
    now: i64,
) -> Result<Authorization, Tc3Error> {
    let header = req.header;
    let auth = parse_authorization(&header("authorization").ok_or_else(|| {
        Tc3Error::new(
            "AuthFailure.InvalidAuthorization",
            "the Authorization header is missing",
        )
    })?)?;
    for required in ["content-type", "host"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(Tc3Error::new(
                "AuthFailure.InvalidAuthorization",
                format!("SignedHeaders must include `{required}`"),
            ));
        }
    }
    let timestamp: i64 = header("x-tc-timestamp")
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| {
            Tc3Error::new(
                "AuthFailure.InvalidAuthorization",
                "X-TC-Timestamp is missing or not an integer",
            )
        })?;
    if (now - timestamp).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(Tc3Error::new(
            "AuthFailure.SignatureExpire",
            format!(
                "X-TC-Timestamp {timestamp} is {} s from server time {now}; the limit is {MAX_CLOCK_SKEW_SECS} s",
                (now - timestamp).abs()
            ),
        ));
    }
    let secret_key = secret_key_for(&auth.secret_id).ok_or_else(|| {
        Tc3Error::new(
            "AuthFailure.SecretIdNotFound",
            "the SecretId is not known or is disabled",
        )
    })?;
    if auth.service != expected_service {
        return Err(Tc3Error::new(
            "AuthFailure.SignatureFailure",
            format!(
                "credential scope names service `{}`, expected `{expected_service}`",
                auth.service
            ),
        ));
    }
    let mut values = Vec::with_capacity(auth.signed_headers.len());
    for name in &auth.signed_headers {
        let value = header(name).ok_or_else(|| {
            Tc3Error::new(
                "AuthFailure.InvalidAuthorization",
                format!("signed header `{name}` is not in the request"),
            )
        })?;
        values.push((name.as_str(), value));
    }
    let pairs: Vec<(&str, &str)> = values.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let unsigned = header("x-tc-content-sha256").is_some_and(|v| v.trim() == UNSIGNED_PAYLOAD);
    let expected = sign(
        &secret_key,
        &SignInput {
            method: req.method,
            canonical_uri: "/",
            canonical_query: req.canonical_query,
            signed_headers: &pairs,
            payload: if unsigned { None } else { Some(req.body) },
            timestamp,
            service: expected_service,
        },
    );
    if auth.date != expected.date {
        return Err(Tc3Error::new(
            "AuthFailure.SignatureFailure",
            format!(
                "credential date {} is not the UTC date of X-TC-Timestamp ({})",
                auth.date, expected.date
            ),
        ));
    }
    let presented = hex::decode(&auth.signature).unwrap_or_default();
    let mut mac = HmacSha256::new_from_slice(&expected.secret_signing).expect("any key length");
    mac.update(expected.string_to_sign.as_bytes());
    mac.verify_slice(&presented).map_err(|_| {
        Tc3Error::new(
            "AuthFailure.SignatureFailure",
            "the signature does not match: check TENCENTCLOUD_SECRET_KEY and that the body and signed headers were sent unchanged",
        )
    })?;
    Ok(auth)
}
