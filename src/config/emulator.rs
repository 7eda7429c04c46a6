//! The `[emulator]` table of the config file and the types of its values.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The `[emulator]` table: how `callfeed emulator` and `--emulator` behave, as plain data.
///
/// Its shape is checked when the file is loaded, so a typo is named with the file like any
/// other; what the values mean, and what an unset one defaults to, is the emulator's
/// business (`emulator::EmulatorConfig`), which the command line builds from this.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorTable {
    /// `realtime` (as a player) or `fast` (as fast as decoding allows).
    pub pace: Option<ObserverPace>,
    /// How long after a call ends its record becomes queryable.
    pub record_delay_ms: Option<u64>,
    /// What callees without their own entry do.
    pub default_behaviour: Option<CalleeScript>,
    /// Per callee, e.g. `jack = { action = "answer", after_ms = 2000 }`.
    pub behaviours: BTreeMap<String, CalleeScript>,
    /// Where ingest webhooks go, signed with `key`.
    pub trtc_callback: Option<CallbackTarget>,
}

/// How the emulator's room observer consumes a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObserverPace {
    Realtime,
    Fast,
}

/// What a simulated callee does when rung; unset delays are the emulator's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum CalleeScript {
    Answer {
        #[serde(default)]
        after_ms: Option<u64>,
        #[serde(default)]
        hangup_after_ms: Option<u64>,
    },
    Reject {
        #[serde(default)]
        after_ms: Option<u64>,
    },
    NeverAnswer,
    Busy,
}

/// Where the emulator posts TRTC ingest webhooks, and the key that signs them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallbackTarget {
    pub url: String,
    #[serde(default)]
    pub key: String,
}
