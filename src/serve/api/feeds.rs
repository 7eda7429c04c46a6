//! `/v1/feeds`: live inputs with a life of their own that any number of sessions carry
//! (`media: "feed:ID"`). `POST` makes one and answers with what a person pastes into OBS;
//! `GET` lists them or shows one (with its publish settings); `DELETE` ends one (its
//! publisher dropped, its key refused from then on, its sessions ended `feed_ended`);
//! `POST /v1/feeds/{id}/key` gives it a new key; `GET /v1/feeds/{id}/events` follows it.
//! A pulled feed's input is admitted under the same policy as a session's.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::service::Service;
use crate::feed::{FeedError, FeedEvent, FeedKind, FeedMode, FeedRequest, FeedState};
use crate::media::input::InputSpec;
use crate::session::CloudOps;

impl From<FeedError> for ApiError {
    fn from(e: FeedError) -> Self {
        let status = match &e {
            FeedError::NotFound(_) => StatusCode::NOT_FOUND,
            FeedError::Ended(_) => StatusCode::CONFLICT,
            FeedError::Invalid { .. } | FeedError::NoListener { .. } => StatusCode::BAD_REQUEST,
            FeedError::Full(_) => return ApiError::TooMany(e.to_string()),
            FeedError::Start(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::problem(status, e.to_string())
    }
}

/// Why this node did not make a feed: what another node of the cluster may have (room, a
/// listener for the feed's kind) sends the request there; anything else is the answer.
enum NotHere {
    Lacking(ApiError),
    Refused(ApiError),
}

impl From<ApiError> for NotHere {
    fn from(e: ApiError) -> Self {
        NotHere::Refused(e)
    }
}

impl From<FeedError> for NotHere {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Full(_) | FeedError::NoListener { .. } => NotHere::Lacking(e.into()),
            e => NotHere::Refused(e.into()),
        }
    }
}

/// Makes a feed here, or, when this node lacks the room or the listener for it, on another
/// node of the cluster that has them (its publish settings then name that node).
pub(super) async fn create<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    match make_here(&svc, &body).await {
        Ok(made) => Ok(made.into_response()),
        Err(NotHere::Refused(refused)) => Err(refused),
        Err(NotHere::Lacking(lacking)) => {
            match super::feed_nodes::place(&svc, &headers, body).await {
                Some(placed) => Ok(placed),
                None => Err(lacking),
            }
        }
    }
}

async fn make_here<C: CloudOps + 'static>(
    svc: &Arc<Service<C>>,
    body: &Bytes,
) -> Result<(StatusCode, Json<Value>), NotHere> {
    let request: FeedRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::problem(StatusCode::BAD_REQUEST, format!("not a feed request: {e}"))
    })?;
    let input = match (request.kind, &request.url) {
        (Some(FeedKind::Rtsp), Some(url)) if !url.to_ascii_lowercase().starts_with("rtsp") => {
            return Err(NotHere::Refused(ApiError::problem(
                StatusCode::BAD_REQUEST,
                "url: an rtsp feed pulls an rtsp:// or rtsps:// URL (kind pull plays others)",
            )));
        }
        (Some(FeedKind::Rtsp | FeedKind::Pull), Some(url)) => Some(admit_input(svc, url).await?),
        _ => None,
    };
    // A feed's encode takes the node's room as a live session's does (a passed-through one
    // what a byte copy does), held until the feed ends and no call stays on its slate.
    let cost = match request.mode.unwrap_or_default() {
        FeedMode::Passthrough => svc.costs.announcement,
        FeedMode::Encoded => svc
            .costs
            .live
            .saturating_mul(request.profile.unwrap_or_default().live_cost()),
    };
    let room =
        svc.take_slot(cost).ok_or_else(|| {
            NotHere::Lacking(svc.refuse(
            "capacity",
            ApiError::TooMany(
                "this node has no room for the feed's encode (--max-sessions, in cost units); \
                 end a feed or a session, or try another node"
                    .into(),
            ),
        ))
        })?;
    let feeds = svc.feeds().clone();
    // Starting a stream builds GStreamer pipelines: off the async workers.
    let made = feeds.clone();
    let view = tokio::task::spawn_blocking(move || {
        let _runtime = tokio::runtime::Handle::current().enter();
        made.create(request, input)
    })
    .await
    .map_err(ApiError::internal)??;
    let released = feeds.released(&view.id);
    tokio::spawn(async move {
        released.await;
        drop(room);
    });
    Ok((StatusCode::CREATED, Json(json!(view))))
}

