//! The HTTP server under `callfeed serve` and the stream server: axum's router behind an accept
//! loop of our own, so every resource a client can hold is bounded.
//!
//! `axum::serve` keeps a connection for as long as the client likes: one that never finishes its
//! request head, one that never reads its response (a stalled live FLV reader keeps its broadcast
//! receiver too) and any number of them at once. Here:
//!
//! - at most [`HttpLimits::max_connections`] connections are open; one over the cap is accepted
//!   and closed at once;
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

mod stall;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

use stall::StallGuard;

/// Open connections at once. Sessions need one puller connection each and the API a few, so
/// this is far above real use and far below the process's file descriptor limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
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

/// What one client may hold of the server. See the module docs for what each bounds.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub write_stall_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            write_stall_timeout: DEFAULT_WRITE_STALL_TIMEOUT,
        }
    }
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
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    // Warn once per spell at the cap, not once per refused connection: a flood would bury
    // everything else in the log.
    let mut refusing = false;
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
        let io = TokioIo::new(StallGuard::new(stream, limits.write_stall_timeout));
        let connection = graceful.watch(builder.serve_connection(io, service.clone()));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients going away end connections all the time.
                tracing::debug!("connection from {peer} ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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
