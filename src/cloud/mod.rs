//! Tencent's wire protocols: the call engine (IM REST), TRTC StreamIngest and relay to CDN (API 3.0), UserSig,
//! TC3 signing, CSS URLs and webhooks. Nothing here knows about GStreamer or sessions.

pub mod call;
pub mod css;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod publish_cdn;
pub mod room;
pub mod tc3;
pub mod usersig;
pub mod webhook;

pub use call::{CallClient, ImCredentials, MediaType, StartCallByRobot};
pub use http::{CloudError, HttpSettings, PreparedRequest, Transport};
pub use ids::{InvalidArgument, UserId};
pub use ingest::{ApiCredentials, IngestClient, StartStreamIngest};
pub use room::{RoomKind, RoomRef};
