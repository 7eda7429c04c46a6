//! The RTMP server feeds are pushed to: enough of RTMP for OBS, ffmpeg, GStreamer's
//! `rtmp2sink` and hardware encoders (handshake, connect, releaseStream, FCPublish,
//! createStream, publish, FLV audio and video), with callfeed's own deadlines and limits
//! around `rml_rtmp`'s protocol state. Play requests are refused: nothing is served back.
//!
//! One task per connection, and the library's input handling under `catch_unwind`: a crafted
//! message that makes it panic drops that connection, never the server. A source address
//! that keeps failing stream keys is turned away at the door for a while.
//!
//! - `connection`: one publisher's connection, from handshake to the last tag

mod connection;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Feeds;

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

/// A running RTMP server; dropping it stops accepting (connections end with their feeds).
pub struct RtmpServer {
    address: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl RtmpServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for RtmpServer {
    fn drop(&mut self) {
        self.accept.abort();
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
    fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        Self {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute)),
            banned: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn is_banned(&self, ip: IpAddr) -> bool {
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

/// Listens on `address` for publishers of `feeds`.
pub async fn listen(
    address: SocketAddr,
    feeds: Feeds,
    limits: RtmpLimits,
) -> std::io::Result<RtmpServer> {
    let listener = TcpListener::bind(address).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "RTMP server listening for feeds");
    let accept = tokio::spawn(accept_loop(listener, feeds, limits));
    Ok(RtmpServer { address, accept })
}

async fn accept_loop(listener: TcpListener, feeds: Feeds, limits: RtmpLimits) {
    let seats = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let strikes = Arc::new(Strikes::new(limits.key_failures_per_minute));
    let limits = Arc::new(limits);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "RTMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if strikes.is_banned(peer.ip()) {
            continue;
        }
        let Ok(seat) = seats.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "RTMP connection refused: the server is full");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (feeds, limits, strikes) = (feeds.clone(), limits.clone(), strikes.clone());
        tokio::spawn(async move {
            let _seat = seat;
            let ended = connection::serve(socket, peer, &feeds, &limits, &strikes).await;
            tracing::info!(%peer, how = %ended, "RTMP connection closed");
        });
    }
}
