//! Who a request to `/v1` is: the holder of the API token, a console login (for the event
//! stream only), or, on a node without a token, its peer's address. Refused with 401 when a
//! token is required and neither is presented; otherwise marked with its [`Client`] for what
//! is counted per client.

use std::sync::Arc;

use std::net::IpAddr;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use secrecy::ExposeSecret;

use super::budget::Client;
use super::error::ApiError;
use super::service::Service;
use super::viewers;
use crate::session::CloudOps;

/// Lets a request to `/v1` in if it holds the token (or, for the event stream, a console
/// login), and says which client it is.
pub(super) async fn auth<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = if let Some(token) = &svc.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = presented.is_some_and(|p| {
            crate::serve::webhooks::constant_time_eq(p.as_bytes(), token.expose_secret().as_bytes())
        });
        // The console's event stream also takes its login cookie (EventSource sends no
        // headers); the cookie opens nothing else.
        let viewer = || {
            (request.method() == axum::http::Method::GET && request.uri().path() == "/v1/events")
                .then(|| viewers::admitted_viewer(&svc, request.headers()))
                .flatten()
        };
        if ok {
            Client::Token
        } else if viewer().is_some() {
            Client::Consoles
        } else {
            return ApiError::Unauthorized.into_response();
        }
    } else {
        let peer = request
            .extensions()
            .get::<crate::server::ConnectionInfo>()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.peer.ip());
        Client::Peer(crate::server::peer_key(peer))
    };
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// The middleware on the event-stream routes, inside `auth`: one client holds only so many
/// (`budget`).
pub(super) async fn limit<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    request: Request,
    next: Next,
) -> Response {
    // `auth` always says who (the routes are behind it).
    let client = request
        .extensions()
        .get::<Client>()
        .cloned()
        .unwrap_or(Client::Peer(IpAddr::from([0, 0, 0, 0])));
    let Some(place) = svc.streams.take(client.clone()) else {
        tracing::debug!(?client, "refused an event stream: the client holds its cap");
        let refused = ApiError::TooMany(format!(
            "{} event streams are open for this client already: close one, or follow every \
             session on one stream with GET /v1/events",
            svc.streams.max()
        ));
        return svc.refuse("event_streams", refused).into_response();
    };
    let response = next.run(request).await;
    // The place goes with the body: it is given back when the stream ends or is dropped.
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &place;
            chunk
        }))
    })
}
