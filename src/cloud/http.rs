//! The one HTTP client every cloud request goes through: per-attempt timeouts, retry
//! classification, jittered exponential backoff and client-side rate limits.
//!
//! A request is first built as a [`PreparedRequest`] holding the exact bytes to send, so
//! `--dry-run` prints precisely what the wire would carry. Every attempt prepares afresh:
//! a retry after a backoff carries a fresh timestamp and signature.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ids::InvalidArgument;

/// A request as it will be sent, byte for byte.
#[derive(Clone, PartialEq, Eq)]
pub struct PreparedRequest {
    pub method: &'static str,
    pub url: url::Url,
    /// In the order sent. `Host` is listed because it is signed; the HTTP stack writes it.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl std::fmt::Debug for PreparedRequest {
    // The query string and Authorization carry credentials; Debug shows neither.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRequest")
            .field("method", &self.method)
            .field("endpoint", &self.endpoint())
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl PreparedRequest {
    /// Scheme, host and path: safe to log, unlike the query string that carries a UserSig.
    pub fn endpoint(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.to_string()
    }

    /// `{"method","url","headers","body"}` for `--dry-run`.
    pub fn dry_run_json(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        // The admin UserSig in an IM URL is a credential (and covered by no signature): the
        // request is shown without it.
        let mut url = self.url.clone();
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("usersig") {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if !query.is_empty() {
            url.query_pairs_mut().clear().extend_pairs(query);
        }
        serde_json::json!({
            "method": self.method,
            "url": url.as_str(),
            "headers": headers,
            "body": String::from_utf8_lossy(&self.body),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a dry run shows in place of a credential.
pub const REDACTED: &str = "<redacted>";

/// `host[:port]` as the HTTP stack writes the Host header for this URL.
pub fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// IM codes that mean "too many requests, the request was not processed".
pub const IM_RATE_LIMIT_CODES: [i64; 4] = [60007, 60011, 60018, 60019];
/// IM codes for an internal error the documentation says to retry.
pub const IM_INTERNAL_RETRY_CODES: [i64; 2] = [100001, 101001];

/// What a failure tells us about retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The request never took effect (connect failure, rate limit): always safe to retry.
    NotProcessed,
    /// The request may have taken effect (timeout, 5xx): retry only idempotent operations.
    MaybeProcessed,
    /// Retrying cannot help (auth, parameters, not found).
    Final,
}

/// A failure of a cloud request, at the cloud boundary.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error(transparent)]
    Invalid(#[from] InvalidArgument),
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no answer from {endpoint} within {timeout:?}")]
    Timeout { endpoint: String, timeout: Duration },
    #[error("request to {endpoint} failed: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{endpoint} answered HTTP {status}: {snippet}")]
    Status {
        endpoint: String,
        status: u16,
        snippet: String,
    },
    #[error("{command} failed with error {code}: {info}{hint} (RequestId {request_id})", hint = unsaid(.info, im_hint(*.code)))]
    Im {
        command: &'static str,
        code: i64,
        info: String,
        request_id: String,
    },
    #[error("{action} failed with {code}: {message}{hint} (RequestId {request_id})", hint = unsaid(.message, api_hint(.code)))]
    Api {
        action: &'static str,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("{endpoint} sent a response that is not {expected}: {reason}")]
    Decode {
        endpoint: String,
        expected: &'static str,
        reason: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    ClientSetup(String),
}

/// `hint`, unless the cloud's own message already says it (the emulator's and some of the
/// cloud's messages do): an error says each thing once.
fn unsaid<'a>(message: &str, hint: &'a str) -> &'a str {
    let gist = hint
        .trim_start_matches(" — ")
        .trim_start_matches("the ")
        .split([':', ','])
        .next()
        .unwrap_or_default()
        .split(" or ")
        .next()
        .unwrap_or_default()
        .to_lowercase();
    if !gist.is_empty() && message.to_lowercase().contains(&gist) {
        ""
    } else {
        hint
    }
}

fn im_hint(code: i64) -> &'static str {
    match code {
        60010 => {
            " — CALLFEED_ADMIN must be an App administrator account (Chat console → Account management)"
        }
        60006 | 60012 | 70014 => " — check CALLFEED_SDKAPPID",
        60007 | 60011 | 60018 | 60019 => " — rate limited by the cloud; slow down or retry later",
        70001 => " — the admin UserSig expired: check this machine's clock",
        70003 => " — the UserSig could not be parsed",
        70009 => " — CALLFEED_SDK_SECRET_KEY is not the key of this SDKAppID",
        70013 => " — the UserSig was made for another identifier than CALLFEED_ADMIN",
        70016 | 70020 => {
            " — wrong data centre: set CALLFEED_DATA_CENTER (or CALLFEED_IM_ENDPOINT) to where the SDKAppID lives"
        }
        70107 => " — the user is not imported into the IM account system",
        101002 | 100002 => " — a parameter was refused by the call engine",
        101004 => " — the call does not exist or has already ended",
        101050 => " — no record for that call (records appear about 5 s after a call ends)",
        100301 => " — no callback is configured",
        _ => "",
    }
}

fn api_hint(code: &str) -> &'static str {
    match code {
        "AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId" => {
            " — check TENCENTCLOUD_SECRET_ID"
        }
        "AuthFailure.SignatureFailure" => " — check TENCENTCLOUD_SECRET_KEY",
        "AuthFailure.SignatureExpire" => " — this machine's clock is off by more than 5 minutes",
        "InvalidParameter.UserSig" => {
            " — the ingest robot's UserSig was refused: check CALLFEED_SDK_SECRET_KEY and CALLFEED_SDKAPPID"
        }
        "UnsupportedRegion" => " — set CALLFEED_REGION to a region the TRTC site serves",
        "FailedOperation.NotRtmpFunction" => {
            " — the app's TRTC package does not include pushing online media streams"
        }
        c if c.starts_with("RequestLimitExceeded") => " — rate limited by the cloud",
        _ => "",
    }
}

impl CloudError {
    pub fn class(&self) -> FailureClass {
        match self {
            CloudError::Connect { .. } => FailureClass::NotProcessed,
            CloudError::Timeout { .. } | CloudError::Transport { .. } => {
                FailureClass::MaybeProcessed
            }
            CloudError::Status { status: 429, .. } => FailureClass::NotProcessed,
            CloudError::Status { status, .. } if *status >= 500 => FailureClass::MaybeProcessed,
            CloudError::Im { code, .. } if IM_RATE_LIMIT_CODES.contains(code) => {
                FailureClass::NotProcessed
            }
            CloudError::Im { code, .. } if IM_INTERNAL_RETRY_CODES.contains(code) => {
                FailureClass::MaybeProcessed
            }
            CloudError::Api { code, .. } if code.starts_with("RequestLimitExceeded") => {
                FailureClass::NotProcessed
            }
            _ => FailureClass::Final,
        }
    }

    /// Whether another attempt may help, given whether repeating the operation is harmless.
    /// Starting a call or an ingest task twice is not, so those retry only when the first
    /// attempt certainly had no effect.
    pub fn is_retryable(&self, idempotent: bool) -> bool {
        match self.class() {
            FailureClass::NotProcessed => true,
            FailureClass::MaybeProcessed => idempotent,
            FailureClass::Final => false,
        }
    }

    /// The cloud's error code, when the cloud answered with one.
    pub fn code(&self) -> Option<String> {
        match self {
            CloudError::Im { code, .. } => Some(code.to_string()),
            CloudError::Api { code, .. } => Some(code.clone()),
            _ => None,
        }
    }
}

/// Default time one attempt may take; the IM backend itself gives up after 3 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_ATTEMPTS: usize = 4;
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Documented limit of every call-engine command.
pub const CALL_COMMAND_PER_SECOND: u32 = 200;
/// Documented limit of every StreamIngest action.
pub const INGEST_ACTION_PER_SECOND: u32 = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub max_attempts: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Client-side rate limits at the documented cloud limits; off only for benchmarks.
    pub rate_limits: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
            rate_limits: true,
        }
    }
}

