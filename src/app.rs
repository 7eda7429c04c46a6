//! Wiring that the commands and the tests share: the cloud clients built from a [`Config`],
//! the emulator's settings from the `[emulator]` table, the embedded emulator with demo
//! credentials, where the session journal lives, and the shutdown signal.
//!
//! Errors stay `anyhow` here on purpose: the command line decides its exit code by finding
//! the original error (a `ConfigError`, an `InvalidArgument`...) in the chain, and a wrapping
//! enum would hide it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::cloud::Transport;
use crate::cloud::call::CallClient;
use crate::cloud::ingest::IngestClient;
use crate::config::{CallbackTarget, CalleeScript, Config, ConfigError, ObserverPace};
use crate::emulator::{
    Behaviour, DEFAULT_ANSWER_AFTER_MS, DEFAULT_REJECT_AFTER_MS, Emulator, EmulatorConfig, Pace,
    TrtcCallback,
};
use crate::session::CloudClients;
use crate::store::{self as journal, Store, StoreError};

/// The SDKs' public demo SDKAppID, used against the embedded emulator when none is set.
pub const DEMO_SDKAPPID: u64 = 1_400_000_000;
/// The SDKs' public demo app key that goes with [`DEMO_SDKAPPID`].
pub const DEMO_APP_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
/// A made-up API 3.0 key pair: the embedded emulator only needs both sides to agree.
pub const DEMO_SECRET_ID: &str = "AKIDcallfeedEmulator000000000000000";
pub const DEMO_SECRET_KEY: &str = "callfeedEmulatorSecretKey000000";

/// What the cloud clients need: the call engine's two (first), then TRTC's two more.
pub const CLOUD_CREDENTIALS: [crate::config::Setting; 4] = [
    crate::config::SDKAPPID,
    crate::config::SDK_SECRET_KEY,
    crate::config::SECRET_ID,
    crate::config::SECRET_KEY,
];

/// The call-engine and TRTC clients for the configured cloud (or emulator), sharing one
/// transport so both obey the same timeouts, retries and rate limits.
pub fn cloud_clients(config: &Config) -> anyhow::Result<CloudClients> {
    config.require_credentials(&CLOUD_CREDENTIALS)?;
    let transport = Arc::new(Transport::new(config.http.clone())?);
    Ok(CloudClients {
        calls: call_client(config, transport.clone())?,
        ingest: ingest_client(config, transport)?,
    })
}

/// The call-engine client alone, for commands that need no TRTC credentials.
pub fn call_client(config: &Config, transport: Arc<Transport>) -> anyhow::Result<CallClient> {
    config.require_credentials(&CLOUD_CREDENTIALS[..2])?;
    Ok(CallClient::new(
        transport,
        config.im_endpoint.clone(),
        config.im_credentials()?,
    ))
}

/// The TRTC StreamIngest client alone, for commands that need no call-engine credentials.
pub fn ingest_client(config: &Config, transport: Arc<Transport>) -> anyhow::Result<IngestClient> {
    config.require_credentials(&CLOUD_CREDENTIALS)?;
    Ok(IngestClient::new(
        transport,
        config.trtc_endpoint.clone(),
        config.region.clone(),
        config.api_credentials()?,
        config.require_sdkappid()?,
        config.require_sdk_secret_key()?,
    ))
}

/// The emulator's settings from the configuration: it accepts exactly the credentials the
/// client is configured with, and behaves as the `[emulator]` table says, where it says.
pub fn emulator_config(config: &Config) -> Result<EmulatorConfig, ConfigError> {
    let mut settings = EmulatorConfig::new(config.im_credentials()?, config.api_credentials()?);
    let table = &config.emulator;
    if let Some(pace) = table.pace {
        settings.pace = pace.into();
    }
    if let Some(ms) = table.record_delay_ms {
        settings.record_delay = Duration::from_millis(ms);
    }
    if let Some(script) = &table.default_behaviour {
        settings.default_behaviour = script.clone().into();
    }
    settings.behaviours = table
        .behaviours
        .iter()
        .map(|(user, script)| (user.clone(), script.clone().into()))
        .collect();
    settings.trtc_callback = table.trtc_callback.clone().map(Into::into);
    Ok(settings)
}

impl From<ObserverPace> for Pace {
    fn from(p: ObserverPace) -> Self {
        match p {
            ObserverPace::Realtime => Pace::Realtime,
            ObserverPace::Fast => Pace::Fast,
        }
    }
}

