//! `callfeed serve`: the control API, the webhook receivers, metrics and health.
//!
//! `POST /v1/sessions` starts a session (the same options as `callfeed call`, as JSON),
//! `GET /v1/sessions[/{id}]` reads them, `DELETE /v1/sessions/{id}` ends one,
//! `GET /v1/sessions/{id}/events` follows one as Server-Sent Events. A bearer token guards
//! `/v1`. Webhooks from the call engine and TRTC are verified and make the session look at
//! the cloud at once. SIGTERM drains: no new sessions, every running one ended cleanly.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::cloud::call::StartCallByRobot;
use crate::cloud::http::CloudError;
use crate::cloud::ingest::StartStreamIngest;
use crate::cloud::webhook::{CallWebhook, IngestEvent, TrtcWebhook, verify_trtc_sign};
use crate::media::topology::Topologies;
use crate::session::driver::{self, Controls, DriverSettings, Report, Status};
use crate::session::journal::Journal;
use crate::session::{CallStatus, CloudOps, SessionRequest, room_key};

type Labels = Vec<(String, String)>;

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    sessions: Family<Labels, Gauge>,
    results: Family<Labels, Counter>,
    cloud_requests: Family<Labels, Counter>,
    cloud_seconds: Family<Labels, Histogram>,
    restarts: Counter,
    slate_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    bytes_served: Counter,
    webhooks: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("callfeed");
        let sessions = Family::<Labels, Gauge>::default();
        let results = Family::<Labels, Counter>::default();
        let cloud_requests = Family::<Labels, Counter>::default();
        let cloud_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let restarts = Counter::default();
        let slate_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        let bytes_served = Counter::default();
        let webhooks = Family::<Labels, Counter>::default();
        registry.register("sessions", "Sessions by state", sessions.clone());
        registry.register(
            "session_results",
            "Ended sessions by result",
            results.clone(),
        );
        registry.register(
            "cloud_requests",
            "Cloud requests by operation and outcome (error code)",
            cloud_requests.clone(),
        );
        registry.register(
            "cloud_request_seconds",
            "Cloud request latency by operation",
            cloud_seconds.clone(),
        );
        registry.register(
            "pipeline_restarts",
            "Media input restarts",
            restarts.clone(),
        );
        registry.register(
            "slate_seconds",
            "Time streams spent on the slate",
            slate_seconds.clone(),
        );
        registry.register(
            "stream_bytes",
            "Bytes of stream produced for pullers",
            bytes_served.clone(),
        );
        registry.register(
            "webhooks",
            "Webhooks received by kind and verdict",
            webhooks.clone(),
        );
        Self {
            registry,
            sessions,
            results,
            cloud_requests,
            cloud_seconds,
            restarts,
            slate_seconds,
            bytes_served,
            webhooks,
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A [`CloudOps`] that counts and times every request.
pub struct Metered<C> {
    inner: C,
    metrics: Arc<Metrics>,
}

impl<C: CloudOps> Metered<C> {
    pub fn new(inner: C, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn measure<T>(
        &self,
        op: &str,
        f: impl std::future::Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        let started = Instant::now();
        let result = f.await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().unwrap_or_else(|| "transport".into()),
        };
        self.metrics
            .cloud_seconds
            .get_or_create(&labels(&[("op", op)]))
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .cloud_requests
            .get_or_create(&labels(&[("op", op), ("outcome", &outcome)]))
            .inc();
        result
    }
}

impl<C: CloudOps> CloudOps for Metered<C> {
    async fn start_call(&self, req: &StartCallByRobot) -> Result<String, CloudError> {
        self.measure("start_call_by_robot", self.inner.start_call(req))
            .await
    }
    async fn call_status(&self, call_id: &str, robot: &str) -> Result<CallStatus, CloudError> {
        self.measure("get_call_info", self.inner.call_status(call_id, robot))
            .await
    }
    async fn end_call(&self, call_id: &str) -> Result<(), CloudError> {
        self.measure("end_call", self.inner.end_call(call_id)).await
    }
    async fn start_ingest(&self, req: &StartStreamIngest) -> Result<String, CloudError> {
        self.measure("StartStreamIngest", self.inner.start_ingest(req))
            .await
    }
    async fn task_alive(&self, task_id: &str) -> Result<bool, CloudError> {
        self.measure("DescribeStreamIngest", self.inner.task_alive(task_id))
            .await
    }
    async fn stop_ingest(&self, task_id: &str) -> Result<(), CloudError> {
        self.measure("StopStreamIngest", self.inner.stop_ingest(task_id))
            .await
    }
}

struct Entry {
    request: SessionRequest,
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    nudge: Arc<Notify>,
    report: watch::Receiver<Option<Report>>,
    call_id: Arc<Mutex<Option<String>>>,
}

/// What the service shares between requests.
pub struct Service<C> {
    cloud: Arc<Metered<C>>,
    journal: Arc<Journal>,
    topologies: Topologies,
    driver: DriverSettings,
    token: Option<SecretString>,
    sdkappid: u64,
    callback_key: Option<String>,
    pub metrics: Arc<Metrics>,
    sessions: Mutex<HashMap<String, Entry>>,
    draining: AtomicBool,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// How the service is set up.
pub struct ServiceConfig {
    pub token: Option<SecretString>,
    pub sdkappid: u64,
    pub callback_key: Option<String>,
    pub driver: DriverSettings,
    pub topologies: Topologies,
}

impl<C: CloudOps + 'static> Service<C> {
    pub fn new(cloud: C, journal: Arc<Journal>, config: ServiceConfig) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        Arc::new(Self {
            cloud: Arc::new(Metered::new(cloud, metrics.clone())),
            journal,
            topologies: config.topologies,
            driver: config.driver,
            token: config.token,
            sdkappid: config.sdkappid,
            callback_key: config.callback_key,
            metrics,
            sessions: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Stops what a crashed process left running. Run before serving.
    pub async fn recover(&self) -> Vec<(String, String)> {
        driver::recover(&self.journal, &*self.cloud).await
    }

    /// No new sessions; every running one is ended cleanly; returns when all have ended.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for entry in self.sessions.lock().expect("sessions lock").values() {
            let _ = entry.stop.send(true);
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for t in tasks {
            let _ = t.await;
        }
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        use axum::routing::{get, post};
        let api = axum::Router::new()
            .route("/v1/sessions", post(create::<C>).get(list::<C>))
            .route("/v1/sessions/{id}", get(one::<C>).delete(stop::<C>))
            .route("/v1/sessions/{id}/events", get(events::<C>))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                auth::<C>,
            ));
        axum::Router::new()
            .merge(api)
            .route("/webhooks/call", post(call_webhook::<C>))
            .route("/webhooks/trtc", post(trtc_webhook::<C>))
            .route("/metrics", get(metrics::<C>))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready::<C>))
            .with_state(self.clone())
    }
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn auth<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &svc.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = presented.is_some_and(|p| {
            let expected = token.expose_secret().as_bytes();
            p.len() == expected.len()
                && p.bytes()
                    .zip(expected)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            return problem(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        }
    }
    next.run(request).await
}

