//! Who a request to `/v1` is: the holder of the API token, a console login (for the event
//! stream only), or, on a node without a token, its peer's address. Refused with 401 when a
//! token is required and neither is presented; otherwise marked with its [`Client`] for what
//! is counted per client.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use secrecy::ExposeSecret;

use super::budget::Client;
use super::{Service, problem, viewers};
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
            super::super::webhooks::constant_time_eq(p.as_bytes(), token.expose_secret().as_bytes())
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
            let mut answer = problem(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return answer;
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
