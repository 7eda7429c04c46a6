//! `callfeed serve`: the control API, the webhook receivers, metrics and health.
//!
//! `POST /v1/sessions` starts a session (the same options as `callfeed call`, as JSON),
//! `GET /v1/sessions[/{id}]` reads them, `DELETE /v1/sessions/{id}` ends one,
//! `GET /v1/sessions/{id}/events` follows one as Server-Sent Events, `GET /v1/events` follows
//! them all (the console's stream, see `feed`). A bearer token guards `/v1`; the console's
//! login cookie opens `/v1/events` alone; one client holds only so many event streams
//! (`budget`). The rules of [`exposure`](super::exposure) come first. Webhooks from the call
//! engine and TRTC are verified and make the session look at the cloud at once. SIGTERM
//! drains: no new sessions, every running one ended cleanly.
//!
//! A request is validated whole (fields, the input policy, the media's existence) before a
//! session is admitted; admission is one journal insert, so one room gets one session; at
//! most `max_sessions` run at once; ended sessions are forgotten after `keep_ended` (the
//! journal keeps them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::metrics::{Metered, Metrics, labels};
use super::webhooks::{WebhookChecks, WebhookKeys};
use crate::media::policy::InputPolicy;
use crate::media::topology::Topologies;
use crate::session::driver::{self, Controls, DriverSettings, Report, Status};
use crate::session::{CloudOps, RequestError, SessionRequest};
use crate::store::Store;

mod auth;
mod budget;
mod create;
mod elsewhere;
mod events;
mod feed;
mod hooks;
mod nodes;
mod recovery;
mod room;
mod strays;
mod viewers;

pub use budget::DEFAULT_MAX_EVENT_STREAMS;
pub use room::RoomView;

/// The longest a request (body, validation and DNS included) may take, SSE aside. Each chunk
/// of its body must also come within the server's body timeout (`server::HttpLimits`).
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// How long a 429 asks the client to wait.
const RETRY_AFTER_SECS: u64 = 5;
/// How long a drain waits for sessions to end before it leaves the rest to the journal.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How long a session's own task retries an unconfirmed teardown before it reports it
/// pending, frees its place and leaves the retries to the service's recovery rounds.
const IN_TASK_TEARDOWN_RETRY: Duration = Duration::from_secs(60);

struct Entry {
    request: SessionRequest,
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    nudge: Arc<Notify>,
    /// Sent by the session's task, and updated by recovery when a pending teardown is
    /// confirmed later.
    report: Arc<watch::Sender<Option<Report>>>,
    /// When its report came; the entry is dropped `keep_ended` later.
    ended_at: Arc<OnceLock<Instant>>,
    /// Woken each time one of its events is recorded.
    recorded: Arc<Notify>,
}

/// What the service shares between requests.
pub struct Service<C> {
    cloud: Arc<Metered<C>>,
    journal: Arc<Store>,
    topologies: Topologies,
    driver: DriverSettings,
    token: Option<SecretString>,
    policy: InputPolicy,
    relay: Option<crate::publish::relay::Relay>,
    cluster: Option<Arc<super::cluster::LeaseState>>,
    drain_grace: Duration,
    costs: super::cluster::PlacementCosts,
    /// Woken by `POST /v1/drain`: the process drains as on SIGTERM.
    drain_asked: Notify,
    /// Talks to the other nodes of a cluster.
    peers: reqwest::Client,
    webhooks: Option<WebhookChecks>,
    pub metrics: Arc<Metrics>,
    sessions: Mutex<HashMap<String, Entry>>,
    /// Woken each time any session's event is recorded (the console's stream).
    any_recorded: Arc<Notify>,
    /// The consoles logged in to the event stream.
    viewers: viewers::Viewers,
    /// What a web page may make this node do (Host, Origin, Content-Type).
    exposure: Arc<super::exposure::Exposure>,
    /// Event streams open, by client.
    streams: Arc<budget::StreamBudget>,
    /// What reached a call's room, when the cloud is the embedded emulator.
    room_view: Option<RoomView>,
    draining: AtomicBool,
    /// The cost units of the sessions admitted and not yet ended, against `max_sessions`.
    running: AtomicUsize,
    max_sessions: usize,
    keep_ended: Duration,
    tasks: Mutex<tokio::task::JoinSet<()>>,
    /// Starts of this node whose answer was lost, for the webhooks of what they started.
    lost_starts: strays::LostStarts,
    /// The background recovery rounds; a drain stops them (the journal keeps what is left).
    recovery: Mutex<Option<tokio::task::AbortHandle>>,
}

