//! Configuration: a TOML file (`--config` or `CALLFEED_CONFIG`) with environment overrides.
//!
//! Every setting has one TOML key and one environment variable; errors name both, so a
//! user can fix whichever they use. Secrets are `SecretString` and never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::cloud::http::HttpSettings;
use crate::cloud::{ApiCredentials, ImCredentials, InvalidArgument, UserId};

mod emulator;
mod error;
mod settings;

pub use crate::publish::relay::{ENV_CSS_PLAY_KEY, ENV_CSS_PUSH_KEY};
pub use emulator::{CallbackTarget, CalleeScript, EmulatorTable, ObserverPace};
pub use error::ConfigError;
pub use settings::{
    ADMIN, ALL_SETTINGS, DATA_CENTER, HTTP_MAX_ATTEMPTS, HTTP_TIMEOUT_MS, IM_ENDPOINT, RATE_LIMITS,
    REGION, SDK_SECRET_KEY, SDKAPPID, SECRET_ID, SECRET_KEY, Setting, TRTC_ENDPOINT,
};

pub const ENV_CONFIG: &str = "CALLFEED_CONFIG";
pub const DEFAULT_ADMIN: &str = "administrator";
pub const DEFAULT_DATA_CENTER: DataCenter = DataCenter::China;

/// Where an SDKAppID's IM service lives; it decides the default hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataCenter {
    China,
    Singapore,
    Seoul,
    Tokyo,
    Frankfurt,
    Mumbai,
    SiliconValley,
    Jakarta,
}

impl DataCenter {
    pub const ALL: [DataCenter; 8] = [
        DataCenter::China,
        DataCenter::Singapore,
        DataCenter::Seoul,
        DataCenter::Tokyo,
        DataCenter::Frankfurt,
        DataCenter::Mumbai,
        DataCenter::SiliconValley,
        DataCenter::Jakarta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataCenter::China => "china",
            DataCenter::Singapore => "singapore",
            DataCenter::Seoul => "seoul",
            DataCenter::Tokyo => "tokyo",
            DataCenter::Frankfurt => "frankfurt",
            DataCenter::Mumbai => "mumbai",
            DataCenter::SiliconValley => "silicon-valley",
            DataCenter::Jakarta => "jakarta",
        }
    }

    pub fn im_host(self) -> &'static str {
        match self {
            DataCenter::China => "console.tim.qq.com",
            DataCenter::Singapore => "adminapisgp.im.qcloud.com",
            DataCenter::Seoul => "adminapikr.im.qcloud.com",
            DataCenter::Tokyo => "adminapijpn.im.qcloud.com",
            DataCenter::Frankfurt => "adminapiger.im.qcloud.com",
            DataCenter::Mumbai => "adminapiind.im.qcloud.com",
            DataCenter::SiliconValley => "adminapiusa.im.qcloud.com",
            DataCenter::Jakarta => "adminapiidn.im.qcloud.com",
        }
    }

    /// The China site serves China apps; every other data centre uses the intl site.
    pub fn trtc_host(self) -> &'static str {
        match self {
            DataCenter::China => "trtc.tencentcloudapi.com",
            _ => "trtc.intl.tencentcloudapi.com",
        }
    }

    /// The nearest region in which all four StreamIngest actions are documented.
    pub fn default_region(self) -> &'static str {
        match self {
            DataCenter::China => "ap-guangzhou",
            DataCenter::Mumbai => "ap-mumbai",
            DataCenter::Jakarta => "ap-jakarta",
            _ => "ap-singapore",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    sdkappid: Option<toml::Value>,
    sdk_secret_key: Option<String>,
    admin: Option<String>,
    secret_id: Option<String>,
    secret_key: Option<String>,
    data_center: Option<String>,
    region: Option<String>,
    im_endpoint: Option<String>,
    trtc_endpoint: Option<String>,
    http_timeout_ms: Option<u64>,
    http_max_attempts: Option<u64>,
    rate_limits: Option<bool>,
    #[serde(default)]
    emulator: EmulatorTable,
    /// The relay every session pushes to unless it names its own.
    relay: Option<crate::publish::relay::RelayFields>,
    /// The room monitor every session gets unless it says otherwise.
    monitor: Option<MonitorTable>,
    /// Topology overrides and additions: section → name → gst-launch fragment.
    #[serde(default)]
    pipelines: BTreeMap<String, BTreeMap<String, String>>,
}

