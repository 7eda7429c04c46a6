//! Source addresses that failed too many feed keys (an RTMP stream key, a WHIP bearer
//! token), turned away for a minute: a key is 128 random bits, but guessing still costs the
//! node a handshake or an offer each time. A leaf.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Source addresses that failed too many stream keys, turned away until their time is up.
pub(crate) struct Strikes {
    limiter: governor::DefaultKeyedRateLimiter<IpAddr>,
    banned: Mutex<std::collections::HashMap<IpAddr, Instant>>,
}

/// How long an address that ran out of key attempts is turned away.
const BAN: Duration = Duration::from_secs(60);

impl Strikes {
    pub(crate) fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        Self {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute)),
            banned: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(crate) fn is_banned(&self, ip: IpAddr) -> bool {
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