/// How the service is set up.
pub struct ServiceConfig {
    pub token: Option<SecretString>,
    pub sdkappid: u64,
    pub webhook_keys: WebhookKeys,
    /// Whether the webhook receivers are mounted.
    pub webhooks: bool,
    pub driver: DriverSettings,
    pub topologies: Topologies,
    /// What API clients may use as media.
    pub policy: InputPolicy,
    /// Sessions running at once; more are answered 429.
    pub max_sessions: usize,
    /// How long an ended session stays readable over the API.
    pub keep_ended: Duration,
    /// How long a drain lets running sessions finish by themselves before it ends them.
    pub drain_grace: Duration,
    /// What a session costs of a node's room when the cluster places it.
    pub costs: super::cluster::PlacementCosts,
    /// The relay sessions push to unless their request names one (`[relay]`).
    pub relay: Option<crate::publish::relay::Relay>,
    /// This node's lease, when it is one of a cluster sharing a PostgreSQL store.
    pub cluster: Option<Arc<super::cluster::LeaseState>>,
    /// What the room observer saw, when the cloud is the embedded emulator.
    pub room_view: Option<RoomView>,
    /// The listen address as bound, and the URL the cloud reaches this node at: without a
    /// token, only requests naming these (or loopback) are answered.
    pub listen: Option<std::net::SocketAddr>,
    pub public_url: Option<String>,
    /// Event streams one client (token, console login, or address without a token) may hold
    /// open at once; more are answered 429.
    pub max_event_streams: usize,
}

/// A default for `--max-sessions`, in cost units: what this machine's cores encode in real
/// time ([`COST_UNITS_PER_CORE`](crate::media::contract::COST_UNITS_PER_CORE) each), so
/// three live 1080p streams or eight 720p ones on two cores, or forty announcements.
pub fn default_max_sessions() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
        * crate::media::contract::COST_UNITS_PER_CORE as usize
}

