//! What the RTMP server allows and remembers: its application name, its limits, and the
//! source addresses turned away for failing keys. A leaf.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The application name publishers connect to: `rtmp://HOST:PORT/live`.
pub const APP: &str = "live";

/// What the server allows a connection.
#[derive(Debug, Clone)]
pub struct RtmpLimits {
    /// Connections open at once, publishing or not.
    pub max_connections: usize,
    /// The handshake must be over within this.
    pub handshake: Duration,
    /// `publish` must come within this of the connection.
    pub publish_within: Duration,
    /// A publisher that sends nothing for this long is dropped.
    pub idle: Duration,
    /// A publisher above this rate (over a few seconds) is dropped.
    pub max_kbps: u64,
    /// Wrong stream keys a source address may try a minute before it is turned away.
    pub key_failures_per_minute: u32,
    /// The largest picture a publisher may announce.
    pub max_picture: (u32, u32),
}

impl Default for RtmpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            handshake: Duration::from_secs(5),
            publish_within: Duration::from_secs(10),
            idle: Duration::from_secs(10),
            max_kbps: 20_000,
            key_failures_per_minute: 10,
            max_picture: (3840, 2160),
        }
    }
}

/// Source addresses that failed too many stream keys, turned away until their time is up.
pub(crate) struct Strikes {
    limiter: governor::DefaultKeyedRateLimiter<IpAddr>,
    banned: Mutex<std::collections::HashMap<IpAddr, Instant>>,
}

/// How long an address that ran out of key attempts is turned away.
const BAN: Duration = Duration::from_secs(60);

impl Strikes {
    pub(super) fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        Self {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute)),
            banned: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(super) fn is_banned(&self, ip: IpAddr) -> bool {
        let mut banned = self.banned.lock();
        match banned.get(&ip) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                banned.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a wrong key from `ip`.
    pub(crate) fn strike(&self, ip: IpAddr) {
        if self.limiter.check_key(&ip).is_err() {
            tracing::warn!(%ip, "too many wrong stream keys: turned away for a minute");
            let mut banned = self.banned.lock();
            let now = Instant::now();
            banned.retain(|_, until| *until > now);
            banned.insert(ip, now + BAN);
        }
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
    }
}
