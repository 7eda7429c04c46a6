//! Feeds: live inputs with a life of their own, independent of any call — an encoder pushing
//! RTMP to callfeed with a stream key of the feed's, or an input callfeed pulls itself (a
//! URL, a device, a test source). Each feed is decoded and encoded **once** into one contract
//! stream, and any number of sessions put it into their calls (`feed:ID`), each taking the
//! same hub. A publisher that drops puts the feed's calls on the slate; when it returns, the
//! same calls carry it again.
//!
//! - `model`: the vocabulary (kinds, states, the request, the view, the errors): a leaf
//! - `running`: one feed while it runs (its stream, state, publisher, sessions)
//! - `registry`: the node's feeds: made, found, leased, ended
//! - `publisher`: a publisher connected to a feed (or to a session's room monitor)
//! - `monitor`: sessions' room monitors' doors on the RTMP server (not feeds)
//! - `secret`: feed ids and stream keys
//! - `rtmp`: the RTMP server publishers push to
//! - `srt`: who publishes to an SRT feed (the gate its listener asks)
//! - `strikes`: addresses turned away for failing keys (RTMP and WHIP)
//! - `whip`: WHIP publishers (a browser, OBS 30+) over WebRTC: offer in, answer out

mod model;
mod monitor;
mod publisher;
mod registry;
pub mod rtmp;
mod running;
mod secret;
mod srt;
mod strikes;
mod whip;

pub use model::{
    FeedError, FeedEvent, FeedFigures, FeedKind, FeedMode, FeedRequest, FeedState, FeedView,
    PublishEndpoints, PublishSettings, PublisherView, Refusal, SrtEndpoint, WhipEndpoint,
};
pub use monitor::MonitorDoor;
pub(crate) use publisher::{Claim, PushTarget};
pub use registry::{DEFAULT_MAX_FEEDS, FeedLease, FeedSettings, Feeds};
pub use whip::{WhipAnswer, WhipRefusal};