impl<C: CloudOps + 'static> Service<C> {
    pub fn new(cloud: C, journal: Arc<Store>, config: ServiceConfig) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        let viewers = viewers::Viewers::new(config.token.as_ref());
        let exposure = super::exposure::Exposure::new(
            config.token.is_none(),
            config.listen,
            config.public_url.as_deref(),
        );
        let service = Arc::new(Self {
            cloud: Arc::new(Metered::new(cloud, metrics.clone())),
            journal,
            topologies: config.topologies,
            driver: DriverSettings {
                teardown_retry_for: Some(IN_TASK_TEARDOWN_RETRY),
                ..config.driver
            },
            token: config.token,
            policy: config.policy,
            relay: config.relay,
            cluster: config.cluster,
            drain_grace: config.drain_grace,
            costs: config.costs,
            drain_asked: Notify::new(),
            peers: reqwest::Client::builder()
                .connect_timeout(elsewhere::CONNECT_TIMEOUT)
                .build()
                .unwrap_or_default(),
            webhooks: config
                .webhooks
                .then(|| WebhookChecks::new(config.sdkappid, config.webhook_keys)),
            metrics,
            sessions: Mutex::new(HashMap::new()),
            any_recorded: Arc::new(Notify::new()),
            viewers,
            exposure: Arc::new(exposure),
            streams: budget::StreamBudget::new(config.max_event_streams),
            room_view: config.room_view,
            draining: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            max_sessions: config.max_sessions.max(1),
            keep_ended: config.keep_ended,
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            recovery: Mutex::new(None),
            lost_starts: strays::LostStarts::default(),
        });
        if service.cluster.is_some() {
            tokio::spawn(create::pick_up_placed(Arc::downgrade(&service)));
        }
        service
    }

    /// Resolves when a client asked for a drain (`POST /v1/drain`).
    pub async fn drain_asked(&self) {
        self.drain_asked.notified().await;
    }

    /// Sessions running on this node, and whether it drains: what its lease reports.
    pub fn load(&self) -> (u32, bool) {
        (
            u32::try_from(self.running.load(Ordering::Relaxed)).unwrap_or(u32::MAX),
            self.draining.load(Ordering::SeqCst),
        )
    }

    /// Asks every running session to end (their teardowns stop what each started): this
    /// node's lease ran out and other nodes may be taking its sessions over.
    pub fn stop_all(&self) {
        for entry in self.sessions.lock().expect("sessions lock").values() {
            let _ = entry.stop.send(true);
        }
    }

    /// Whether a session's own task still runs.
    fn is_running(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .is_some_and(|e| e.report.borrow().is_none())
    }

    /// No new sessions; every running one is ended cleanly; returns when all have ended, or
    /// after a limit (what is left stays in the journal for the next start).
    pub async fn drain(&self) {
        {
            // Under the sessions lock: a request admitted before this has its task spawned
            // already (see `create`), one after it sees the flag.
            let _sessions = self.sessions.lock().expect("sessions lock");
            self.draining.store(true, Ordering::SeqCst);
        }
        // Console streams end, or they would hold the server's shutdown.
        self.any_recorded.notify_waiters();
        // The cluster places nothing more here from now on, not from the next renewal.
        if let Some(lease) = &self.cluster {
            let (load, _) = self.load();
            if let Err(e) = crate::store::SessionStore::renew_lease(
                &*self.journal,
                lease.lease,
                crate::store::NodeLoad {
                    sessions: load,
                    draining: true,
                    busy: false,
                },
            )
            .await
            {
                tracing::warn!(error = %e, "drain: cannot mark this node draining in the store");
            }
        }
        if let Some(rounds) = self.recovery.lock().expect("recovery lock").take() {
            rounds.abort();
        }
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        let running = tasks.len();
        let started = std::time::Instant::now();
        if !self.drain_grace.is_zero() && running > 0 {
            tracing::info!(
                sessions = running,
                grace_s = self.drain_grace.as_secs(),
                "draining: no new sessions; the running ones may finish"
            );
            let all = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(self.drain_grace, all).await.is_ok() {
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "drained: every session finished"
                );
                return;
            }
        }
        for entry in self.sessions.lock().expect("sessions lock").values() {
            let _ = entry.stop.send(true);
        }
        tracing::info!(
            sessions = tasks.len(),
            "draining: no new sessions, ending the running ones"
        );
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN_LIMIT, all).await.is_err() {
            tracing::error!("drain: some sessions did not end in time; the journal keeps them");
        } else {
            tracing::info!(
                sessions = running,
                took_ms = started.elapsed().as_millis() as u64,
                "drained: every session ended"
            );
        }
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        use axum::routing::{get, post};
        // A whole request that is not over in time is cut off: one byte every few seconds
        // would otherwise hold a connection for days. Event streams are exempt.
        let bounded = || {
            tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_LIMIT,
            )
        };
        // One client holds only so many event streams (`budget`); inside `auth`, which
        // says who the client is.
        let streams = || axum::middleware::from_fn_with_state(self.clone(), budget::limit::<C>);
        let api = axum::Router::new()
            .route(
                "/v1/sessions",
                post(create::create::<C>).layer(bounded()).get(list::<C>),
            )
            .route("/v1/sessions/{id}", get(one::<C>).delete(stop::<C>))
            .route(
                "/v1/sessions/{id}/events",
                get(events::stream::<C>).layer(streams()),
            )
            .route("/v1/nodes", get(nodes::list::<C>))
            .route("/v1/drain", post(nodes::drain::<C>))
            .route("/v1/sessions/{id}/nudge", post(hooks::nudge::<C>))
            .route("/v1/sessions/{id}/room", get(room::seen::<C>))
            .route("/v1/events", get(feed::stream::<C>).layer(streams()))
            .route("/v1/console/login", post(viewers::login::<C>))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                auth::auth::<C>,
            ));
        // What a browser reaches: the API, the console and metrics are answered only under
        // the rules of `exposure` (our own host names without a token, JSON bodies, no CORS).
        let guarded = axum::Router::new()
            .merge(api)
            .merge(super::console::routes())
            .route("/metrics", get(metrics::<C>))
            .route("/v1/console/hello", get(viewers::hello::<C>))
            // Open: it only signs out the login its own cookie names.
            .route("/v1/events/logout", post(viewers::logout::<C>))
            .layer(axum::middleware::from_fn_with_state(
                self.exposure.clone(),
                super::exposure::guard,
            ));
        let mut router = axum::Router::new().merge(guarded);
        // The cloud's webhooks are checked by their own signature or token, and probes may
        // name the node however their platform does: neither is under the Host rule.
        if self.webhooks.is_some() {
            router = router
                .route(
                    "/webhooks/call",
                    post(hooks::call_webhook::<C>).layer(bounded()),
                )
                .route(
                    "/webhooks/trtc",
                    post(hooks::trtc_webhook::<C>).layer(bounded()),
                );
        }
        router
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready::<C>))
            .with_state(self.clone())
    }

    /// Drops ended sessions older than `keep_ended` and reaps finished tasks.
    fn prune(&self) {
        let keep = self.keep_ended;
        self.sessions
            .lock()
            .expect("sessions lock")
            .retain(|_, e| e.ended_at.get().is_none_or(|t| t.elapsed() < keep));
        let mut tasks = self.tasks.lock().expect("tasks lock");
        while tasks.try_join_next().is_some() {}
    }

    /// Takes `cost` units of this node's room, unless that would pass its capacity.
    fn take_slot(&self, cost: u32) -> bool {
        let cost = cost as usize;
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n + cost <= self.max_sessions).then_some(n + cost)
            })
            .is_ok()
    }

    /// Gives back what [`take_slot`](Self::take_slot) took.
    fn give_back(&self, cost: u32) {
        self.running.fetch_sub(cost as usize, Ordering::AcqRel);
    }

    fn refuse(&self, reason: &str, response: Response) -> Response {
        self.metrics
            .refused
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
        response
    }
}

