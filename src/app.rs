//! Wiring that the commands and the tests share: the cloud clients built from a [`Config`],
//! the embedded emulator with demo credentials, where the session journal lives, and the
//! shutdown signal.
//!
//! Errors stay `anyhow` here on purpose: the command line decides its exit code by finding
//! the original error (a `ConfigError`, an `InvalidArgument`...) in the chain, and a wrapping
//! enum would hide it.

use std::path::PathBuf;
use std::sync::Arc;

use secrecy::SecretString;

use crate::cloud::Transport;
use crate::cloud::call::CallClient;
use crate::cloud::ingest::IngestClient;
use crate::config::Config;
use crate::emulator::{Behaviour, Emulator, EmulatorConfig, Pace};
use crate::session::CloudClients;
use crate::session::journal::{self, Journal, JournalError};

/// The SDKs' public demo SDKAppID, used against the embedded emulator when none is set.
pub const DEMO_SDKAPPID: u64 = 1_400_000_000;
/// The SDKs' public demo app key that goes with [`DEMO_SDKAPPID`].
pub const DEMO_APP_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
/// A made-up API 3.0 key pair: the embedded emulator only needs both sides to agree.
pub const DEMO_SECRET_ID: &str = "AKIDcallfeedEmulator000000000000000";
pub const DEMO_SECRET_KEY: &str = "callfeedEmulatorSecretKey000000";

/// The call-engine and TRTC clients for the configured cloud (or emulator), sharing one
/// transport so both obey the same timeouts, retries and rate limits.
pub fn cloud_clients(config: &Config) -> anyhow::Result<CloudClients> {
    let transport = Arc::new(Transport::new(config.http.clone())?);
    Ok(CloudClients {
        calls: call_client(config, transport.clone())?,
        ingest: ingest_client(config, transport)?,
    })
}

/// The call-engine client alone, for commands that need no TRTC credentials.
pub fn call_client(config: &Config, transport: Arc<Transport>) -> anyhow::Result<CallClient> {
    Ok(CallClient::new(
        transport,
        config.im_endpoint.clone(),
        config.im_credentials()?,
    ))
}

/// The TRTC StreamIngest client alone, for commands that need no call-engine credentials.
pub fn ingest_client(config: &Config, transport: Arc<Transport>) -> anyhow::Result<IngestClient> {
    Ok(IngestClient::new(
        transport,
        config.trtc_endpoint.clone(),
        config.region.clone(),
        config.api_credentials()?,
        config.require_sdkappid()?,
        config.require_sdk_secret_key()?,
    ))
}

/// Starts an in-process emulator that accepts the configured credentials (the SDKs' public
/// demo ones where none are set), with `default_behaviour` for every callee and `scripted`
/// ones for some, and points the config's endpoints at it.
pub async fn start_embedded_emulator(
    config: &mut Config,
    default_behaviour: Behaviour,
    scripted: &[(String, Behaviour)],
) -> anyhow::Result<Emulator> {
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
    let mut settings = EmulatorConfig::from_config(config)?;
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
}

impl JournalAt {
    /// The default place unless a file is given.
    pub fn file_or_default(file: Option<PathBuf>) -> Self {
        file.map_or(JournalAt::Default, JournalAt::File)
    }

    pub fn open(self) -> Result<OpenJournal, JournalError> {
        let (path, scratch) = match self {
            JournalAt::Default => (journal::default_path(), None),
            JournalAt::File(path) => (path, None),
            JournalAt::Scratch => {
                let dir = ScratchDir::new();
                (dir.0.join("journal.sqlite"), Some(dir))
            }
        };
        Ok(OpenJournal {
            journal: Arc::new(Journal::open(&path)?),
            _scratch: scratch,
        })
    }
}

/// An open journal, and the scratch folder it lives in, if any, which goes with it.
#[derive(Debug)]
pub struct OpenJournal {
    // Declared first so the database is closed before its folder is removed.
    journal: Arc<Journal>,
    _scratch: Option<ScratchDir>,
}

impl OpenJournal {
    pub fn journal(&self) -> &Arc<Journal> {
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