/// `[monitor]`: the room monitor every session gets unless its request says otherwise, as
/// written (the session's own rules read it, as they read a request's fields).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorTable {
    /// `robot` (the robot's stream as the room carries it) or `mix` (the room's mix).
    pub source: Option<String>,
    /// `true`, `false` or `"audio"`: what the monitor receives is recorded.
    pub record: Option<toml::Value>,
}

/// Where a value came from, for `callfeed config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
}

/// The effective configuration.
#[derive(Clone)]
pub struct Config {
    pub sdkappid: Option<u64>,
    pub sdk_secret_key: Option<SecretString>,
    pub admin: String,
    pub secret_id: Option<String>,
    pub secret_key: Option<SecretString>,
    pub data_center: DataCenter,
    pub region: String,
    pub im_endpoint: url::Url,
    pub trtc_endpoint: url::Url,
    pub http: HttpSettings,
    pub emulator: EmulatorTable,
    /// `[pipelines]` overrides of `pipelines/topologies.toml`, checked when loaded.
    pub pipelines: BTreeMap<String, BTreeMap<String, String>>,
    /// `[relay]` as written (with the environment's keys), for flags that name only part
    /// of a relay and take the keys from here.
    pub relay_fields: crate::publish::relay::RelayFields,
    /// The relay `[relay]` names: every session pushes there unless it names its own.
    pub relay: Option<crate::publish::relay::Relay>,
    /// `[monitor]`, as written.
    pub monitor: Option<MonitorTable>,
    pub file: Option<PathBuf>,
    sources: BTreeMap<&'static str, Source>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |set: bool| if set { "<redacted>" } else { "<not set>" };
        f.debug_struct("Config")
            .field("sdkappid", &self.sdkappid)
            .field("sdk_secret_key", &redacted(self.sdk_secret_key.is_some()))
            .field("admin", &self.admin)
            .field("secret_id", &redacted(self.secret_id.is_some()))
            .field("secret_key", &redacted(self.secret_key.is_some()))
            .field("data_center", &self.data_center)
            .field("region", &self.region)
            .field("im_endpoint", &self.im_endpoint.as_str())
            .field("trtc_endpoint", &self.trtc_endpoint.as_str())
            .field("http", &self.http)
            .field("relay", &self.relay)
            .finish()
    }
}

fn parse_endpoint(setting: Setting, value: &str) -> Result<url::Url, ConfigError> {
    let mut url = url::Url::parse(value).map_err(|e| {
        ConfigError::invalid(setting, value, format!("an http:// or https:// URL ({e})"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::invalid(
            setting,
            value,
            "an http:// or https:// URL with a host",
        ));
    }
    // Paths are joined onto the base, which needs a trailing slash to keep its own path.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_owned(),
    })
}

/// Chooses each setting's value, the environment over the file and the file over the
/// default, and remembers where each came from.
struct Picker<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    sources: BTreeMap<&'static str, Source>,
}

impl Picker<'_> {
    /// An empty environment variable counts as unset.
    fn pick(&mut self, setting: Setting, from_file: Option<String>) -> Option<String> {
        let env_value = (self.env)(setting.env).filter(|v| !v.is_empty());
        let (value, source) = match (env_value, from_file) {
            (Some(v), _) => (Some(v), Source::Env),
            (None, Some(v)) => (Some(v), Source::File),
            (None, None) => (None, Source::Default),
        };
        self.sources.insert(setting.toml, source);
        value
    }
}

/// A TOML value as the environment would spell it (a string without its quotes).
fn toml_scalar(value: Option<toml::Value>) -> Option<String> {
    value.map(|v| match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    })
}

fn parse_sdkappid(value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=u64::from(u32::MAX)).contains(n))
        .ok_or_else(|| {
            ConfigError::invalid(
                SDKAPPID,
                value,
                "a positive 32-bit integer such as 1400000000",
            )
        })
}

fn parse_data_center(value: &str) -> Result<DataCenter, ConfigError> {
    DataCenter::parse(value).ok_or_else(|| {
        let names: Vec<_> = DataCenter::ALL.iter().map(|d| d.name()).collect();
        ConfigError::invalid(DATA_CENTER, value, format!("one of {}", names.join(", ")))
    })
}

fn check_region(region: &str) -> Result<(), ConfigError> {
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ConfigError::invalid(
            REGION,
            region,
            "a region name such as ap-singapore or ap-guangzhou",
        ));
    }
    Ok(())
}

