//! Where streams are published for the cloud to pull: today the node's own HTTP server
//! (HTTP-FLV live, files with Range), or an RTMP relay the stream is pushed to ([`relay`]). Sessions know a publisher only
//! through [`Publisher`], and are handed one: they never start a server themselves.

pub mod relay;
mod streams;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub use streams::StreamServer;

use crate::media::hub::StreamHub;

/// Makes a stream reachable at a URL the cloud can pull, and takes it back.
pub trait Publisher: Send + Sync {
    /// Publishes a live FLV stream; returns the URL a puller reads.
    fn publish_live(&self, hub: Arc<StreamHub>, expires: Option<Instant>) -> String;
    /// Publishes a whole file (served with Range); returns its URL.
    fn publish_file(&self, path: PathBuf, expires: Option<Instant>) -> String;
    /// Withdraws a published URL: later requests for it fail.
    fn withdraw(&self, url: &str);
    /// What published URLs start with, as the cloud reaches them.
    fn public_base(&self) -> &str;
}

impl Publisher for StreamServer {
    fn publish_live(&self, hub: Arc<StreamHub>, expires: Option<Instant>) -> String {
        StreamServer::publish_live(self, hub, expires)
    }
    fn publish_file(&self, path: PathBuf, expires: Option<Instant>) -> String {
        StreamServer::publish_file(self, path, expires)
    }
    fn withdraw(&self, url: &str) {
        self.unpublish(url);
    }
    fn public_base(&self) -> &str {
        self.base()
    }
}
