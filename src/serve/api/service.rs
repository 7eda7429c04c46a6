//! What the service shares between requests: its sessions, its settings, its place in a
//! cluster, and the few things every handler does with them. A leaf: the handlers import
//! it, it calls none of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use super::budget::StreamBudget;
use super::error::ApiError;
use super::logins::Viewers;
use super::lost_starts::LostStarts;
use crate::media::policy::InputPolicy;
use crate::media::topology::Topologies;
use crate::serve::cluster::{LeaseState, PlacementCosts};
use crate::serve::exposure::Exposure;
use crate::serve::metrics::{Metered, Metrics, labels};
use crate::serve::webhooks::{WebhookChecks, WebhookKeys};
use crate::session::driver::{DriverSettings, Phase, Report, Status};
use crate::session::{CloudOps, SessionRequest};
use crate::store::{Cluster, NodeLoad, Store};

/// The longest a request (body, validation and DNS included) may take, SSE aside. Each chunk
/// of its body must also come within the server's body timeout (`server::HttpLimits`).
pub(super) const REQUEST_LIMIT: Duration = Duration::from_secs(30);
/// How long a drain waits for sessions to end before it leaves the rest to the journal.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How long a session's own task retries an unconfirmed teardown before it reports it
/// pending, frees its place and leaves the retries to the service's recovery rounds.
pub(super) const IN_TASK_TEARDOWN_RETRY: Duration = Duration::from_secs(60);

pub(super) struct Entry {
    pub(super) request: SessionRequest,
    pub(super) status: watch::Receiver<Status>,
    pub(super) stop: watch::Sender<bool>,
    /// Changes to the running session (PATCH).
    pub(super) changes: tokio::sync::mpsc::Sender<crate::session::change::ChangeRequest>,
    pub(super) nudge: Arc<Notify>,
    /// Sent by the session's task, and updated by recovery when a pending teardown is
    /// confirmed later.
    pub(super) report: Arc<watch::Sender<Option<Report>>>,
    /// When its report came; the entry is dropped `keep_ended` later.
    pub(super) ended_at: Arc<OnceLock<Instant>>,
    /// Woken each time one of its events is recorded.
    pub(super) recorded: Arc<Notify>,
}

/// What the room observer saw of a call, by its CallId (`None`: no such call).
pub type RoomView = Arc<dyn Fn(&str) -> Option<serde_json::Value> + Send + Sync>;

/// What the service shares between requests.
pub struct Service<C> {
    pub(super) cloud: Arc<Metered<C>>,
    pub(super) journal: Arc<Store>,
    pub(super) topologies: Topologies,
    pub(super) driver: DriverSettings,
    pub(super) token: Option<SecretString>,
    pub(super) policy: InputPolicy,
    pub(super) relay: Option<crate::publish::relay::Relay>,
    pub(super) cluster: Option<Arc<LeaseState>>,
    pub(super) drain_grace: Duration,
    pub(super) costs: PlacementCosts,
    /// Woken by `POST /v1/drain`: the process drains as on SIGTERM.
    pub(super) drain_asked: Notify,
    /// Talks to the other nodes of a cluster.
    pub(super) peers: reqwest::Client,
    pub(super) webhooks: Option<WebhookChecks>,
    pub metrics: Arc<Metrics>,
    pub(super) sessions: Mutex<HashMap<String, Entry>>,
    /// Woken each time any session's event is recorded (the console's stream).
    pub(super) any_recorded: Arc<Notify>,
    /// The consoles logged in to the event stream.
    pub(super) viewers: Viewers,
    /// What a web page may make this node do (Host, Origin, Content-Type).
    pub(super) exposure: Arc<Exposure>,
    /// Event streams open, by client.
    pub(super) streams: Arc<StreamBudget>,
    /// What reached a call's room, when the cloud is the embedded emulator.
    pub(super) room_view: Option<RoomView>,
    /// Where room alerts and finished recordings are told (`--event-webhook`).
    pub(super) outbound: Option<crate::serve::outbound::Outbound>,
    pub(super) default_monitor: Option<crate::session::monitor_spec::MonitorSpec>,
    pub(super) draining: AtomicBool,
    /// This node's room, `max_sessions` cost units: a running session holds its cost in
    /// permits until its task ends.
    pub(super) slots: Arc<Semaphore>,
    pub(super) max_sessions: usize,
    pub(super) keep_ended: Duration,
    pub(super) tasks: Mutex<tokio::task::JoinSet<()>>,
    /// Starts of this node whose answer was lost, for the webhooks of what they started.
    pub(super) lost_starts: LostStarts,
    /// The background recovery rounds; a drain stops them (the journal keeps what is left).
    pub(super) recovery: Mutex<Option<tokio::task::AbortHandle>>,
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
    pub costs: PlacementCosts,
    /// The relay sessions push to unless their request names one (`[relay]`).
    pub relay: Option<crate::publish::relay::Relay>,
    /// This node's lease, when it is one of a cluster sharing a PostgreSQL store.
    pub cluster: Option<Arc<LeaseState>>,
    /// What the room observer saw, when the cloud is the embedded emulator.
    pub room_view: Option<RoomView>,
    /// Where room alerts and finished recordings are told, if anywhere.
    pub event_webhook: Option<crate::serve::outbound::EventWebhook>,
    /// The room monitor a session gets when its request names none (`[monitor]`).
    pub default_monitor: Option<crate::session::monitor_spec::MonitorSpec>,
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
    /// This node's feeds.
    pub fn feeds(&self) -> &crate::feed::Feeds {
        self.driver
            .feeds
            .as_ref()
            .expect("a service always has a feed registry")
    }

