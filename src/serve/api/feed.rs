//! `GET /v1/events`: one Server-Sent Events stream for every session, which the console
//! follows. A new stream opens with a `sessions` event (every session as
//! `GET /v1/sessions` shows it); then each recorded `status` and `report` event of any
//! session, numbered as the store numbers them, so a client that reconnects with
//! `Last-Event-ID` gets what it missed; and once a second a `stats` event (not numbered,
//! a sample) per session running on this node, which the console's charts draw.
//!
//! A browser's `EventSource` cannot send an `Authorization` header, and a token in a URL
//! ends up in logs and history. So `POST /v1/console/login`, authorised with the bearer
//! token, sets an `HttpOnly`, `SameSite=Strict` cookie holding a random viewer id (never the
//! token), which admits its holder to this stream and nothing else.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Service;
use crate::session::CloudOps;
use crate::store::SessionStore;

/// The cookie that admits a console to the event stream.
const VIEWER_COOKIE: &str = "callfeed_viewer";
/// How long a console login lasts (a working day).
const VIEWER_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Console logins kept at once; the oldest goes first.
const MAX_VIEWERS: usize = 1000;
/// How often running sessions' figures are sampled.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often the store is read when nothing woke the stream (other nodes' events).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Events read from the store at once.
const BATCH: u32 = 500;
/// Sequence numbers looked at again below the newest sent: PostgreSQL hands them out at
/// insert, so two nodes' events can commit out of order.
const OVERLAP: i64 = 64;

/// The console logins this node knows: viewer id → when it lapses.
#[derive(Default)]
pub(super) struct Viewers(Mutex<HashMap<String, Instant>>);

impl Viewers {
    fn admit(&self) -> String {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = Instant::now();
        let mut all = self.0.lock().expect("viewers lock");
        all.retain(|_, until| *until > now);
        if all.len() >= MAX_VIEWERS
            && let Some(oldest) = all.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
        all.insert(id.clone(), now + VIEWER_LIFETIME);
        id
    }

    fn knows(&self, id: &str) -> bool {
        self.0
            .lock()
            .expect("viewers lock")
            .get(id)
            .is_some_and(|until| *until > Instant::now())
    }

    fn forget(&self, id: &str) {
        self.0.lock().expect("viewers lock").remove(id);
    }
}

/// The viewer id a request's cookie carries, if any.
fn viewer_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == VIEWER_COOKIE)
        .map(|(_, value)| value)
}

/// Whether a request to the event stream holds a console login.
pub(super) fn admits_viewer<C>(svc: &Service<C>, headers: &HeaderMap) -> bool {
    viewer_cookie(headers).is_some_and(|id| svc.viewers.knows(id))
}

fn set_cookie(value: &str, max_age: u64) -> HeaderValue {
    // Path scopes it to the stream: no other request carries it.
    HeaderValue::from_str(&format!(
        "{VIEWER_COOKIE}={value}; Path=/v1/events; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    ))
    .expect("a cookie of ASCII")
}

/// `GET /v1/console/hello` (open): whether the console must ask for a token, so it does
/// not send requests bound to be refused.
pub(super) async fn hello<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    axum::Json(json!({ "token_required": svc.token.is_some() })).into_response()
}

/// `POST /v1/console/login` (bearer token): a cookie for the event stream.
pub(super) async fn login<C: CloudOps + 'static>(State(svc): State<Arc<Service<C>>>) -> Response {
    let id = svc.viewers.admit();
    let mut answer = StatusCode::NO_CONTENT.into_response();
    answer.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&id, VIEWER_LIFETIME.as_secs()),
    );
    answer
}

/// `POST /v1/console/logout`: the stream's cookie is forgotten here and in the browser.
pub(super) async fn logout<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = viewer_cookie(&headers) {
        svc.viewers.forget(id);
    }
    let mut answer = StatusCode::NO_CONTENT.into_response();
    answer
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    answer
}