/// The HTTP client's settings: the defaults, with whichever of the three are set.
fn http_settings(
    picker: &mut Picker<'_>,
    timeout_ms: Option<u64>,
    max_attempts: Option<u64>,
    rate_limits: Option<bool>,
) -> Result<HttpSettings, ConfigError> {
    let mut http = HttpSettings::default();
    if let Some(v) = picker.pick(HTTP_TIMEOUT_MS, timeout_ms.map(|n| n.to_string())) {
        let ms = v
            .parse::<u64>()
            .ok()
            .filter(|ms| (100..=120_000).contains(ms))
            .ok_or_else(|| ConfigError::invalid(HTTP_TIMEOUT_MS, &v, "100 to 120000 ms"))?;
        http.timeout = Duration::from_millis(ms);
    }
    if let Some(v) = picker.pick(HTTP_MAX_ATTEMPTS, max_attempts.map(|n| n.to_string())) {
        http.max_attempts = v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10).contains(n))
            .ok_or_else(|| ConfigError::invalid(HTTP_MAX_ATTEMPTS, &v, "1 to 10"))?;
    }
    if let Some(v) = picker.pick(RATE_LIMITS, rate_limits.map(|b| b.to_string())) {
        http.rate_limits = match v.as_str() {
            "true" | "1" | "on" => true,
            "false" | "0" | "off" => false,
            _ => return Err(ConfigError::invalid(RATE_LIMITS, &v, "true or false")),
        };
    }
    Ok(http)
}

