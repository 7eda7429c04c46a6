//! The `[relay]` table: the RTMP relay every session pushes to unless it names its own. The
//! CSS keys may come from the environment instead, as `callfeed push` takes them.

use secrecy::SecretString;

use super::error::ConfigError;
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

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::io::Write;

    fn config(toml: &str, env: &[(&str, &str)]) -> Result<Config, super::ConfigError> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(toml.as_bytes()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(Some(file.path()), &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_relay_table_names_every_sessions_relay_with_keys_from_the_environment() {
        let css = "[relay]\ncss_push_domain = \"push.example.com\"\ncss_play_domain = \"play.example.com\"\n";
        // The key only in the environment.
        let c = config(css, &[(super::ENV_CSS_PUSH_KEY, "envkey")]).unwrap();
        let relay = c.relay.clone().expect("a relay");
        let e = relay.endpoints("s", 1_700_003_600);
        let push = secrecy::ExposeSecret::expose_secret(&e.push).to_owned();
        assert!(push.starts_with("rtmp://push.example.com/live/s?txSecret="));
        assert!(!format!("{c:?}").contains("envkey"));
        // Without a key it is refused at load, naming the field.
        let err = config(css, &[]).unwrap_err().to_string();
        assert!(err.contains("relay.css_push_key"), "{err}");
        let err = config("[relay]\npush = \"rtmp://r/live/{stream}\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("relay.play"), "{err}");
        // No table, no relay; a key alone in the environment is for `push`.
        let c = config("", &[(super::ENV_CSS_PUSH_KEY, "k")]).unwrap();
        assert!(c.relay.is_none());
    }
}
