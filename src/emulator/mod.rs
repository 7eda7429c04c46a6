//! A local Tencent cloud: the call engine (IM REST), TRTC StreamIngest and the relay to CDN
//! (API 3.0), their webhooks, and a room observer that really pulls each ingest task's
//! stream (and whose decoded media a relay to CDN publishes again).
//!
//! It speaks the exact wire protocol, so callfeed's own client, the official Tencent SDKs
//! and curl all work against it, and it checks signatures with the same verifiers the
//! client's tests pin to the reference vectors. Tests assert on what arrived in a room.
//!
//! One port serves `/v4/...` (IM REST), `POST /` (API 3.0) and `/emulator/v1/...` (control).

mod control;
mod im;
mod settings;
mod state;
mod trtc;
mod webhooks;

pub use settings::{
    Behaviour, DEFAULT_ANSWER_AFTER_MS, DEFAULT_RECONNECT_DELAYS_MS, DEFAULT_RECORD_DELAY_MS,
    DEFAULT_REJECT_AFTER_MS, EmulatorConfig, MAX_BODY_BYTES, Pace, TrtcCallback,
};
pub use state::Fault;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

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

    /// The tone a callee "speaks" in its room's mix (as `POST /emulator/v1/users/{user}/voice`).
    pub fn set_voice(&self, user: &str, tone_hz: Option<f64>) {
        self.state.set_voice(user, tone_hz);
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
        .route("/emulator/v1/publishes", get(control::publishes))
        .route(
            "/emulator/v1/publishes/{id}/kill",
            post(control::kill_publish),
        )
        .route("/emulator/v1/users/{user}/voice", post(control::set_voice))
        .route(
            "/emulator/v1/rooms/{kind}/{id}/mute",
            post(control::mute_room),
        )
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
