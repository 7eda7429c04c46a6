//! `/v1/whip/{id}`: the WHIP endpoint of a `whip` feed (RFC 9725), on the node's own HTTP
//! server. A publisher POSTs its SDP offer with the feed's key as its bearer token and gets
//! `201` with the answer and the `Location` of its session, which it DELETEs to stop. Checked
//! by that key, not the API's token, and open to any origin: a presenter's page, OBS or a
//! hardware encoder publishes from wherever it is.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;

use super::error::ApiError;
use super::service::Service;
use crate::feed::WhipRefusal;
use crate::media::whip::{OfferError, WebRtcSettings};
use crate::session::CloudOps;

/// What every WHIP answer says to a browser on another origin.
fn open_to_pages(answer: &mut Response) {
    let headers = answer.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link"),
    );
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
}

impl From<WhipRefusal> for ApiError {
    fn from(e: WhipRefusal) -> Self {
        let status = match &e {
            WhipRefusal::Unauthorized => StatusCode::UNAUTHORIZED,
            WhipRefusal::Taken => StatusCode::CONFLICT,
            WhipRefusal::TurnedAway => return ApiError::TooMany(e.to_string()),
            WhipRefusal::NoSession => StatusCode::NOT_FOUND,
            WhipRefusal::Offer(OfferError::NoCodec(_)) => StatusCode::NOT_ACCEPTABLE,
            WhipRefusal::Offer(OfferError::Malformed(_)) | WhipRefusal::Negotiation(_) => {
                StatusCode::BAD_REQUEST
            }
            WhipRefusal::Engine(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::problem(status, e.to_string())
    }
}

/// A refusal as a WHIP client reads it (a 401 says how to authenticate).
fn refused(e: WhipRefusal) -> Response {
    let unauthorized = matches!(e, WhipRefusal::Unauthorized);
    let mut answer = ApiError::from(e).into_response();
    if unauthorized {
        answer
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    open_to_pages(&mut answer);
    answer
}

/// `POST /v1/whip/{id}`: a publisher's offer.
pub(super) async fn publish<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path(id): Path<String>,
    peer: Option<axum::Extension<crate::server::ConnectionInfo>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sdp = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/sdp"));
    if !sdp {
        let mut answer = ApiError::problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a WHIP offer is sent as application/sdp",
        )
        .into_response();
        open_to_pages(&mut answer);
        return answer;
    }
    let Ok(offer) = std::str::from_utf8(&body) else {
        return refused(WhipRefusal::Offer(OfferError::Malformed(
            "it is not UTF-8 text".into(),
        )));
    };
    let address = peer.map_or_else(|| "unknown".to_owned(), |p| p.peer.ip().to_string());
    let feeds = svc.feeds();
    let answer = match feeds
        .publish_whip(&id, bearer(&headers), offer, &address)
        .await
    {
        Ok(answer) => answer,
        Err(e) => return refused(e),
    };
    let location = format!("/v1/whip/{id}/{}", answer.resource);
    let mut response = (StatusCode::CREATED, answer.sdp).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(endpoint) = feeds.whip_endpoint() {
        for link in ice_server_links(&endpoint.webrtc) {
            if let Ok(link) = HeaderValue::from_str(&link) {
                headers.append(header::LINK, link);
            }
        }
    }
    open_to_pages(&mut response);
    response
}

/// `DELETE /v1/whip/{id}/{resource}`: the publisher stops.
pub(super) async fn stop<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
    Path((id, resource)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match svc.feeds().end_whip(&id, &resource, bearer(&headers)) {
        Ok(()) => {
            let mut answer = StatusCode::OK.into_response();
            open_to_pages(&mut answer);
            answer
        }
        Err(e) => refused(e),
    }
}

/// `PATCH` on a session: neither trickle ICE nor ICE restarts are taken (the answer carries
/// every candidate), which RFC 9725 says with a 405.
pub(super) async fn patch() -> Response {
    let mut answer = (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "DELETE, OPTIONS")],
    )
        .into_response();
    open_to_pages(&mut answer);
    answer
}

/// `OPTIONS`: a browser's preflight, and what the endpoint takes.
pub(super) async fn options() -> Response {
    let mut answer = (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, "OPTIONS, POST, DELETE"),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "OPTIONS, POST, DELETE, PATCH",
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match",
            ),
        ],
    )
        .into_response();
    answer
        .headers_mut()
        .insert("accept-post", HeaderValue::from_static("application/sdp"));
    open_to_pages(&mut answer);
    answer
}

/// The ICE servers a publisher is told of (RFC 9725 section 4.6): STUN as it is, TURN with
/// its credentials — given only to a publisher that showed the feed's key.
fn ice_server_links(webrtc: &WebRtcSettings) -> Vec<String> {
    let mut links = Vec::new();
    if let Some(stun) = &webrtc.stun {
        let target = stun.replacen("stun://", "stun:", 1);
        links.push(format!("<{target}>; rel=\"ice-server\""));
    }
    for turn in &webrtc.turn {
        let Ok(url) = url::Url::parse(turn.expose_secret()) else {
            continue;
        };
        let scheme = url.scheme().to_owned();
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default().or(Some(3478)))
        else {
            continue;
        };
        let user = urlencoding_decode(url.username());
        let password = urlencoding_decode(url.password().unwrap_or_default());
        links.push(format!(
            "<{scheme}:{host}:{port}>; rel=\"ice-server\"; username=\"{user}\"; credential=\"{password}\"; credential-type=\"password\""
        ));
    }
    links
}

/// A URL's user or password as it was before it was escaped into the URL.
fn urlencoding_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_are_links_with_turn_credentials_unescaped() {
        let webrtc = WebRtcSettings {
            stun: Some("stun://stun.example.net:3478".into()),
            turn: vec![
                "turn://alice:p%40ss@turn.example.net:3478"
                    .to_owned()
                    .into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            ice_server_links(&webrtc),
            [
                "<stun:stun.example.net:3478>; rel=\"ice-server\"",
                "<turn:turn.example.net:3478>; rel=\"ice-server\"; username=\"alice\"; credential=\"p@ss\"; credential-type=\"password\"",
            ]
        );
    }
}
