//! `GET /v1/events`: one Server-Sent Events stream for every session, which the console
//! follows. A new stream opens with a `sessions` event (every session as
//! `GET /v1/sessions` shows it); then each recorded `status` and `report` event of any
//! session, numbered as the store numbers them, so a client that reconnects with
//! `Last-Event-ID` gets what it missed; and once a second a `stats` event (not numbered,
//! a sample) per session running on this node, which the console's charts draw, and a
//! `feeds` sample with the node's feeds (their state, publisher and figures).
//!
//! The console signs in to it with a cookie (`viewers`).

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde_json::json;

use super::service::Service;
use super::sessions::all_sessions;
use crate::session::CloudOps;
use crate::store::EventLog;

/// How often running sessions' figures are sampled.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often the store is read when nothing woke the stream (other nodes' events).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Events read from the store at once.
const BATCH: u32 = 500;
/// Sequence numbers looked at again below the newest sent: PostgreSQL hands them out at
/// insert, so two nodes' events can commit out of order. 64, so which of them a client has
/// fits in its `Last-Event-ID` as one 64-bit mask.
const OVERLAP: i64 = 64;

/// Which events a client has: all up to `floor`, and those in `sent` above it. Its id
/// (`Last-Event-ID`) is `NEWEST-MASK`, bit i of MASK saying whether NEWEST - i was sent, so
/// a client that reconnects still gets an event that committed late below what it had.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    floor: i64,
    newest: i64,
    sent: BTreeSet<i64>,
}

impl Window {
    /// Everything up to `newest` (a snapshot covers it).
    fn through(newest: i64) -> Self {
        Self {
            floor: newest,
            newest,
            sent: BTreeSet::new(),
        }
    }

    /// From a client's `Last-Event-ID`: `N-MASK`, or a bare `N` (everything up to N).
    fn resume(id: &str) -> Option<Self> {
        let id = id.trim();
        let Some((newest, mask)) = id.split_once('-') else {
            return id.parse().ok().map(Self::through);
        };
        let newest: i64 = newest.parse().ok()?;
        let mask = u64::from_str_radix(mask, 16).ok()?;
        let floor = newest - OVERLAP;
        let sent = (0..OVERLAP)
            .filter(|i| mask & (1u64 << i) != 0)
            .map(|i| newest - i)
            .filter(|seq| *seq > floor)
            .collect();
        Some(Self {
            floor,
            newest,
            sent,
        })
    }

    /// Whether `seq` is new to the client; if so it counts as sent.
    fn take(&mut self, seq: i64) -> bool {
        if seq <= self.floor || !self.sent.insert(seq) {
            return false;
        }
        self.newest = self.newest.max(seq);
        // Older than the overlap: the client is taken to have all of them.
        self.floor = self.floor.max(self.newest - OVERLAP);
        let floor = self.floor;
        self.sent.retain(|s| *s > floor);
        true
    }

    fn id(&self) -> String {
        let mask = (0..OVERLAP)
            .filter(|i| {
                let seq = self.newest - i;
                seq <= self.floor || self.sent.contains(&seq)
            })
            .fold(0u64, |m, i| m | (1u64 << i));
        format!("{}-{mask:x}", self.newest)
    }
}

/// `GET /v1/events`.
pub(super) async fn stream<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(Window::resume);
    // An id from before this store (another server, a wiped journal): start afresh.
    if let Some(w) = &resume
        && svc
            .journal
            .last_event_seq()
            .await
            .is_ok_and(|n| w.newest > n)
    {
        resume = None;
    }
    let feed = Feed {
        svc,
        snapshot_due: resume.is_none(),
        window: resume.unwrap_or_else(|| Window::through(0)),
        pending: VecDeque::new(),
        next_stats: Instant::now(),
    };
    let events = futures::stream::unfold(feed, |mut f| async move {
        let ev = f.next().await?;
        Some((Ok::<_, Infallible>(ev), f))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One client's place in every session's events.
struct Feed<C> {
    svc: Arc<Service<C>>,
    /// What the client has.
    window: Window,
    snapshot_due: bool,
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
        let sessions = all_sessions(&self.svc, &peers).await;
        self.window = Window::through(newest);
        self.pending.push_back(
            SseEvent::default()
                .id(self.window.id())
                .event("sessions")
                .data(json!({ "sessions": sessions }).to_string()),
        );
    }

    async fn read_store(&mut self) {
        let events = match self
            .svc
            .journal
            .all_events_after(self.window.floor, BATCH)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read session events");
                return;
            }
        };
        for e in events {
            if !self.window.take(e.seq) {
                continue;
            }
            let data = format!(
                "{{\"id\":{},\"data\":{}}}",
                serde_json::Value::String(e.session),
                e.data
            );
            self.pending.push_back(
                SseEvent::default()
                    .id(self.window.id())
                    .event(e.kind)
                    .data(data),
            );
        }
    }

    fn queue_stats(&mut self) {
        let running: Vec<_> = {
            let sessions = self.svc.sessions.lock();
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
        // The node's feeds as `GET /v1/feeds` lists them (a sample, not numbered).
        let feeds = self.svc.feeds().list();
        if !feeds.is_empty() {
            let data = json!({ "feeds": feeds }).to_string();
            self.pending
                .push_back(SseEvent::default().event("feeds").data(data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_that_commits_late_still_reaches_a_client_that_reconnects() {
        // 101 is sent while 100 is still uncommitted; the client reconnects with 101's id.
        let mut live = Window::through(99);
        assert!(live.take(101));
        let mut resumed = Window::resume(&live.id()).unwrap();
        assert!(resumed.take(100), "the late one comes");
        assert!(!resumed.take(101) && !resumed.take(99), "nothing twice");
        assert!(resumed.take(102));
    }

    #[test]
    fn a_bare_number_means_everything_up_to_it_and_garbage_means_none() {
        let mut w = Window::resume("42").unwrap();
        assert!(!w.take(42) && !w.take(1));
        assert!(w.take(43));
        assert_eq!(Window::resume("x"), None);
        assert_eq!(Window::resume("5-zz"), None);
    }

    #[test]
    fn the_id_round_trips_and_the_window_keeps_its_size() {
        let mut w = Window::through(0);
        for seq in [1, 2, 5, 300, 301, 303] {
            assert!(w.take(seq));
        }
        let again = Window::resume(&w.id()).unwrap();
        assert_eq!(again.newest, 303);
        assert_eq!(again.floor, 303 - OVERLAP);
        assert_eq!(again.sent, w.sent);
        assert!(w.sent.len() <= OVERLAP as usize);
    }
}
