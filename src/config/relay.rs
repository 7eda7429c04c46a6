//! The `[relay]` table: the RTMP relay every session pushes to unless it names its own. The
//! CSS keys may come from the environment instead, as `callfeed push` takes them.

use secrecy::SecretString;

use super::ConfigError;
use crate::publish::relay::{Relay, RelayFields};

pub const ENV_CSS_PUSH_KEY: &str = "CALLFEED_CSS_PUSH_KEY";
pub const ENV_CSS_PLAY_KEY: &str = "CALLFEED_CSS_PLAY_KEY";

/// The table's fields with the environment's keys over the file's, and the relay they name.
pub(super) fn load(
    path: Option<&std::path::Path>,
    table: Option<RelayFields>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(RelayFields, Option<Relay>), ConfigError> {
    let mut fields = table.unwrap_or_default();
    let from_env = |name| env(name).filter(|v| !v.is_empty()).map(SecretString::from);
    if let Some(key) = from_env(ENV_CSS_PUSH_KEY) {
        fields.css_push_key = Some(key);
    }
    if let Some(key) = from_env(ENV_CSS_PLAY_KEY) {
        fields.css_play_key = Some(key);
    }
    let relay = fields.validate().map_err(|e| ConfigError::Parse {
        path: path
            .map(Into::into)
            .unwrap_or_else(|| "(environment)".into()),
        message: format!("[relay] {e}"),
    })?;
    Ok((fields, relay))
}