impl From<CalleeScript> for Behaviour {
    fn from(s: CalleeScript) -> Self {
        match s {
            CalleeScript::Answer {
                after_ms,
                hangup_after_ms,
            } => Behaviour::Answer {
                after_ms: after_ms.unwrap_or(DEFAULT_ANSWER_AFTER_MS),
                hangup_after_ms,
            },
            CalleeScript::Reject { after_ms } => Behaviour::Reject {
                after_ms: after_ms.unwrap_or(DEFAULT_REJECT_AFTER_MS),
            },
            CalleeScript::NeverAnswer => Behaviour::NeverAnswer,
            CalleeScript::Busy => Behaviour::Busy,
        }
    }
}

impl From<CallbackTarget> for TrtcCallback {
    fn from(t: CallbackTarget) -> Self {
        TrtcCallback {
            url: t.url,
            key: t.key,
        }
    }
}

/// What the emulator's room observer saw arrive in a call's room: a session's witness, so
/// its report is checked against the room, not only against callfeed's own figures. Holds
/// the emulator weakly: its owner shuts it down.
pub fn room_witness(emulator: &Arc<Emulator>) -> crate::session::driver::RoomWitness {
    let emulator = Arc::downgrade(emulator);
    Arc::new(move |call_id: &str| {
        let view = emulator.upgrade()?.call_view(call_id)?;
        let tasks = view["media"].as_array()?;
        let sum = |field: &str| tasks.iter().filter_map(|t| t[field].as_u64()).sum();
        let cues_heard = tasks
            .iter()
            .filter_map(|t| t["cues_heard"].as_array())
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect();
        Some(crate::session::state::RoomSeen {
            audio_ms: sum("audio_ms"),
            video_frames: sum("video_frames"),
            cues_heard,
        })
    })
}

/// What the emulator's room observer saw of a call, whole (callees, and per ingest task the
/// frames, picture size, audio level and dominant tone): the console's room panel.
pub fn room_view(emulator: &Arc<Emulator>) -> crate::serve::api::RoomView {
    let emulator = Arc::downgrade(emulator);
    Arc::new(move |call_id: &str| emulator.upgrade()?.call_view(call_id))
}

/// Fills every credential not configured with the demo ones, which only an emulator
/// accepts: `call --emulator`, `load --emulator` and `callfeed emulator` need no account.
pub fn use_demo_credentials(config: &mut Config) {
    if config.sdkappid.is_none() {
        config.sdkappid = Some(DEMO_SDKAPPID);
    }
    if config.sdk_secret_key.is_none() {
        config.sdk_secret_key = Some(SecretString::from(DEMO_APP_KEY));
    }
    if config.secret_id.is_none() {
        config.secret_id = Some(DEMO_SECRET_ID.into());
    }
    if config.secret_key.is_none() {
        config.secret_key = Some(SecretString::from(DEMO_SECRET_KEY));
    }
}

/// Starts an in-process emulator that accepts the configured credentials (the SDKs' public
/// demo ones where none are set), with `default_behaviour` for every callee and `scripted`
/// ones for some, and points the config's endpoints at it.
pub async fn start_embedded_emulator(
    config: &mut Config,
    default_behaviour: Behaviour,
    scripted: &[(String, Behaviour)],
) -> anyhow::Result<Emulator> {
    use_demo_credentials(config);
    let mut settings = emulator_config(config)?;
    // A call shown to a person plays at the pace a callee would hear it.
    settings.pace = Pace::Realtime;
    settings.default_behaviour = default_behaviour;
    settings.behaviours.extend(scripted.iter().cloned());
    let emulator = Emulator::start(settings, "127.0.0.1:0".parse().expect("an address")).await?;
    let base = url::Url::parse(&format!("{}/", emulator.endpoints().im_endpoint))?;
    config.im_endpoint = base.clone();
    config.trtc_endpoint = base;
    Ok(emulator)
}

/// Where a command keeps its session journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalAt {
    /// `$XDG_STATE_HOME/callfeed/journal.sqlite`: what a crashed run left open is found by
    /// the next one.
    Default,
    /// A file the user named.
    File(PathBuf),
    /// A private folder removed with the journal: runs against the in-process emulator,
    /// which forgets its calls when it stops, have nothing to recover later.
    Scratch,
    /// A PostgreSQL database shared by a cluster of nodes (`serve --store postgres://...`).
    Postgres(String),
}

impl JournalAt {
    /// The default place unless a file is given.
    pub fn file_or_default(file: Option<PathBuf>) -> Self {
        file.map_or(JournalAt::Default, JournalAt::File)
    }