fn session_json(id: &str, e: &Entry) -> Value {
    let status = e.status.borrow().clone();
    let report = e.report.borrow().clone();
    json!({
        "id": id,
        "request": e.request,
        "status": status,
        "report": report,
    })
}

async fn create<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    body: Bytes,
) -> Response {
    if svc.draining.load(Ordering::SeqCst) {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "draining: no new sessions");
    }
    let request: SessionRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("not a session request: {e}"),
            );
        }
    };
    let spec = match request.validate() {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    };
    let room = room_key(&spec.room);
    match svc.journal.active_for(&room, spec.robot.as_str()) {
        Ok(Some(existing)) => {
            return (
                StatusCode::CONFLICT,
                Json(json!({"error": format!("{} already has a session for {}", spec.room, spec.robot), "existing": existing})),
            )
                .into_response();
        }
        Ok(None) => {}
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
    let id = uuid::Uuid::new_v4().to_string();
    let (status_tx, status_rx) = watch::channel(Status::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (report_tx, report_rx) = watch::channel(None);
    let nudge = Arc::new(Notify::new());
    let call_id = Arc::new(Mutex::new(None));
    svc.sessions.lock().expect("sessions lock").insert(
        id.clone(),
        Entry {
            request,
            status: status_rx,
            stop: stop_tx,
            nudge: nudge.clone(),
            report: report_rx,
            call_id: call_id.clone(),
        },
    );
    let task = {
        let svc = svc.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let report = driver::run(
                id.clone(),
                spec,
                &*svc.cloud,
                Some(svc.journal.clone()),
                svc.driver.clone(),
                svc.topologies.clone(),
                Controls {
                    status: status_tx,
                    stop: stop_rx,
                    nudge,
                },
            )
            .await;
            svc.metrics
                .results
                .get_or_create(&labels(&[("result", report.outcome.name())]))
                .inc();
            if let Some(m) = &report.media {
                svc.metrics.restarts.inc_by(u64::from(m.restarts));
                svc.metrics
                    .slate_seconds
                    .inc_by(m.slate_frames as f64 / 30.0);
                svc.metrics.bytes_served.inc_by(m.bytes_out);
            }
            let _ = report_tx.send(Some(report));
        })
    };
    svc.tasks.lock().expect("tasks lock").push(task);
    // The call id is learned from the journal as soon as the driver records it.
    {
        let svc = svc.clone();
        let id = id.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                if let Ok(Some(c)) = svc.journal.call_of(&id) {
                    *call_id.lock().expect("call id lock") = Some(c);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let sessions = svc.sessions.lock().expect("sessions lock");
    (StatusCode::CREATED, Json(session_json(&id, &sessions[&id]))).into_response()
}

async fn list<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    let sessions = svc.sessions.lock().expect("sessions lock");
    let all: Vec<Value> = sessions.iter().map(|(id, e)| session_json(id, e)).collect();
    Json(json!({ "sessions": all })).into_response()
}