/// `GET /v1/events`.
pub(super) async fn stream<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let feed = Feed {
        svc,
        after: resume.unwrap_or(0),
        resumed_from: resume.unwrap_or(0),
        snapshot_due: resume.is_none(),
        sent: BTreeSet::new(),
        pending: VecDeque::new(),
        next_stats: Instant::now(),
    };
    let events = futures::stream::unfold(feed, |mut f| async move {
        let ev = f.next().await?;
        Some((Ok::<_, Infallible>(ev), f))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One client's place in every session's events.
struct Feed<C> {
    svc: Arc<Service<C>>,
    /// The newest sequence number sent (what the client's `Last-Event-ID` says).
    after: i64,
    /// What the client had when this stream opened (its `Last-Event-ID`, or the snapshot):
    /// nothing at or below it is sent.
    resumed_from: i64,
    snapshot_due: bool,
    /// Numbers sent within the overlap, so none is sent twice.
    sent: BTreeSet<i64>,
    pending: VecDeque<SseEvent>,
    next_stats: Instant,
}

impl<C: CloudOps + 'static> Feed<C> {
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(ev);
            }
            // The server is stopping: an endless stream would hold its shutdown.
            if self.svc.draining.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            if self.snapshot_due {
                self.snapshot_due = false;
                self.queue_snapshot().await;
                continue;
            }
            let svc = self.svc.clone();
            let woken = svc.any_recorded.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            self.read_store().await;
            if !self.pending.is_empty() {
                continue;
            }
            let now = Instant::now();
            if now >= self.next_stats {
                self.next_stats = now + STATS_EVERY;
                self.queue_stats();
                if !self.pending.is_empty() {
                    continue;
                }
            }
            let wake_at = self.next_stats.min(now + LOOK_EVERY);
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
    }

    /// Every session as the list shows it, numbered with the newest event so far: a client
    /// resuming from it misses nothing recorded after.
    async fn queue_snapshot(&mut self) {
        let newest = match self.svc.journal.last_event_seq().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the newest event number");
                0
            }
        };
        let mut peers = HeaderMap::new();
        if let Some(token) = &self.svc.token {
            use secrecy::ExposeSecret;
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())) {
                peers.insert(header::AUTHORIZATION, v);
            }
        }
        let sessions = super::all_sessions(&self.svc, &peers).await;
        self.after = newest;
        self.resumed_from = newest;
        self.pending.push_back(
            SseEvent::default()
                .id(newest.to_string())
                .event("sessions")
                .data(json!({ "sessions": sessions }).to_string()),
        );
    }

    async fn read_store(&mut self) {
        let from = (self.after - OVERLAP).max(0);
        let events = match self.svc.journal.all_events_after(from, BATCH).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read session events");
                return;
            }
        };
        for e in events {
            if e.seq <= from.max(self.resumed_from) || !self.sent.insert(e.seq) {
                continue;
            }
            self.after = self.after.max(e.seq);
            let data = format!(
                "{{\"id\":{},\"data\":{}}}",
                serde_json::Value::String(e.session),
                e.data
            );
            // Numbered with the newest sent, never lower: a late-committed event must not
            // send a reconnecting client back over what it has.
            self.pending.push_back(
                SseEvent::default()
                    .id(self.after.to_string())
                    .event(e.kind)
                    .data(data),
            );
        }
        let floor = self.after - OVERLAP;
        self.sent.retain(|seq| *seq > floor);
    }

    fn queue_stats(&mut self) {
        let running: Vec<_> = {
            let sessions = self.svc.sessions.lock().expect("sessions lock");
            sessions
                .iter()
                .filter(|(_, e)| e.report.borrow().is_none())
                .map(|(id, e)| json!({ "id": id, "data": &*e.status.borrow() }))
                .collect()
        };
        for sample in running {
            self.pending
                .push_back(SseEvent::default().event("stats").data(sample.to_string()));
        }
    }
}