pub(super) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// A 422 that says what to fix: the message, and for a field the cloud's rules refuse, the
/// field, the value (shortened) and what is allowed.
fn refused_request(e: &RequestError) -> Response {
    let mut body = json!({ "error": e.to_string() });
    match e {
        RequestError::Invalid(invalid) => {
            body["field"] = json!(invalid.field);
            body["value"] = json!(invalid.value.chars().take(200).collect::<String>());
            body["allowed"] = json!(invalid.allowed);
        }
        RequestError::Input(_) | RequestError::Refused(_) | RequestError::TooLarge(_) => {
            body["field"] = json!("media")
        }
    }
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// The store does not answer: a 503 an API client may retry, with a reference to the log
/// line that says why — the store's address and errors are the operator's business.
fn store_unavailable(e: &crate::store::StoreError, consequence: &str) -> Response {
    let reference = uuid::Uuid::new_v4().simple().to_string();
    tracing::warn!(%reference, error = %e, "session store unavailable: {consequence}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
        Json(json!({"error": format!(
            "the session store does not answer, so {consequence}; try again shortly (reference {reference} in the server log)"
        )})),
    )
        .into_response()
}

/// A 500 says nothing of the inside; the log says it all.
fn internal(detail: impl std::fmt::Display) -> Response {
    let reference = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(%reference, error = %detail, "internal error answering a request");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error (reference {reference} in the server log)"),
    )
}

fn session_json(id: &str, e: &Entry) -> Value {
    let mut status = e.status.borrow().clone();
    let report = e.report.borrow().clone();
    if let Some(r) = &report {
        status.phase = match r.teardown {
            driver::Teardown::Confirmed => "ended",
            driver::Teardown::Pending { .. } => "teardown_pending",
        }
        .to_owned();
    }
    // The request as asked, but a URL's credentials are not shown back.
    let mut request = e.request.clone();
    request.media = crate::redact::redact_url(&request.media);
    if let Some(relay) = request.relay.as_mut() {
        // A plain relay's push URL may carry its key.
        relay.push = relay.push.as_deref().map(crate::redact::redact_url);
    }
    json!({
        "id": id,
        "request": request,
        "status": status,
        "report": report,
    })
}

