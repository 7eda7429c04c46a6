//! What the RTMP server allows: its application name and its limits. A leaf.

use std::time::Duration;

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
