//! Why a configuration cannot be used, naming the setting, where it is set and what it
//! takes: shared by the settings' loaders (a leaf: it calls none of them).

use std::path::PathBuf;

use super::settings::Setting;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {env} / `{toml}` value `{value}`: {allowed}")]
    Invalid {
        env: &'static str,
        toml: &'static str,
        value: String,
        allowed: String,
    },
    #[error(
        "missing {about}: set {env} or `{toml}` in the config file (--config or CALLFEED_CONFIG)"
    )]
    Missing {
        about: &'static str,
        env: &'static str,
        toml: &'static str,
    },
    #[error(
        "no Tencent credentials: set {} (or `{}` in the config file, --config or CALLFEED_CONFIG), or add --emulator (call, load) to try without an account",
        list(.envs), .tomls.join("`, `")
    )]
    MissingCredentials {
        envs: Vec<&'static str>,
        tomls: Vec<&'static str>,
    },
}

/// `A`, `A and B`, `A, B and C`.
fn list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

impl ConfigError {
    pub(super) fn invalid(setting: Setting, value: &str, allowed: impl Into<String>) -> Self {
        ConfigError::Invalid {
            env: setting.env,
            toml: setting.toml,
            value: if setting.secret {
                "<redacted>".into()
            } else {
                value.to_owned()
            },
            allowed: allowed.into(),
        }
    }

    pub(super) fn missing(setting: Setting) -> Self {
        ConfigError::Missing {
            about: setting.about,
            env: setting.env,
            toml: setting.toml,
        }
    }
}