/// One admitted session, run to its end: its place is freed, its result counted, its
/// report published.
async fn run_session<C: CloudOps + 'static>(
    svc: Arc<Service<C>>,
    id: String,
    spec: crate::session::SessionSpec,
    controls: Controls,
    report: Arc<watch::Sender<Option<Report>>>,
    ended_at: Arc<OnceLock<Instant>>,
) {
    let cost = svc.costs.of(&spec);
    let room = crate::session::room_key(&spec.room);
    let finished = driver::run(
        id,
        spec,
        &*svc.cloud,
        Some(svc.journal.clone()),
        svc.driver.clone(),
        svc.topologies.clone(),
        controls,
    )
    .await;
    svc.give_back(cost);
    if let Some(unconfirmed) = finished.unconfirmed_start {
        svc.lost_starts
            .note(strays::StrayKind::of(unconfirmed), room);
    }
    svc.metrics
        .results
        .get_or_create(&labels(&[("result", finished.outcome.name())]))
        .inc();
    if let Some(m) = finished.live() {
        svc.metrics.restarts.inc_by(u64::from(m.restarts));
        svc.metrics
            .slate_seconds
            .inc_by(m.slate_frames as f64 / 30.0);
        svc.metrics.bytes_served.inc_by(m.bytes_out);
    }
    let _ = ended_at.set(Instant::now());
    report.send_replace(Some(finished));
}

/// Every session: this node's, and in a cluster the other nodes' (asked with `headers`).
async fn all_sessions<C: CloudOps + 'static>(
    svc: &Service<C>,
    headers: &axum::http::HeaderMap,
) -> Vec<Value> {
    svc.prune();
    let mut all: Vec<Value> = {
        let sessions = svc.sessions.lock().expect("sessions lock");
        sessions.iter().map(|(id, e)| session_json(id, e)).collect()
    };
    all.extend(elsewhere::other_nodes_sessions(svc, headers).await);
    all
}

async fn list<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let all = all_sessions(&svc, &headers).await;
    Json(json!({ "sessions": all })).into_response()
}

async fn one<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let here = {
        let sessions = svc.sessions.lock().expect("sessions lock");
        sessions.get(&id).map(|e| session_json(&id, e))
    };
    match here {
        Some(v) => Json(v).into_response(),
        None => elsewhere::answer(&svc, &id, axum::http::Method::GET, uri.path(), &headers).await,
    }
}

async fn stop<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let stopped = {
        let sessions = svc.sessions.lock().expect("sessions lock");
        sessions.get(&id).map(|e| e.stop.send(true))
    };
    match stopped {
        Some(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "stopping": true})),
        )
            .into_response(),
        None => {
            elsewhere::answer(&svc, &id, axum::http::Method::DELETE, uri.path(), &headers).await
        }
    }
}

async fn metrics<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    let (load, _) = svc.load();
    svc.metrics.node_load.set(i64::from(load));
    svc.metrics
        .node_capacity
        .set(i64::try_from(svc.max_sessions).unwrap_or(i64::MAX));
    svc.metrics
        .fence_losses
        .set(i64::try_from(svc.journal.fence_losses()).unwrap_or(i64::MAX));
    if let Some(lease) = &svc.cluster {
        svc.metrics
            .lease_age
            .set(lease.since_renewal().as_secs_f64());
    }
    {
        let sessions = svc.sessions.lock().expect("sessions lock");
        let mut by_phase: HashMap<String, i64> = HashMap::new();
        for e in sessions.values() {
            let phase = if e.report.borrow().is_some() {
                "ended".to_owned()
            } else {
                e.status.borrow().phase.clone()
            };
            *by_phase.entry(phase).or_default() += 1;
        }
        svc.metrics.sessions.clear();
        for (phase, n) in by_phase {
            svc.metrics
                .sessions
                .get_or_create(&labels(&[("state", &phase)]))
                .set(n);
        }
    }
    let mut text = String::new();
    if let Err(e) = encode(&mut text, &svc.metrics.registry) {
        return internal(e);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn ready<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    if svc.draining.load(Ordering::SeqCst) {
        problem(StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        "ready".into_response()
    }
}