impl HttpSettings {
    /// The delays between attempts: exponential from `backoff_min`, capped at `backoff_max`,
    /// each with random jitter so many clients do not retry in lockstep.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_max_delay(self.backoff_max)
            .with_factor(2.0)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
    }
}

/// Which documented limit an operation falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClass {
    CallCommand,
    IngestAction,
}

impl RateClass {
    pub fn quota(self) -> Quota {
        let per_second = match self {
            RateClass::CallCommand => CALL_COMMAND_PER_SECOND,
            RateClass::IngestAction => INGEST_ACTION_PER_SECOND,
        };
        Quota::per_second(NonZeroU32::new(per_second).expect("limits are non-zero"))
    }
}

/// One cloud operation, as the transport needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub name: &'static str,
    pub rate: RateClass,
    pub idempotent: bool,
}

/// Builds one attempt's request; runs again for every attempt.
pub type Prepare<'a> = dyn Fn() -> Result<PreparedRequest, CloudError> + Sync + 'a;
/// Turns an answer (HTTP status, body) into the result or a typed error.
pub type Parse<'a, T> = dyn Fn(u16, &[u8]) -> Result<T, CloudError> + Sync + 'a;

/// The shared client: one connection pool, limits per operation name.
pub struct Transport {
    client: reqwest::Client,
    settings: HttpSettings,
    call_limiter: Option<Arc<DefaultKeyedRateLimiter<&'static str>>>,
    ingest_limiter: Option<Arc<DefaultKeyedRateLimiter<&'static str>>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub fn new(settings: HttpSettings) -> Result<Self, CloudError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("callfeed/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CloudError::ClientSetup(e.to_string()))?;
        let limiter = |class: RateClass| {
            settings
                .rate_limits
                .then(|| Arc::new(RateLimiter::keyed(class.quota())))
        };
        Ok(Self {
            client,
            call_limiter: limiter(RateClass::CallCommand),
            ingest_limiter: limiter(RateClass::IngestAction),
            settings,
        })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// Sends `op`, retrying retryable failures with jittered backoff. `prepare` runs once
    /// per attempt; `parse` turns (status, body) into the result or a typed error.
    pub async fn execute<T>(
        &self,
        op: Operation,
        prepare: &Prepare<'_>,
        parse: &Parse<'_, T>,
    ) -> Result<T, CloudError> {
        let attempt = || async { self.attempt(op, prepare, parse).await };
        attempt
            .retry(self.settings.backoff())
            .sleep(tokio::time::sleep)
            .when(|e: &CloudError| e.is_retryable(op.idempotent))
            .notify(|e: &CloudError, delay: Duration| {
                tracing::warn!(
                    operation = op.name,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "cloud request failed, retrying"
                );
            })
            .await
    }

