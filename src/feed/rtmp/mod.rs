//! The RTMP server feeds are pushed to: enough of RTMP for OBS, ffmpeg, GStreamer's
//! `rtmp2sink` and hardware encoders (handshake, connect, releaseStream, FCPublish,
//! createStream, publish, FLV audio and video), with callfeed's own deadlines and limits
//! around `rml_rtmp`'s protocol state. Play requests are refused: nothing is served back.
//!
//! One task per connection, and the library's input handling under `catch_unwind`: a crafted
//! message that makes it panic drops that connection, never the server. A source address
//! that keeps failing stream keys is turned away at the door for a while.
//!
//! - `limits`: the application name, the limits, the addresses turned away (a leaf)
//! - `connection`: one publisher's connection, from handshake to the last tag

mod connection;
mod limits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Feeds;
use super::strikes::Strikes;
pub use limits::{APP, RtmpLimits};

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
