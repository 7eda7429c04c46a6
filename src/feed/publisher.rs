//! A publisher connected to a feed, and why one is turned away.

use std::sync::Arc;

use tokio::sync::watch;

use super::model::PublisherView;
use super::running::Feed;

/// Why a publisher was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// No running feed has this key.
    WrongKey,
    /// The feed has a publisher already, or is not taking one.
    Taken,
}

/// A publisher connected to a feed: what it sends goes to the feed's stream. Dropping it
/// frees the feed for the next one.
pub(crate) struct Publisher {
    pub(super) feed: Arc<Feed>,
    pub(super) writer: Option<crate::media::inlet::InletWriter>,
    pub(super) kicked: watch::Receiver<bool>,
}

impl Publisher {
    /// Hands one FLV tag body to the feed's stream.
    /// Hands one FLV tag body to the feed: its stream's decoder, or, passed through, its
    /// calls; why not, which drops the publisher.
    pub(crate) fn send(&mut self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<(), String> {
        if self.feed.passes_through() {
            return self.feed.pass(kind, timestamp_ms, body);
        }
        match self.writer.as_mut() {
            Some(w) => w.send(kind, timestamp_ms, body),
            None => Err(crate::media::inlet::InletError::Closed),
        }
        .map_err(|e| e.to_string())
    }

    /// What the publisher says of its stream.
    pub(crate) fn describe(&self, update: impl FnOnce(&mut PublisherView)) {
        self.feed.describe_publisher(update);
    }

    /// Notes on the feed why this publisher is dropped.
    pub(crate) fn dropped(&self, reason: &str, address: &str) {
        self.feed.refused(reason, address);
    }

    /// Resolves when the feed drops this publisher (it ended, or its key changed), or its
    /// stream stops taking what it sends; why, as the publisher's refusal says it.
    pub(crate) async fn kicked(&mut self) -> &'static str {
        // A passed-through publisher has no decoder to give up on it.
        let writer_closed = async {
            match self.writer.as_ref() {
                Some(w) => w.closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.kicked.wait_for(|k| *k) => "dropped by the feed (it ended, or its key changed)",
            _ = writer_closed => "the feed's decoder gave up on what the publisher sent",
        }
    }
}

/// Who an RTMP publisher's stream goes to: a feed, or a session's room monitor.
pub(crate) enum PushTarget {
    Feed(Publisher),
    Monitor(super::monitor::MonitorSeat),
}

impl PushTarget {
    pub(crate) fn send(&mut self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<(), String> {
        match self {
            PushTarget::Feed(p) => p.send(kind, timestamp_ms, body),
            PushTarget::Monitor(m) => m.send(kind, timestamp_ms, body),
        }
    }

    /// What the publisher says of its stream (a feed shows it; a monitor has no view).
    pub(crate) fn describe(&self, update: impl FnOnce(&mut PublisherView)) {
        if let PushTarget::Feed(p) = self {
            p.describe(update);
        }
    }

    /// Notes on the feed why this publisher is dropped.
    pub(crate) fn dropped(&self, reason: &str, address: &str) {
        if let PushTarget::Feed(p) = self {
            p.dropped(reason, address);
        }
    }

    pub(crate) async fn kicked(&mut self) -> &'static str {
        match self {
            PushTarget::Feed(p) => p.kicked().await,
            PushTarget::Monitor(m) => m.kicked().await,
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // The stream sees the end of this connection before the next publisher is let in.
        self.writer.take();
        self.feed.pass_gone(crate::media::live::PUBLISHER_LEFT);
        self.feed.release_publisher();
        tracing::info!(feed = %self.feed.id, "feed publisher gone");
    }
}
