//! An RTMP relay a session's stream is pushed to, and the play URL the cloud pulls from it:
//! for nodes the cloud cannot reach (behind NAT). Either any RTMP server (SRS, nginx-rtmp,
//! MediaMTX), given as push and play URLs with a `{stream}` placeholder, or Tencent CSS,
//! given as domains and keys, whose URLs are signed per session.
//!
//! One room for all of it: a session asks it to [`check`] its relay before anything rings
//! and then runs the [`RelayLink`] it hands back.
//!
//! - `fields`: the relay as asked for (flags, request, `[relay]`), and its validation
//! - `target`: a validated relay and one session's URLs on it (signed through `cloud::css`)
//! - `link`: the test push, the push itself, what it does while the call runs

mod fields;
mod link;
mod target;

pub(crate) use fields::load;
pub use fields::{ENV_CSS_PLAY_KEY, ENV_CSS_PUSH_KEY, RelayFields};
pub use link::{RelayFigures, RelayLink, check};
pub use target::{CssRelay, Endpoints, PlayFormat, Relay, STREAM_PLACEHOLDER, stream_name};