impl Config {
    /// Loads from `path` (or `CALLFEED_CONFIG`) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &|name| std::env::var(name).ok())
    }

    /// Loads with an explicit environment, for tests.
    pub fn load_with(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| env(ENV_CONFIG).filter(|p| !p.is_empty()).map(PathBuf::from));
        let file = match &path {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let mut picker = Picker {
            env,
            sources: BTreeMap::new(),
        };
        let sdkappid = picker
            .pick(SDKAPPID, toml_scalar(file.sdkappid))
            .map(|v| parse_sdkappid(&v))
            .transpose()?;
        let sdk_secret_key = picker
            .pick(SDK_SECRET_KEY, file.sdk_secret_key)
            .map(SecretString::from);
        let admin = picker
            .pick(ADMIN, file.admin)
            .unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
        UserId::new("admin", &admin).map_err(|e| ConfigError::invalid(ADMIN, &admin, e.allowed))?;
        let secret_id = picker.pick(SECRET_ID, file.secret_id);
        let secret_key = picker
            .pick(SECRET_KEY, file.secret_key)
            .map(SecretString::from);
        let data_center = match picker.pick(DATA_CENTER, file.data_center) {
            Some(v) => parse_data_center(&v)?,
            None => DEFAULT_DATA_CENTER,
        };
        let region = picker
            .pick(REGION, file.region)
            .unwrap_or_else(|| data_center.default_region().to_owned());
        check_region(&region)?;
        let im_endpoint = picker
            .pick(IM_ENDPOINT, file.im_endpoint)
            .unwrap_or_else(|| format!("https://{}/", data_center.im_host()));
        let im_endpoint = parse_endpoint(IM_ENDPOINT, &im_endpoint)?;
        let trtc_endpoint = picker
            .pick(TRTC_ENDPOINT, file.trtc_endpoint)
            .unwrap_or_else(|| format!("https://{}/", data_center.trtc_host()));
        let trtc_endpoint = parse_endpoint(TRTC_ENDPOINT, &trtc_endpoint)?;
        let http = http_settings(
            &mut picker,
            file.http_timeout_ms,
            file.http_max_attempts,
            file.rate_limits,
        )?;
        let (relay_fields, relay) =
            crate::publish::relay::load(file.relay, env).map_err(|e| ConfigError::Parse {
                path: path
                    .as_deref()
                    .map(Into::into)
                    .unwrap_or_else(|| "(environment)".into()),
                message: format!("[relay] {e}"),
            })?;
        Ok(Self {
            sdkappid,
            sdk_secret_key,
            admin,
            secret_id,
            secret_key,
            data_center,
            region,
            im_endpoint,
            trtc_endpoint,
            http,
            emulator: file.emulator,
            pipelines: file.pipelines,
            relay_fields,
            relay,
            monitor: file.monitor,
            file: path,
            sources: picker.sources,
        })
    }

    pub fn source(&self, setting: Setting) -> Source {
        self.sources
            .get(setting.toml)
            .copied()
            .unwrap_or(Source::Default)
    }

    /// Every one of `needed` that is not set, named at once (a user fixes them all in one
    /// go, not one per run).
    pub fn require_credentials(&self, needed: &[Setting]) -> Result<(), ConfigError> {
        let missing: Vec<&Setting> = needed
            .iter()
            .filter(|s| match s.toml {
                t if t == SDKAPPID.toml => self.sdkappid.is_none(),
                t if t == SDK_SECRET_KEY.toml => self.sdk_secret_key.is_none(),
                t if t == SECRET_ID.toml => self.secret_id.is_none(),
                t if t == SECRET_KEY.toml => self.secret_key.is_none(),
                _ => false,
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(ConfigError::MissingCredentials {
            envs: missing.iter().map(|s| s.env).collect(),
            tomls: missing.iter().map(|s| s.toml).collect(),
        })
    }

    pub fn require_sdkappid(&self) -> Result<u64, ConfigError> {
        self.sdkappid.ok_or_else(|| ConfigError::missing(SDKAPPID))
    }

    pub fn require_sdk_secret_key(&self) -> Result<SecretString, ConfigError> {
        self.sdk_secret_key
            .clone()
            .ok_or_else(|| ConfigError::missing(SDK_SECRET_KEY))
    }

    /// What the call-engine client needs; names the first missing value.
    pub fn im_credentials(&self) -> Result<ImCredentials, ConfigError> {
        Ok(ImCredentials {
            sdkappid: self.require_sdkappid()?,
            secret_key: self.require_sdk_secret_key()?,
            admin: UserId::new("admin", &self.admin).map_err(|e: InvalidArgument| {
                ConfigError::invalid(ADMIN, &self.admin, e.allowed)
            })?,
        })
    }

    /// What the TRTC API 3.0 client needs; names the first missing value.
    pub fn api_credentials(&self) -> Result<ApiCredentials, ConfigError> {
        Ok(ApiCredentials {
            secret_id: self
                .secret_id
                .clone()
                .ok_or_else(|| ConfigError::missing(SECRET_ID))?,
            secret_key: self
                .secret_key
                .clone()
                .ok_or_else(|| ConfigError::missing(SECRET_KEY))?,
        })
    }

    /// The effective configuration as TOML, secrets redacted, each line saying where its
    /// value came from.
    pub fn render_redacted(&self) -> String {
        let mut out = String::new();
        match &self.file {
            Some(p) => out.push_str(&format!("# config file: {}\n", p.display())),
            None => out.push_str("# config file: none (set --config or CALLFEED_CONFIG)\n"),
        }
        for setting in ALL_SETTINGS {
            let value = match setting.toml {
                "sdkappid" => self.sdkappid.map(|v| v.to_string()),
                "sdk_secret_key" => self.sdk_secret_key.as_ref().map(|_| String::new()),
                "admin" => Some(format!("{:?}", self.admin)),
                "secret_id" => self.secret_id.as_ref().map(|_| String::new()),
                "secret_key" => self.secret_key.as_ref().map(|_| String::new()),
                "data_center" => Some(format!("{:?}", self.data_center.name())),
                "region" => Some(format!("{:?}", self.region)),
                "im_endpoint" => Some(format!("{:?}", self.im_endpoint.as_str())),
                "trtc_endpoint" => Some(format!("{:?}", self.trtc_endpoint.as_str())),
                "http_timeout_ms" => Some(self.http.timeout.as_millis().to_string()),
                "http_max_attempts" => Some(self.http.max_attempts.to_string()),
                "rate_limits" => Some(self.http.rate_limits.to_string()),
                _ => None,
            };
            let origin = match self.source(setting) {
                Source::Env => format!("from {}", setting.env),
                Source::File => "from the config file".to_owned(),
                Source::Default => "default".to_owned(),
            };
            match value {
                Some(_) if setting.secret => {
                    out.push_str(&format!("{} = \"<redacted>\"  # {origin}\n", setting.toml))
                }
                Some(v) => out.push_str(&format!("{} = {v}  # {origin}\n", setting.toml)),
                None => out.push_str(&format!(
                    "# {} is not set: {} (env {})\n",
                    setting.toml, setting.about, setting.env
                )),
            }
        }
        // The relay, as its Debug shows it: no key, no signed query.
        match &self.relay {
            Some(relay) => out.push_str(&format!("# [relay]: {relay:?}\n")),
            None => out.push_str("# [relay] is not set: sessions are served by this node\n"),
        }
        out
    }
}

#[cfg(test)]
mod tests;
