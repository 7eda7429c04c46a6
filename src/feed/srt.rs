//! Who publishes to an SRT feed: the gate its listener asks before a caller is let in (the
//! streamid must be the feed's id; a feed with a publisher takes no second one), and the
//! feed's publisher kept as callers come and go.

use std::sync::{Arc, Weak};

use super::model::{FeedState, PublisherView, SrtEndpoint};
use super::running::Feed;
use crate::media::inlet::{Container, InletWriter};
use crate::media::srt::SrtGate;

/// Listens for an SRT feed's publisher (again, with its current passphrase): the old
/// socket is closed first, as the port is the feed's.
pub(crate) fn listen(feed: &Arc<Feed>, endpoint: &SrtEndpoint) -> Result<(), String> {
    let (Some(port), Some(passphrase)) = (feed.srt_port, feed.secret()) else {
        return Err("not an SRT feed".into());
    };
    feed.hold_srt(None);
    let settings = crate::media::srt::SrtSettings {
        bind: endpoint.bind,
        port,
        passphrase,
        latency_ms: endpoint.latency_ms,
    };
    let gate = Arc::new(FeedGate::new(feed, endpoint));
    let listener = crate::media::srt::SrtListener::start(&settings, gate)?;
    feed.hold_srt(Some(listener));
    Ok(())
}

struct FeedGate {
    feed: Weak<Feed>,
    endpoint: SrtEndpoint,
    runtime: tokio::runtime::Handle,
}

impl FeedGate {
    /// Must be made on a tokio runtime.
    fn new(feed: &Arc<Feed>, endpoint: &SrtEndpoint) -> Self {
        Self {
            feed: Arc::downgrade(feed),
            endpoint: endpoint.clone(),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl SrtGate for FeedGate {
    fn admit(&self, address: &str, streamid: Option<&str>) -> bool {
        let Some(feed) = self.feed.upgrade() else {
            return false;
        };
        if streamid != Some(feed.id.as_str()) {
            feed.refused("wrong streamid: use the feed's id", address);
            return false;
        }
        if feed.has_publisher() && feed.state() == FeedState::Lost {
            // Its publisher went quiet (a dead encoder stays "connected" to srtsrc until
            // SRT's own 5 s timeout): the feed listens afresh, so this encoder's next try
            // (OBS and hardware encoders retry by themselves) gets in at once.
            feed.refused(
                "the previous publisher went quiet: listening afresh, connect again",
                address,
            );
            let (weak, endpoint) = (self.feed.clone(), self.endpoint.clone());
            self.runtime.spawn(async move {
                if let Some(feed) = weak.upgrade() {
                    feed.release_publisher();
                    if let Err(e) = listen(&feed, &endpoint) {
                        tracing::warn!(feed = %feed.id, error = %e, "cannot listen for SRT again");
                    }
                }
            });
            return false;
        }
        if feed.has_publisher() {
            feed.refused("the feed already has a publisher", address);
            return false;
        }
        true
    }

    fn added(&self, address: &str) -> Option<InletWriter> {
        let feed = self.feed.upgrade()?;
        let view = PublisherView::connected(address);
        feed.take_publisher(view)?;
        match feed.inlet.as_ref()?.connect(Container::MpegTs) {
            Ok(writer) => {
                tracing::info!(feed = %feed.id, %address, "feed publisher connected (SRT)");
                Some(writer)
            }
            Err(e) => {
                feed.refused(&e.to_string(), address);
                feed.release_publisher();
                None
            }
        }
    }

    fn removed(&self, reason: Option<&str>) {
        let Some(feed) = self.feed.upgrade() else {
            return;
        };
        if let Some(reason) = reason {
            feed.refused(reason, "the SRT publisher");
        }
        feed.release_publisher();
        tracing::info!(feed = %feed.id, "feed publisher gone (SRT)");
    }
}