async fn one<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
) -> Response {
    let sessions = svc.sessions.lock().expect("sessions lock");
    match sessions.get(&id) {
        Some(e) => Json(session_json(&id, e)).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no such session"),
    }
}

async fn stop<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
) -> Response {
    let sessions = svc.sessions.lock().expect("sessions lock");
    match sessions.get(&id) {
        Some(e) => {
            let _ = e.stop.send(true);
            (
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "stopping": true})),
            )
                .into_response()
        }
        None => problem(StatusCode::NOT_FOUND, "no such session"),
    }
}

async fn events<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
) -> Response {
    let (status, report) = {
        let sessions = svc.sessions.lock().expect("sessions lock");
        match sessions.get(&id) {
            Some(e) => (e.status.clone(), e.report.clone()),
            None => return problem(StatusCode::NOT_FOUND, "no such session"),
        }
    };
    // One `status` event per change of phase, then one `report` event, then the end.
    let stream = futures::stream::unfold(
        (status, report, String::new(), false),
        |(mut status, mut report, mut last_phase, done)| async move {
            if done {
                return None;
            }
            loop {
                let finished = report.borrow().clone();
                if let Some(r) = finished {
                    let ev = SseEvent::default()
                        .event("report")
                        .json_data(&r)
                        .unwrap_or_default();
                    return Some((Ok::<_, Infallible>(ev), (status, report, last_phase, true)));
                }
                let s = status.borrow_and_update().clone();
                if s.phase != last_phase {
                    last_phase = s.phase.clone();
                    let ev = SseEvent::default()
                        .event("status")
                        .json_data(&s)
                        .unwrap_or_default();
                    return Some((Ok(ev), (status, report, last_phase, false)));
                }
                tokio::select! {
                    changed = status.changed() => if changed.is_err() {
                        let _ = report.changed().await;
                    },
                    _ = report.changed() => {}
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn nudge_call(svc: &Service<impl CloudOps>, call_id: &str) -> bool {
    let sessions = svc.sessions.lock().expect("sessions lock");
    let mut found = false;
    for e in sessions.values() {
        if e.call_id.lock().expect("call id lock").as_deref() == Some(call_id) {
            e.nudge.notify_one();
            found = true;
        }
    }
    found
}

async fn call_webhook<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let verdict = if query.get("SdkAppid").and_then(|s| s.parse::<u64>().ok()) != Some(svc.sdkappid)
    {
        "wrong_sdkappid"
    } else {
        match CallWebhook::parse(&body, query.get("CallbackCommand").map(String::as_str)) {
            Ok(hook) => {
                nudge_call(&svc, hook.call_id());
                "accepted"
            }
            Err(_) => "malformed",
        }
    };
    svc.metrics
        .webhooks
        .get_or_create(&labels(&[("kind", "call"), ("verdict", verdict)]))
        .inc();
    let status = if verdict == "accepted" {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, Json(json!({"ActionStatus": if verdict == "accepted" {"OK"} else {"FAIL"}, "ErrorCode": 0, "ErrorInfo": verdict}))).into_response()
}

async fn trtc_webhook<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let verdict = if header("SdkAppId").parse::<u64>().ok() != Some(svc.sdkappid) {
        "wrong_sdkappid"
    } else if let Some(key) = &svc.callback_key
        && !verify_trtc_sign(key, &body, header("Sign"))
    {
        "bad_sign"
    } else {
        match TrtcWebhook::parse(&body) {
            Ok(TrtcWebhook::Ingest { event, .. }) => {
                if matches!(event, IngestEvent::Stopped | IngestEvent::StartFailed) {
                    // Any session may own the task: let them all look now.
                    for e in svc.sessions.lock().expect("sessions lock").values() {
                        e.nudge.notify_one();
                    }
                }
                "accepted"
            }
            Ok(_) => "accepted",
            Err(_) => "malformed",
        }
    };
    svc.metrics
        .webhooks
        .get_or_create(&labels(&[("kind", "trtc"), ("verdict", verdict)]))
        .inc();
    if verdict == "accepted" {
        Json(json!({"code": 0})).into_response()
    } else {
        problem(StatusCode::BAD_REQUEST, verdict)
    }
}

async fn metrics<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
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
    if encode(&mut text, &svc.metrics.registry).is_err() {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded",
        );
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
