//! The emulator's own settings: the credentials it accepts, what simulated callees do, when
//! records appear, where ingest webhooks go and how the room observer paces streams, with
//! their defaults. Whoever starts an emulator fills these in; the emulator reads no
//! configuration file itself.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::cloud::{ApiCredentials, ImCredentials};
pub use crate::media::observer::Pace;

/// A callee answers this long after it starts ringing, unless told otherwise.
pub const DEFAULT_ANSWER_AFTER_MS: u64 = 1000;
/// A rejecting callee declines at once, unless told otherwise.
pub const DEFAULT_REJECT_AFTER_MS: u64 = 0;
/// About how long the real call engine takes to make a finished call's record queryable.
pub const DEFAULT_RECORD_DELAY_MS: u64 = 5000;
/// The real TRTC's reconnect attempts after an ingest source fails.
pub const DEFAULT_RECONNECT_DELAYS_MS: [u64; 3] = [0, 1000, 3000];

/// What a simulated callee does when rung.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    /// Answer after `after_ms`; hang up `hangup_after_ms` after answering, if given.
    Answer {
        #[serde(default = "default_answer_ms")]
        after_ms: u64,
        #[serde(default)]
        hangup_after_ms: Option<u64>,
    },
    /// Decline after `after_ms`.
    Reject {
        #[serde(default = "default_reject_ms")]
        after_ms: u64,
    },
    /// Let it ring until the ring timeout.
    NeverAnswer,
    /// Already in another call.
    Busy,
}

fn default_answer_ms() -> u64 {
    DEFAULT_ANSWER_AFTER_MS
}

fn default_reject_ms() -> u64 {
    DEFAULT_REJECT_AFTER_MS
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::Answer {
            after_ms: DEFAULT_ANSWER_AFTER_MS,
            hangup_after_ms: None,
        }
    }
}

/// Where TRTC ingest webhooks go and the key that signs them (console settings in the
/// real cloud).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrtcCallback {
    pub url: String,
    #[serde(default)]
    pub key: String,
}

/// Everything the emulator accepts and how it behaves.
#[derive(Clone)]
pub struct EmulatorConfig {
    pub sdkappid: u64,
    pub sdk_secret_key: SecretString,
    pub admin: String,
    pub secret_id: String,
    pub secret_key: SecretString,
    pub pace: Pace,
    pub default_behaviour: Behaviour,
    pub behaviours: HashMap<String, Behaviour>,
    pub trtc_callback: Option<TrtcCallback>,
    /// Records become queryable this long after a call ends (about 5 s in the cloud).
    pub record_delay: Duration,
    /// Delays of the reconnect attempts after a source fails (0, 1 and 3 s in the cloud).
    pub reconnect_delays: Vec<Duration>,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("sdkappid", &self.sdkappid)
            .field("admin", &self.admin)
            .field("pace", &self.pace)
            .field("default_behaviour", &self.default_behaviour)
            .finish_non_exhaustive()
    }
}

impl EmulatorConfig {
    /// An emulator that accepts exactly the credentials a client is given, and behaves as
    /// the cloud does by default: callees answer, real-time observer, 5 s record delay.
    pub fn new(im: ImCredentials, api: ApiCredentials) -> Self {
        Self {
            sdkappid: im.sdkappid,
            sdk_secret_key: im.secret_key,
            admin: im.admin.to_string(),
            secret_id: api.secret_id,
            secret_key: api.secret_key,
            pace: Pace::Realtime,
            default_behaviour: Behaviour::default(),
            behaviours: HashMap::new(),
            trtc_callback: None,
            record_delay: Duration::from_millis(DEFAULT_RECORD_DELAY_MS),
            reconnect_delays: DEFAULT_RECONNECT_DELAYS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        }
    }
}

/// Requests larger than this are refused with the documented size error.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