    async fn attempt<T>(
        &self,
        op: Operation,
        prepare: &Prepare<'_>,
        parse: &Parse<'_, T>,
    ) -> Result<T, CloudError> {
        let limiter = match op.rate {
            RateClass::CallCommand => &self.call_limiter,
            RateClass::IngestAction => &self.ingest_limiter,
        };
        if let Some(limiter) = limiter {
            limiter.until_key_ready(&op.name).await;
        }
        let request = prepare()?;
        let endpoint = request.endpoint();
        let mut builder = self
            .client
            .request(
                reqwest::Method::from_bytes(request.method.as_bytes())
                    .expect("methods are constants"),
                request.url.clone(),
            )
            .body(request.body.clone());
        for (name, value) in &request.headers {
            // reqwest writes Host from the URL, which is what was signed.
            if !name.eq_ignore_ascii_case("host") {
                builder = builder.header(name, value);
            }
        }
        let started = std::time::Instant::now();
        let exchange = async {
            let response = builder.send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let (status, body) = match tokio::time::timeout(self.settings.timeout, exchange).await {
            Err(_) => {
                return Err(CloudError::Timeout {
                    endpoint,
                    timeout: self.settings.timeout,
                });
            }
            // `without_url` keeps the UserSig in the query string out of messages and logs.
            Ok(Err(e)) if e.is_connect() => {
                return Err(CloudError::Connect {
                    endpoint,
                    source: e.without_url(),
                });
            }
            Ok(Err(e)) if e.is_timeout() => {
                return Err(CloudError::Timeout {
                    endpoint,
                    timeout: self.settings.timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(CloudError::Transport {
                    endpoint,
                    source: e.without_url(),
                });
            }
            Ok(Ok(answer)) => answer,
        };
        tracing::debug!(
            operation = op.name,
            endpoint = %endpoint,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "cloud request answered"
        );
        if status != 200 {
            let snippet: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(CloudError::Status {
                endpoint,
                status,
                snippet,
            });
        }
        parse(status, &body)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hint_the_message_already_gives_is_not_repeated() {
        let hint = " — the call does not exist or has already ended";
        assert_eq!(unsaid("call does not exist or has ended", hint), "");
        assert_eq!(unsaid("Err_Call_Not_Found", hint), hint);
        assert_eq!(unsaid("anything", ""), "");
    }

    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let settings = HttpSettings {
            max_attempts: 8,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..HttpSettings::default()
        };
        let delays: Vec<Duration> = backon::BackoffBuilder::build(settings.backoff()).collect();
        assert_eq!(delays.len(), 7, "max_attempts - 1 retries");
        for (i, d) in delays.iter().enumerate() {
            let base = (100u64 << i).min(1000);
            let ms = d.as_millis() as u64;
            // Jitter adds up to one more base delay.
            assert!(
                ms >= base && ms <= 2 * base,
                "delay {i} = {ms} ms, base {base}"
            );
        }
    }

    #[test]
    fn documented_rates_are_the_client_limits() {
        use governor::clock::FakeRelativeClock;
        for (class, per_second) in [(RateClass::IngestAction, 20), (RateClass::CallCommand, 200)] {
            let clock = FakeRelativeClock::default();
            let limiter = RateLimiter::direct_with_clock(class.quota(), clock.clone());
            for i in 0..per_second {
                assert!(
                    limiter.check().is_ok(),
                    "{class:?}: request {i} of the burst"
                );
            }
            assert!(
                limiter.check().is_err(),
                "{class:?}: one over the limit waits"
            );
            clock.advance(Duration::from_millis(1000 / per_second as u64));
            assert!(
                limiter.check().is_ok(),
                "{class:?}: the bucket refills at the rate"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_the_backoff_and_stop_after_max_attempts() {
        let transport = Transport::new(HttpSettings {
            max_attempts: 4,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3),
            ..HttpSettings::default()
        })
        .unwrap();
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let op = Operation {
            name: "get_call_info",
            rate: RateClass::CallCommand,
            idempotent: true,
        };
        let prepare = || -> Result<PreparedRequest, CloudError> {
            attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(CloudError::Status {
                endpoint: "test".into(),
                status: 503,
                snippet: String::new(),
            })
        };
        let err = transport
            .execute(op, &prepare, &|_, _| Ok(()))
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::Status { status: 503, .. }));
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 4);
        // Delays of 1, 2 and 3 (capped) seconds, each with up to 100 % jitter.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(6) && waited <= Duration::from_secs(12),
            "{waited:?}"
        );
    }

    #[test]
    fn classification() {
        let im = |code| CloudError::Im {
            command: "x",
            code,
            info: String::new(),
            request_id: String::new(),
        };
        let api = |code: &str| CloudError::Api {
            action: "x",
            code: code.into(),
            message: String::new(),
            request_id: String::new(),
        };
        let status = |status| CloudError::Status {
            endpoint: String::new(),
            status,
            snippet: String::new(),
        };
        for e in [
            im(60007),
            im(60011),
            im(60018),
            im(60019),
            api("RequestLimitExceeded"),
            api("RequestLimitExceeded.UinLimitExceeded"),
            status(429),
        ] {
            assert!(e.is_retryable(false), "{e}");
        }
        for e in [status(502), status(500), im(101001)] {
            assert!(e.is_retryable(true), "{e}");
            assert!(!e.is_retryable(false), "{e}");
        }
        for e in [
            im(70001),
            im(70009),
            im(60010),
            im(101002),
            api("AuthFailure.SignatureFailure"),
            api("InvalidParameter.UserSig"),
            status(404),
        ] {
            assert!(!e.is_retryable(true), "{e}");
        }
    }

    #[test]
    fn messages_name_the_fix() {
        let e = CloudError::Im {
            command: "start_call_by_robot",
            code: 70009,
            info: "sig check failed".into(),
            request_id: "Id-1".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("70009") && text.contains("CALLFEED_SDK_SECRET_KEY"),
            "{text}"
        );
    }
}
