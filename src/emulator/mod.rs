//! A local Tencent cloud: the call engine (IM REST), TRTC StreamIngest (API 3.0), their
//! webhooks, and a room observer that really pulls each ingest task's stream.
//!
//! It speaks the exact wire protocol, so callfeed's own client, the official Tencent SDKs
//! and curl all work against it, and it checks signatures with the same verifiers the
//! client's tests pin to the reference vectors. Tests assert on what arrived in a room.
//!
//! One port serves `/v4/...` (IM REST), `POST /` (API 3.0) and `/emulator/v1/...` (control).

mod control;
mod im;
mod state;
mod trtc;
mod webhooks;

pub use state::Fault;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
pub use crate::media::observer::Pace;

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
        #[serde(default)]
        after_ms: u64,
    },
    /// Let it ring until the ring timeout.
    NeverAnswer,
    /// Already in another call.
    Busy,
}

fn default_answer_ms() -> u64 {
    1000
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour::Answer {
            after_ms: default_answer_ms(),
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
    /// The emulator accepts exactly the credentials the client is configured with.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let im = config.im_credentials()?;
        let api = config.api_credentials()?;
        let e = &config.emulator;
        Ok(Self {
            sdkappid: im.sdkappid,
            sdk_secret_key: im.secret_key,
            admin: im.admin.to_string(),
            secret_id: api.secret_id,
            secret_key: api.secret_key,
            pace: e.pace,
            default_behaviour: e.default_behaviour.clone(),
            behaviours: e.behaviours.clone().into_iter().collect(),
            trtc_callback: e.trtc_callback.clone(),
            record_delay: Duration::from_millis(e.record_delay_ms),
            reconnect_delays: DEFAULT_RECONNECT_DELAYS_MS
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        })
    }
}

pub const DEFAULT_RECONNECT_DELAYS_MS: [u64; 3] = [0, 1000, 3000];
pub const DEFAULT_RECORD_DELAY_MS: u64 = 5000;

/// Where each API is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    pub im_endpoint: String,
    pub trtc_endpoint: String,
    pub control: String,
}

/// A running emulator. Dropping it stops the server; `shutdown` also waits for it.
pub struct Emulator {
    addr: SocketAddr,
    state: Arc<state::State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// Binds `listen` (port 0 for any free port) and serves until shut down.
    pub async fn start(config: EmulatorConfig, listen: SocketAddr) -> std::io::Result<Self> {
        crate::media::init().map_err(std::io::Error::other)?;
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = state::State::new(config);
        let app = router(state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "emulator server failed");
            }
        });
        tracing::info!(%addr, "emulator listening");
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn endpoints(&self) -> Endpoints {
        let base = format!("http://{}", self.addr);
        Endpoints {
            im_endpoint: base.clone(),
            trtc_endpoint: base.clone(),
            control: format!("{base}/emulator/v1"),
        }
    }

    /// Sets a callee's behaviour for calls placed from now on.
    pub fn set_behaviour(&self, user: &str, behaviour: Behaviour) {
        self.state.set_behaviour(user, behaviour);
    }

    /// Makes the next requests to `fault.target` fail as the fault says (as `POST
    /// /emulator/v1/faults`).
    pub fn add_fault(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    /// Clears every fault not yet used up (as `DELETE /emulator/v1/faults`).
    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    pub fn set_trtc_callback(&self, callback: Option<TrtcCallback>) {
        self.state.set_trtc_callback(callback);
    }

    /// What the room observer saw in a call: its members, whether each sees media, and the
    /// figures of every task pulling into its room (as `GET /emulator/v1/calls/{id}`).
    pub fn call_view(&self, call_id: &str) -> Option<serde_json::Value> {
        let inner = self.state.lock();
        control::call_view(&inner, call_id)
    }

    /// Stops every ingest task's observer and the server.
    pub async fn shutdown(mut self) {
        self.state.stop_all_tasks().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.state.abort_all_tasks();
    }
}

/// Requests larger than this are refused with the documented size error.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

fn router(state: Arc<state::State>) -> axum::Router {
    use axum::routing::{any, get, post};
    axum::Router::new()
        .route("/", any(trtc::handle))
        .route("/v4/{service}/{command}", any(im::handle))
        .route("/emulator/v1/healthz", get(|| async { "ok" }))
        .route("/emulator/v1/rooms", get(control::rooms))
        .route("/emulator/v1/rooms/{kind}/{id}", get(control::room))
        .route("/emulator/v1/calls", get(control::calls))
        .route("/emulator/v1/calls/{id}", get(control::call))
        .route("/emulator/v1/tasks", get(control::tasks))
        .route("/emulator/v1/tasks/{id}", get(control::task))
        .route("/emulator/v1/tasks/{id}/kill", post(control::kill_task))
        .route(
            "/emulator/v1/users/{user}/behaviour",
            post(control::set_behaviour),
        )
        .route(
            "/emulator/v1/faults",
            post(control::add_fault)
                .get(control::faults)
                .delete(control::clear_faults),
        )
        .route(
            "/emulator/v1/webhooks/trtc",
            post(control::set_trtc_callback),
        )
        .fallback(im::unknown_path)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}
