//! The HTTP server under `callfeed serve` and the stream server: axum's router behind an accept
//! loop of our own, so every resource a client can hold is bounded.
//!
//! `axum::serve` keeps a connection for as long as the client likes: one that never finishes its
//! request head, one that never reads its response (a stalled live FLV reader keeps its broadcast
//! receiver too) and any number of them at once. Here:
//!
//! - at most [`HttpLimits::max_connections`] connections are open; one over the cap is accepted
//!   and closed at once;
//! - one peer address holds at most [`HttpLimits::max_connections_per_peer`] of them, so one
//!   address cannot hold every slot; one over is closed at once too;
//! - at most [`HttpLimits::max_unheaded`] connections may be waiting to send their first request
//!   head; past that one of them is closed to make room — the oldest of the address holding the
//!   most (see [`admission`]) — so half-sent requests cannot keep a health probe from another
//!   address out;
//! - a request head must arrive within [`HttpLimits::header_read_timeout`] of the connection
//!   being ready for it. hyper starts that clock whenever it waits for a head, between keep-alive
//!   requests too, so it is also the keep-alive idle limit;
//! - a request body is at most [`HttpLimits::body_limit`] bytes, and each of its chunks must
//!   arrive within [`HttpLimits::body_timeout`];
//! - a write to the client that stays blocked for [`HttpLimits::write_stall_timeout`] fails, and
//!   with it the connection.
//!
//! Reads are not timed once a request is in: the session event stream (SSE) and live FLV are
//! long responses to clients that send nothing while they read.
//!
//! Every request the app sees carries a [`ConnectionInfo`] extension: who sent it, and which of
//! our addresses it reached.

mod admission;
mod stall;

pub use admission::peer_key;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

use admission::{Admission, Admitted, HeadSeen, Refused};
use stall::StallGuard;

/// Open connections at once. Sessions need one puller connection each and the API a few, so
/// this is far above real use and far below the process's file descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// What share of [`HttpLimits::max_connections`] one peer may hold, and how many may be
/// unheaded, unless set otherwise: a quarter. The cloud pulls many streams from few addresses,
/// and a reverse proxy in front makes every client one peer (raise the per-peer cap to the
/// whole then), so the share is wide; it only has to keep one address from holding all.
pub const DEFAULT_SHARE_DIVISOR: usize = 4;
/// Connections one peer address may hold at once by default.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = DEFAULT_MAX_CONNECTIONS / DEFAULT_SHARE_DIVISOR;
/// Connections that may be waiting to send their first request head at once by default.
pub const DEFAULT_MAX_UNHEADED: usize = DEFAULT_MAX_CONNECTIONS / DEFAULT_SHARE_DIVISOR;
/// From the connection being ready for a request to its whole head having arrived.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body: the API's JSON requests and the cloud's callbacks are a few KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The longest wait for the next chunk of a request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a write to a client may stay blocked: a live FLV reader that stops reading is
/// dropped this long after the kernel's socket buffers between us have filled. 10 s is about
/// what the hub's reader buffer holds.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait after an accept error that is not about one connection (out of file
/// descriptors, say) before accepting again, so the loop does not spin on it.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning this often about peers over their cap, and one about connections
/// closed for holding their head back: a flood would bury everything else in the log.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What one client may hold of the server. See the module docs for what each bounds.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub max_unheaded: usize,
    pub header_read_timeout: Duration,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub write_stall_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self::with_max_connections(DEFAULT_MAX_CONNECTIONS)
    }
}

impl HttpLimits {
    /// The defaults, for `max_connections` open connections: a peer may hold a
    /// [`DEFAULT_SHARE_DIVISOR`]th of them, and as many may be unheaded.
    pub fn with_max_connections(max_connections: usize) -> Self {
        let share = (max_connections / DEFAULT_SHARE_DIVISOR).max(1);
        Self {
            max_connections,
            max_connections_per_peer: share,
            max_unheaded: share,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            write_stall_timeout: DEFAULT_WRITE_STALL_TIMEOUT,
        }
    }
}