    /// Resolves when a client asked for a drain (`POST /v1/drain`).
    pub async fn drain_asked(&self) {
        self.drain_asked.notified().await;
    }

    /// Sessions running on this node, and whether it drains: what its lease reports.
    pub fn load(&self) -> (u32, bool) {
        (
            u32::try_from(self.taken()).unwrap_or(u32::MAX),
            self.draining.load(Ordering::SeqCst),
        )
    }

    /// Asks every running session to end (their teardowns stop what each started): a drain
    /// past its grace, or this node's lease ran out and other nodes may be taking its
    /// sessions over.
    pub fn stop_all(&self) {
        for entry in self.sessions.lock().values() {
            let _ = entry.stop.send(true);
        }
    }

    /// Whether a session's own task still runs.
    pub(super) fn is_running(&self, id: &str) -> bool {
        self.session(id, |e| e.report.borrow().is_none())
            .unwrap_or(false)
    }

    /// What `read` takes from session `id`'s entry, when this node runs it (`None`: ask
    /// `elsewhere`).
    pub(super) fn session<T>(&self, id: &str, read: impl FnOnce(&Entry) -> T) -> Option<T> {
        self.sessions.lock().get(id).map(read)
    }

    /// No new sessions; every running one is ended cleanly; returns when all have ended, or
    /// after a limit (what is left stays in the journal for the next start).
    pub async fn drain(&self) {
        {
            // Under the sessions lock: a request admitted before this has its task spawned
            // already (see `create`), one after it sees the flag.
            let _sessions = self.sessions.lock();
            self.draining.store(true, Ordering::SeqCst);
        }
        // Console streams end, or they would hold the server's shutdown.
        self.any_recorded.notify_waiters();
        // The cluster places nothing more here from now on, not from the next renewal.
        if let (Some(lease), Some(cluster)) = (&self.cluster, self.journal.cluster()) {
            let (load, _) = self.load();
            let now = NodeLoad {
                sessions: load,
                draining: true,
                busy: false,
            };
            if let Err(e) = cluster.renew_lease(lease.lease, now).await {
                tracing::warn!(error = %e, "drain: cannot mark this node draining in the store");
            }
        }
        if let Some(rounds) = self.recovery.lock().take() {
            rounds.abort();
        }
        let mut tasks = std::mem::take(&mut *self.tasks.lock());
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
        self.stop_all();
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

    /// Drops ended sessions older than `keep_ended` and reaps finished tasks.
    pub(super) fn prune(&self) {
        let keep = self.keep_ended;
        self.sessions
            .lock()
            .retain(|_, e| e.ended_at.get().is_none_or(|t| t.elapsed() < keep));
        let mut tasks = self.tasks.lock();
        while tasks.try_join_next().is_some() {}
    }

    /// `cost` units of this node's room, unless that would pass its capacity: held by the
    /// session's task, given back when it is dropped.
    pub(super) fn take_slot(&self, cost: u32) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_many_owned(cost).ok()
    }

    /// The cost units the running sessions hold.
    pub(super) fn taken(&self) -> usize {
        self.max_sessions
            .saturating_sub(self.slots.available_permits())
    }

    /// Counts a refusal by its reason, then gives it back to be answered.
    pub(super) fn refuse(&self, reason: &str, refused: ApiError) -> ApiError {
        self.metrics
            .refused
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
        refused
    }
}

impl Entry {
    /// Where the session stands: its report's, once it has one.
    pub(super) fn phase(&self) -> Phase {
        self.report
            .borrow()
            .as_ref()
            .map_or_else(|| self.status.borrow().phase, Report::phase)
    }
}

/// A session as the API shows it.
pub(super) fn session_json(id: &str, e: &Entry) -> Value {
    let mut status = e.status.borrow().clone();
    status.phase = e.phase();
    let report = e.report.borrow().clone();
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
