//! The stream endpoints: live HTTP-FLV from a [`StreamHub`] and announcement files with
//! Range support, each behind an unguessable per-stream token and an optional expiry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;
use tower::ServiceExt;

use crate::media::flv::ReaderTimeline;
use crate::media::hub::StreamHub;

#[derive(Clone)]
enum Published {
    Live(Arc<StreamHub>),
    File(PathBuf),
}

#[derive(Default)]
struct Registry {
    entries: Mutex<HashMap<String, (Published, Option<Instant>)>>,
}

impl Registry {
    fn get(&self, token: &str) -> Option<Published> {
        let mut entries = self.entries.lock();
        match entries.get(token) {
            Some((_, Some(expiry))) if *expiry <= Instant::now() => {
                entries.remove(token);
                None
            }
            Some((p, _)) => Some(p.clone()),
            None => None,
        }
    }
}

/// A running stream server: on its own listener, or attached to another server's router.
pub struct StreamServer {
    /// What published URLs start with, e.g. `http://127.0.0.1:8730`.
    base: String,
    addr: Option<SocketAddr>,
    registry: Arc<Registry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for StreamServer {
    // Published URLs carry their tokens: Debug shows only where streams are served.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamServer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn token() -> String {
    // 122 random bits: not guessable, not enumerable.
    uuid::Uuid::new_v4().simple().to_string()
}

impl StreamServer {
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let registry = Arc::new(Registry::default());
        let app = router(registry.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // The server's limits drop a reader that stops reading: see `live`.
        tokio::spawn(crate::server::serve(
            listener,
            app,
            crate::server::HttpLimits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            base: format!("http://{addr}"),
            addr: Some(addr),
            registry,
            stop: Some(stop),
        })
    }

    /// A stream server whose routes (`/live/...`, `/files/...`) the caller mounts on its own
    /// router, reached at `base`. `callfeed serve` serves streams on its API port this way.
    pub fn attached(base: &str) -> (Arc<Self>, axum::Router) {
        let registry = Arc::new(Registry::default());
        let router = router(registry.clone());
        (
            Arc::new(Self {
                base: base.trim_end_matches('/').to_owned(),
                addr: None,
                registry,
                stop: None,
            }),
            router,
        )
    }

    /// Publishes URLs under `base` (the URL the cloud reaches this server at, behind NAT or
    /// a proxy) instead of the listen address.
    pub fn with_public_base(mut self, base: Option<&str>) -> Self {
        if let Some(base) = base {
            self.base = base.trim_end_matches('/').to_owned();
        }
        self
    }

    /// The listener's address, for a server on its own listener.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// What published URLs start with.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Publishes a live stream; returns the URL a puller reads.
    pub fn publish_live(&self, hub: Arc<StreamHub>, expires: Option<Instant>) -> String {
        let t = token();
        self.registry
            .entries
            .lock()
            .insert(t.clone(), (Published::Live(hub), expires));
        format!("{}/live/{t}.flv", self.base)
    }

    /// Publishes a file (served with Range); returns its URL.
    pub fn publish_file(&self, path: PathBuf, expires: Option<Instant>) -> String {
        let t = token();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("mp4")
            .to_owned();
        self.registry
            .entries
            .lock()
            .insert(t.clone(), (Published::File(path), expires));
        format!("{}/files/{t}.{ext}", self.base)
    }

    /// Withdraws a URL: later requests get 404.
    pub fn unpublish(&self, url: &str) {
        if let Some(t) = url.rsplit('/').next().and_then(|f| f.split('.').next()) {
            self.registry.entries.lock().remove(t);
        }
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn router(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new()
        .route("/live/{file}", axum::routing::get(live))
        .route("/files/{file}", axum::routing::get(file).head(file))
        .with_state(registry)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no such stream (unknown or expired token)",
    )
        .into_response()
}

async fn live(State(registry): State<Arc<Registry>>, Path(file): Path<String>) -> Response {
    let token = file.strip_suffix(".flv").unwrap_or(&file);
    let Some(Published::Live(hub)) = registry.get(token) else {
        return not_found();
    };
    if hub.is_ended() {
        return (StatusCode::GONE, "the stream has ended").into_response();
    }
    // A reader that stops reading holds its receiver only until the server's write-stall
    // timeout (`HttpLimits::write_stall_timeout`, 10 s by default) closes its connection: hyper
    // then drops this body and the receiver with it. The hub never waits for any reader.
    let sub = hub.subscribe();
    // Each reader's timeline starts at zero, as RTMP servers do per client: a player that
    // joins an hour in does not wait an hour of timestamps before it renders.
    let mut rebase = ReaderTimeline::default();
    let preamble: Vec<Result<Bytes, std::io::Error>> = sub
        .preamble
        .into_iter()
        .map(|tag| Ok(rebase.apply(tag)))
        .collect();
    let live = futures::stream::unfold((sub.live, rebase), |(mut rx, mut rebase)| async move {
        match rx.recv().await {
            // An empty buffer marks the end of the stream.
            Ok(tag) if tag.is_empty() => None,
            Ok(tag) => Some((Ok(rebase.apply(tag)), (rx, rebase))),
            // Too slow: dropped rather than allowed to hold anyone up.
            Err(_) => None,
        }
    });
    let preamble = futures::stream::iter(preamble);
    use futures::StreamExt;
    (
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(preamble.chain(live)),
    )
        .into_response()
}

async fn file(
    State(registry): State<Arc<Registry>>,
    Path(file): Path<String>,
    request: Request,
) -> Response {
    let token = file.split('.').next().unwrap_or(&file);
    let Some(Published::File(path)) = registry.get(token) else {
        return not_found();
    };
    match tower_http::services::ServeFile::new(path)
        .oneshot(request)
        .await
    {
        Ok(r) => r.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