    pub async fn open(self) -> Result<OpenJournal, StoreError> {
        let (path, scratch) = match self {
            JournalAt::Postgres(url) => {
                return Ok(OpenJournal {
                    journal: Arc::new(Store::connect(&url).await?),
                    _scratch: None,
                });
            }
            JournalAt::Default => (journal::default_path(), None),
            JournalAt::File(path) => (path, None),
            JournalAt::Scratch => {
                let dir = ScratchDir::new();
                (dir.0.join("journal.sqlite"), Some(dir))
            }
        };
        // Opening creates and migrates the file: blocking work, kept off the runtime's
        // threads. Only a panic ends the task early (the runtime outlives this await).
        let opened = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        Ok(OpenJournal {
            journal: Arc::new(opened?),
            _scratch: scratch,
        })
    }
}

/// An open journal, and the scratch folder it lives in, if any, which goes with it.
#[derive(Debug)]
pub struct OpenJournal {
    // Declared first so the database is closed before its folder is removed.
    journal: Arc<Store>,
    _scratch: Option<ScratchDir>,
}

impl OpenJournal {
    pub fn journal(&self) -> &Arc<Store> {
        &self.journal
    }
}

/// A private temporary directory, removed on drop.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("callfeed-{}", uuid::Uuid::new_v4().simple()));
        let _ = std::fs::create_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ctrl-C or SIGTERM, whichever comes first. Where SIGTERM cannot be watched, Ctrl-C alone.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(table: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("callfeed-app-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, table).unwrap();
        let env = |name: &str| match name {
            "CALLFEED_SDKAPPID" => Some(DEMO_SDKAPPID.to_string()),
            "CALLFEED_SDK_SECRET_KEY" => Some(DEMO_APP_KEY.into()),
            "TENCENTCLOUD_SECRET_ID" => Some(DEMO_SECRET_ID.into()),
            "TENCENTCLOUD_SECRET_KEY" => Some(DEMO_SECRET_KEY.into()),
            _ => None,
        };
        let config = Config::load_with(Some(&path), &env);
        let _ = std::fs::remove_dir_all(&dir);
        config
    }

    #[test]
    fn the_emulator_table_becomes_the_emulators_settings() {
        let config = load(
            "[emulator]\npace = \"fast\"\nrecord_delay_ms = 10\n\
             default_behaviour = { action = \"reject\" }\n\
             behaviours = { jack = { action = \"answer\", hangup_after_ms = 5 }, jill = { action = \"busy\" } }\n\
             trtc_callback = { url = \"http://127.0.0.1:9/trtc\" }\n",
        )
        .unwrap();
        let e = emulator_config(&config).unwrap();
        assert_eq!(e.sdkappid, DEMO_SDKAPPID);
        assert_eq!(e.secret_id, DEMO_SECRET_ID);
        assert_eq!(e.pace, Pace::Fast);
        assert_eq!(e.record_delay, Duration::from_millis(10));
        assert_eq!(
            e.default_behaviour,
            Behaviour::Reject {
                after_ms: DEFAULT_REJECT_AFTER_MS
            }
        );
        assert_eq!(
            e.behaviours["jack"],
            Behaviour::Answer {
                after_ms: DEFAULT_ANSWER_AFTER_MS,
                hangup_after_ms: Some(5)
            }
        );
        assert_eq!(e.behaviours["jill"], Behaviour::Busy);
        let callback = e.trtc_callback.unwrap();
        assert_eq!(
            (callback.url.as_str(), callback.key.as_str()),
            ("http://127.0.0.1:9/trtc", "")
        );
    }

    #[test]
    fn without_a_table_the_emulator_keeps_its_defaults() {
        let e = emulator_config(&load("").unwrap()).unwrap();
        let d = EmulatorConfig::new(
            load("").unwrap().im_credentials().unwrap(),
            load("").unwrap().api_credentials().unwrap(),
        );
        assert_eq!(e.pace, d.pace);
        assert_eq!(e.record_delay, d.record_delay);
        assert_eq!(e.default_behaviour, Behaviour::default());
        assert!(e.behaviours.is_empty() && e.trtc_callback.is_none());
        assert_eq!(e.reconnect_delays, d.reconnect_delays);
    }

    #[test]
    fn a_bad_emulator_table_is_refused_when_the_file_is_loaded() {
        for (table, says) in [
            (
                "default_behaviour = { action = \"fly\" }",
                "unknown variant `fly`",
            ),
            ("pace = \"slow\"", "unknown variant `slow`"),
            ("trtc_callback = { key = \"k\" }", "missing field `url`"),
            (
                "behaviours = { jack = { action = \"answer\", after = 2 } }",
                "unknown field `after`",
            ),
            ("speed = 1", "unknown field `speed`"),
        ] {
            let err = load(&format!("[emulator]\n{table}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{table}: {err}");
        }
    }
}
