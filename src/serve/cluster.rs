//! A `serve` node in a cluster sharing one PostgreSQL store: its lease on the database clock,
//! renewed from a thread of its own (media work on the runtime's workers cannot delay it),
//! and when it may take a gone node's sessions over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::store::{Cluster, NodeInfo, PostgresStore};

/// What the lease keeper knows, shared with the recovery rounds.
#[derive(Debug)]
pub struct LeaseState {
    pub lease: Duration,
    /// Above this share of the machine's CPU (0–100) the node takes no new sessions.
    pub max_cpu_percent: f64,
    /// Since when renewals have gone through without a break; `None` while the store does
    /// not answer.
    healthy_since: Mutex<Option<Instant>>,
    last_renewal: Mutex<Instant>,
}

impl LeaseState {
    pub fn new(lease: Duration, max_cpu_percent: f64) -> Arc<Self> {
        Arc::new(Self {
            lease,
            max_cpu_percent,
            healthy_since: Mutex::new(Some(Instant::now())),
            last_renewal: Mutex::new(Instant::now()),
        })
    }

    /// Whether this node may take other nodes' sessions over: only after a full lease of
    /// talking to the store, so an outage (in which no node could renew) kills nothing —
    /// the others get a lease's time to renew first.
    pub fn may_reap(&self) -> bool {
        self.healthy_since
            .lock()
            .is_some_and(|t| t.elapsed() >= self.lease)
    }

    fn renewed(&self) {
        self.healthy_since.lock().get_or_insert_with(Instant::now);
        *self.last_renewal.lock() = Instant::now();
    }

    /// Time since the lease was last renewed.
    pub fn since_renewal(&self) -> Duration {
        self.last_renewal.lock().elapsed()
    }

    fn broken(&self) {
        *self.healthy_since.lock() = None;
    }

    /// How often recovery looks for gone nodes' sessions.
    pub fn look_every(&self) -> Duration {
        self.lease / 2
    }
}

/// How much of a node's room (its `--max-sessions`, in cost units) a session takes, on one
/// node and when a cluster places it: a live encode costs far more CPU than an announcement
/// the cloud plays or a passthrough, and more the larger its picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementCosts {
    /// Multiplies a live encode's cost by profile ([`Profile::live_cost`]).
    ///
    /// [`Profile::live_cost`]: crate::media::contract::Profile::live_cost
    pub live: u32,
    pub announcement: u32,
}

impl Default for PlacementCosts {
    fn default() -> Self {
        Self {
            live: 1,
            announcement: 1,
        }
    }
}

impl PlacementCosts {
    /// A session's cost, known before its media is probed: a file or playlist that is not
    /// asked to stream live nor through a relay is an announcement (or a passthrough, or a
    /// URL handed over); everything else is encoded live.
    pub fn of(&self, spec: &crate::session::SessionSpec) -> u32 {
        use crate::media::input::InputSpec;
        let file = matches!(spec.input, InputSpec::File(_) | InputSpec::Playlist(_));
        let direct = matches!(spec.input, InputSpec::Url(_))
            && spec.direct == crate::media::plan::Direct::Always;
        // A session on a feed copies the feed's stream: the feed paid for its encode.
        let feed = matches!(spec.input, InputSpec::Feed(_));
        if (file && !spec.live && spec.relay.is_none()) || direct || feed {
            self.announcement
        } else {
            self.live.saturating_mul(spec.profile.live_cost())
        }
    }
}

/// What nodes compare to tell whether they take the same API token, never the token: a
/// hash of it (a node without one has the hash of nothing).
pub fn token_fingerprint(token: Option<&secrecy::SecretString>) -> String {
    use secrecy::ExposeSecret;
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(b"callfeed api token\0");
    hash.update(token.map_or("", |t| t.expose_secret()).as_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// This node's load as the lease reports it: sessions running, and whether it drains.
pub type LoadProbe = Box<dyn Fn() -> (u32, bool) + Send>;

/// Keeps this node's lease from a thread of its own with its own connection, renewing three
/// times per lease. Sends on the returned channel each time the lease was found gone (the
/// node must stop its sessions: others may be taking them over); it registers anew then.
pub fn keep_lease(
    url: String,
    info: NodeInfo,
    state: Arc<LeaseState>,
    load: LoadProbe,
) -> mpsc::UnboundedReceiver<()> {
    let (lost_tx, lost) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("callfeed-lease".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the lease keeper");
                    return;
                }
            };
            runtime.block_on(renew_forever(url, info, state, load, lost_tx));
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the lease keeper");
    }
    lost
}

/// This process's CPU time so far, from `/proc/self/stat` (user and system, in the kernel's
/// 100 Hz ticks), and when it was read. A node judges its own use, not the machine's: nodes
/// sharing a host, or a busy neighbour, do not make every node refuse together.
fn cpu_ticks() -> Option<(u64, std::time::Instant)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = after_name.split(' ').skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system, std::time::Instant::now()))
}

/// The share of the machine's CPU (all cores, 0–100) this process used since `before`, and
/// the new reading.
fn cpu_since(
    before: Option<(u64, std::time::Instant)>,
) -> (Option<f64>, Option<(u64, std::time::Instant)>) {
    const TICKS_PER_SEC: f64 = 100.0;
    let now = cpu_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let percent = before.zip(now).and_then(|((t0, at0), (t1, at1))| {
        let wall = at1.duration_since(at0).as_secs_f64();
        (wall > 0.0).then(|| t1.saturating_sub(t0) as f64 / TICKS_PER_SEC / wall / cores * 100.0)
    });
    (percent, now)
}

async fn renew_forever(
    url: String,
    info: NodeInfo,
    state: Arc<LeaseState>,
    load: LoadProbe,
    lost: mpsc::UnboundedSender<()>,
) {
    let every = state.lease / 3;
    let mut store: Option<PostgresStore> = None;
    let mut cpu = cpu_ticks();
    loop {
        tokio::time::sleep(every).await;
        if store.is_none() {
            match PostgresStore::connect(&url).await {
                Ok(s) => store = Some(s),
                Err(e) => {
                    state.broken();
                    tracing::warn!(error = %e, "lease: the store does not answer; retrying");
                    continue;
                }
            }
        }
        let Some(s) = &store else { continue };
        let (sessions, draining) = load();
        let (percent, reading) = cpu_since(cpu);
        cpu = reading;
        let busy = percent.is_some_and(|p| p >= state.max_cpu_percent);
        let now = crate::store::NodeLoad {
            sessions,
            draining,
            busy,
        };
        match s.renew_lease(state.lease, now).await {
            Ok(true) => {
                state.renewed();
                // Rows of nodes gone for three leases: their sessions were taken over by
                // now, and a node that comes back later must start afresh.
                if state.may_reap()
                    && let Err(e) = s.forget_nodes_gone_for(state.lease * 3).await
                {
                    tracing::warn!(error = %e, "lease: cannot remove gone nodes");
                }
            }
            Ok(false) => {
                tracing::error!(
                    "lease: this node was removed as gone; its sessions are stopped and it registers anew"
                );
                if lost.send(()).is_err() {
                    return;
                }
                match s.register_node(&info, state.lease).await {
                    Ok(()) => state.renewed(),
                    Err(e) => {
                        state.broken();
                        tracing::warn!(error = %e, "lease: cannot register again; retrying");
                    }
                }
            }
            Err(e) => {
                state.broken();
                tracing::warn!(error = %e, "lease: renewal failed; retrying");
            }
        }
    }
}