/// A pulled feed's input, admitted as a session's media would be.
async fn admit_input<C: CloudOps + 'static>(
    svc: &Service<C>,
    url: &str,
) -> Result<InputSpec, ApiError> {
    let invalid =
        |reason: String| ApiError::problem(StatusCode::BAD_REQUEST, format!("url: {reason}"));
    let input = InputSpec::parse_syntax(url).map_err(|e| invalid(e.to_string()))?;
    if matches!(input, InputSpec::Feed(_) | InputSpec::Pushed(_)) {
        return Err(invalid("a feed plays an input, not another feed".into()));
    }
    let input = svc
        .policy
        .admit(input)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    input
        .check_available()
        .map_err(|e| invalid(e.to_string()))?;
    input
        .check_sources(&svc.topologies)
        .map_err(|e| invalid(e.to_string()))?;
    // A URL is opened once now, so a wrong password or a dead camera is named here rather
    // than in a feed that ends as soon as it starts.
    if matches!(input, InputSpec::Url(_)) {
        let options = crate::media::inspect::ProbeOptions {
            guard: svc.policy.source_guard(&input),
            audio_track: Default::default(),
            judge_direct: false,
            bounds: svc.driver.input_bounds,
        };
        let probed = input.clone();
        let contract = crate::media::contract::Contract::new(Default::default());
        tokio::task::spawn_blocking(move || {
            crate::media::inspect::probe_with(&probed, contract, &options)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::problem(StatusCode::UNPROCESSABLE_ENTITY, format!("url: {e}")))?;
    }
    Ok(input)
}

/// This node's feeds, then (in a cluster) every other node's.
pub(super) async fn list<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    headers: HeaderMap,
) -> Json<Value> {
    let mut feeds: Vec<Value> = svc.feeds().list().iter().map(|f| json!(f)).collect();
    feeds.extend(super::feed_nodes::others(&svc, &headers).await);
    Json(json!({ "feeds": feeds }))
}

/// What this node answers for a feed it runs; for one it does not, the answer of the node
/// that runs it (in a cluster).
async fn here_or_there<C: CloudOps + 'static>(
    svc: &Service<C>,
    id: &str,
    request: (Method, &Uri, &HeaderMap),
    here: Result<Value, FeedError>,
) -> Result<Response, ApiError> {
    match here {
        Ok(view) => Ok(Json(view).into_response()),
        Err(FeedError::NotFound(_)) => {
            let (method, uri, headers) = request;
            match super::feed_nodes::answer(svc, id, method, uri.path(), headers, None).await {
                Some(answer) => answer,
                None => Err(FeedError::NotFound(id.to_owned()).into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn one<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let here = svc.feeds().get(&id, true).map(|v| json!(v));
    here_or_there(&svc, &id, (method, &uri, &headers), here).await
}

pub(super) async fn delete<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let here = svc.feeds().delete(&id).await.map(|v| json!(v));
    here_or_there(&svc, &id, (method, &uri, &headers), here).await
}

pub(super) async fn rotate_key<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let here = svc.feeds().rotate_key(&id).map(|v| json!(v));
    here_or_there(&svc, &id, (method, &uri, &headers), here).await
}

/// How long a preview URL lives: a console page that stays open asks again.
const PREVIEW_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

/// `POST /v1/feeds/{id}/preview`: the feed's stream on this node's stream server, for a
/// player (the console's), under a URL of its own that expires.
pub(super) async fn preview<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let here = svc.feeds().lease(&id, "preview", false).map(|lease| {
        let expires = std::time::Instant::now() + PREVIEW_FOR;
        let url = svc
            .driver
            .publisher
            .publish_live(lease.hub(), Some(expires));
        json!({ "url": url, "expires_in_secs": PREVIEW_FOR.as_secs() })
    });
    here_or_there(&svc, &id, (method, &uri, &headers), here).await
}

/// `GET /v1/feeds/{id}/events`: a `feed` event with how it stands, then its `state` changes
/// and its `stats` once a second, until it ends.
pub(super) async fn events<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let feeds = svc.feeds().clone();
    let receiver = feeds.events();
    let now = match feeds.get(&id, false) {
        Ok(now) => now,
        Err(e) => return here_or_there(&svc, &id, (method, &uri, &headers), Err(e)).await,
    };
    let first = sse("feed", &json!(now));
    let ended = now.state == FeedState::Ended;
    let follow = Follow {
        id,
        receiver,
        first: Some(first),
        done: ended,
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        Some((Ok::<_, Infallible>(event), f))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct Follow {
    id: String,
    receiver: broadcast::Receiver<FeedEvent>,
    first: Option<SseEvent>,
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<SseEvent> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.done {
            return None;
        }
        loop {
            match self.receiver.recv().await {
                Ok(event) if event.feed_id() == self.id => {
                    let (name, ended) = match &event {
                        FeedEvent::State { feed } => ("state", feed.state == FeedState::Ended),
                        FeedEvent::Stats { .. } => ("stats", false),
                    };
                    self.done = ended;
                    return Some(sse(name, &json!(event)));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn sse(name: &str, data: &Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}