/// Who sent a request and which of our addresses it reached (the listener's own when bound
/// to one address; the one the client chose when bound to all). An extension on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting
/// and returns once every open connection has finished its response and closed (a live
/// stream's response finishes when the stream ends).
///
/// Connections keep being accepted while `shutdown` runs, so work it does (draining sessions)
/// can still be watched and driven over HTTP.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = app
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout));
    let service =
        TowerToHyperService::new(app.map_request(|request: axum::http::Request<Incoming>| {
            request.map(axum::body::Body::new)
        }));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let admission = Admission::new(limits.max_connections_per_peer, limits.max_unheaded);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // Warn once per spell at the cap, not once per refused connection: a flood would bury
    // everything else in the log.
    let mut refusing = false;
    let mut warnings = AdmissionWarnings::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!("accept failed: {e}; retrying in {ACCEPT_ERROR_BACKOFF:?}");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // Over the cap the connection is closed at once rather than left in the listen
        // backlog: the client learns now and can back off, instead of hanging until its own
        // timeout, and the loop keeps draining the backlog so it never fills with connections
        // whose clients have long given up.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if !refusing {
                tracing::warn!(
                    "{} connections open: refusing new ones (first: {peer})",
                    limits.max_connections
                );
                refusing = true;
            }
            drop(stream);
            continue;
        };
        if refusing {
            tracing::info!("below {} connections again", limits.max_connections);
            refusing = false;
        }
        let Some((mut place, head)) = admit(&admission, peer, &limits, &mut warnings) else {
            drop(stream);
            continue;
        };
        let info = ConnectionInfo {
            peer,
            local: stream.local_addr().unwrap_or_else(|_| {
                listener
                    .local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
            }),
        };
        let io = TokioIo::new(StallGuard::new(stream, limits.write_stall_timeout));
        let service = PerConnection {
            inner: service.clone(),
            info,
            head,
        };
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    // Timeouts and clients going away end connections all the time.
                    tracing::debug!("connection from {peer} ended: {e}");
                },
                () = place.evicted() => {
                    tracing::debug!("closed {peer}'s connection: no request head while newer ones waited");
                }
            }
            drop(place);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Warnings about the admission book, each at most every [`WARN_EVERY`].
#[derive(Default)]
struct AdmissionWarnings {
    peer_refusals: Spell,
    closures: Spell,
}

/// Enters a connection from `peer` in the admission book; None when its peer is at its cap.
fn admit(
    admission: &Arc<Admission>,
    peer: SocketAddr,
    limits: &HttpLimits,
    warnings: &mut AdmissionWarnings,
) -> Option<(admission::Place, HeadSeen)> {
    match admission.admit(peer.ip()) {
        Ok((place, head, admitted)) => {
            if admitted == Admitted::ClosedAnother
                && let Some(closed) = warnings.closures.count()
            {
                tracing::warn!(
                    budget = limits.max_unheaded,
                    closed,
                    "connections without a request head at their budget: closing some to make room"
                );
            }
            Some((place, head))
        }
        Err(Refused::PeerFull) => {
            if let Some(refused) = warnings.peer_refusals.count() {
                tracing::warn!(
                    peer = %peer.ip(),
                    cap = limits.max_connections_per_peer,
                    refused,
                    "a peer holds its cap of connections: refusing its new ones"
                );
            }
            None
        }
    }
}

/// The app as one connection calls it: each request learns where it came from, and the
/// first tells the admission book the connection is no longer unheaded.
#[derive(Clone)]
struct PerConnection<S> {
    inner: S,
    info: ConnectionInfo,
    head: HeadSeen,
}

impl<S> hyper::service::Service<axum::http::Request<Incoming>> for PerConnection<S>
where
    S: hyper::service::Service<axum::http::Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut request: axum::http::Request<Incoming>) -> Self::Future {
        self.head.seen();
        request.extensions_mut().insert(self.info);
        self.inner.call(request)
    }
}

/// A warning that repeats at most every [`WARN_EVERY`], saying how often its cause came
/// since it was last given.
#[derive(Default)]
struct Spell {
    last: Option<Instant>,
    since: u64,
}

impl Spell {
    /// Counts one more; the count to report when a warning is due.
    fn count(&mut self) -> Option<u64> {
        self.since += 1;
        if self.last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.since))
    }
}

/// Errors about one incoming connection, which say nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
