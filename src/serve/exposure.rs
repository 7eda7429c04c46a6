//! What a web page may make this server do. A browser visits any page its user opens, and a
//! page may send requests to `127.0.0.1`: on a node with no API token (the default on
//! loopback, and behind a reverse proxy) that would be enough to start sessions. So:
//!
//! - **Without a token, only our own names are answered.** A request whose `Host` is not the
//!   address it reached (or the listen address as bound), `localhost`, `127.0.0.1` or `[::1]`
//!   (with our port or none), or the `--public-url` host, is refused with 421. A DNS-rebinding
//!   page reaches us under its own name, so this is what defeats it.
//! - **Without a token, another origin may not change anything.** A POST, PUT, PATCH or DELETE
//!   whose `Origin` is not the host it was sent to is refused with 403; programs send no
//!   `Origin`, browsers always do across origins. (A bodyless `POST /v1/drain` from a page
//!   needs no preflight; this is what stops it.)
//! - **A body sent to `/v1/` must be `application/json`**, whatever the token: a browser can
//!   send `text/plain` or a form across origins without asking, but not JSON. 415 otherwise.
//! - **No preflight is ever granted**: OPTIONS is refused and no response carries CORS
//!   headers, so a page of another origin can send nothing else either.
//!
//! With a token none of the first two is needed: a page cannot attach it, and the console's
//! cookie opens only the event stream, which changes nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::server::ConnectionInfo;

/// How a node without a token tells its own names from a stranger's.
#[derive(Debug, Clone, Default)]
pub struct Exposure {
    /// Whether the Host and Origin rules apply (no API token).
    tokenless: bool,
    /// The listen address as bound (its real port when asked for port 0).
    listen: Option<SocketAddr>,
    /// The `--public-url` host (lowercase, IPv6 in brackets) and its port.
    public: Option<(String, u16)>,
}

impl Exposure {
    /// The rules for a node with or without a token, bound at `listen`, reached by the cloud
    /// at `public_url`. A public URL without a host names nothing.
    pub fn new(tokenless: bool, listen: Option<SocketAddr>, public_url: Option<&str>) -> Self {
        let public = public_url
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| {
                let port = u.port_or_known_default()?;
                Some((u.host_str()?.to_ascii_lowercase(), port))
            });
        Self {
            tokenless,
            listen,
            public,
        }
    }

    /// Whether `authority` (a `Host` header) names this node, reached at `local`.
    fn names_us(&self, authority: &Authority, local: Option<SocketAddr>) -> bool {
        let host = authority.host().to_ascii_lowercase();
        let port = authority.port_u16();
        let ours = [self.listen, local];
        let our_port = |p: u16| ours.iter().flatten().any(|a| a.port() == p);
        if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") && port.is_none_or(our_port)
        {
            return true;
        }
        if ours
            .iter()
            .flatten()
            .any(|a| host == ip_host(a.ip()) && port == Some(a.port()))
        {
            return true;
        }
        self.public
            .as_ref()
            .is_some_and(|(h, p)| host == *h && port.is_none_or(|port| port == *p))
    }
}

/// An address as a `Host` header names it.
fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The hosts a request names: its `Host` header and, in absolute form, its URI's. Either
/// unreadable counts as a stranger's.
fn named_hosts(request: &Request) -> Option<Vec<Authority>> {
    let mut named = Vec::new();
    for value in request.headers().get_all(header::HOST) {
        named.push(value.to_str().ok()?.parse::<Authority>().ok()?);
    }
    if let Some(authority) = request.uri().authority() {
        named.push(authority.clone());
    }
    Some(named)
}

/// Whether a request's `Origin` is another than the host it was sent to (`null` is).
fn cross_origin(headers: &HeaderMap, host: &Authority) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(origin) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        return true;
    };
    let (Some(origin_host), Some(origin_port)) =
        (origin.host_str(), origin.port_or_known_default())
    else {
        return true;
    };
    !(origin_host.eq_ignore_ascii_case(host.host())
        && host.port_u16().unwrap_or(origin_port) == origin_port)
}

fn changes_state(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Whether a request carries a body: a length over zero, or one sent in chunks.
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) != Some(0))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: every rule of the module docs, before anything else runs.
pub async fn guard(
    State(exposure): State<Arc<Exposure>>,
    request: Request,
    next: Next,
) -> Response {
    let local = request
        .extensions()
        .get::<ConnectionInfo>()
        .map(|c| c.local);
    let named = named_hosts(&request).unwrap_or_default();
    let host = named.first().filter(|_| {
        named
            .iter()
            .all(|authority| exposure.names_us(authority, local))
    });
    if exposure.tokenless && host.is_none() {
        tracing::debug!(host = ?named, "refused a request for another host name");
        return super::api::problem(
            StatusCode::MISDIRECTED_REQUEST,
            "this node has no API token, so it answers only requests for its own address \
             (its listen address, localhost, or the --public-url host): use one of those, \
             or set CALLFEED_API_TOKEN",
        );
    }
    if request.method() == Method::OPTIONS {
        return super::api::problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "OPTIONS is not served: this API grants no cross-origin (CORS) requests",
        );
    }
    let changes = changes_state(request.method());
    if changes
        && request.uri().path().starts_with("/v1/")
        && has_body(request.headers())
        && !is_json(request.headers())
    {
        return super::api::problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request body must be JSON, sent with Content-Type: application/json",
        );
    }
    if let Some(host) = host.filter(|_| exposure.tokenless && changes)
        && cross_origin(request.headers(), host)
    {
        return super::api::problem(
            StatusCode::FORBIDDEN,
            "this node has no API token, so it takes no changes from a page of another \
             origin: send the request from a program, or set CALLFEED_API_TOKEN",
        );
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(s: &str) -> Authority {
        s.parse().unwrap()
    }

    #[test]
    fn our_names_are_the_bound_address_loopback_names_and_the_public_host() {
        let exposure = Exposure::new(
            true,
            Some("127.0.0.1:8730".parse().unwrap()),
            Some("https://Callfeed.example.com/base"),
        );
        let local = Some("127.0.0.1:8730".parse().unwrap());
        for ours in [
            "127.0.0.1:8730",
            "localhost:8730",
            "LOCALHOST",
            "127.0.0.1",
            "[::1]:8730",
            "callfeed.example.com",
            "callfeed.example.com:443",
        ] {
            assert!(exposure.names_us(&authority(ours), local), "{ours}");
        }
        for stranger in [
            "evil.example:8730",
            "evil.example",
            "localhost:9999",
            "127.0.0.2:8730",
            "callfeed.example.com:8730",
            "localhost.evil.example",
        ] {
            assert!(
                !exposure.names_us(&authority(stranger), local),
                "{stranger}"
            );
        }
    }

    #[test]
    fn a_node_bound_everywhere_answers_to_the_address_the_client_reached() {
        let exposure = Exposure::new(true, Some("0.0.0.0:8730".parse().unwrap()), None);
        let local = Some("10.1.2.3:8730".parse().unwrap());
        assert!(exposure.names_us(&authority("10.1.2.3:8730"), local));
        assert!(!exposure.names_us(&authority("10.1.2.4:8730"), local));
        let v6 = Exposure::new(true, Some("[::1]:8730".parse().unwrap()), None);
        assert!(v6.names_us(&authority("[::1]:8730"), None));
    }

    #[test]
    fn an_origin_is_cross_unless_it_is_the_host_sent_to() {
        let with = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, origin.parse().unwrap());
            h
        };
        let host = authority("127.0.0.1:8730");
        assert!(!cross_origin(&HeaderMap::new(), &host));
        assert!(!cross_origin(&with("http://127.0.0.1:8730"), &host));
        assert!(cross_origin(&with("http://evil.example"), &host));
        assert!(cross_origin(&with("http://127.0.0.1:3000"), &host));
        assert!(cross_origin(&with("null"), &host));
        assert!(!cross_origin(
            &with("https://callfeed.example.com"),
            &authority("callfeed.example.com")
        ));
    }

    #[test]
    fn a_body_is_a_length_over_zero_or_chunks_and_json_may_name_its_charset() {
        let headers = |pairs: &[(header::HeaderName, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k, v.parse().unwrap());
            }
            h
        };
        assert!(!has_body(&headers(&[])));
        assert!(!has_body(&headers(&[(header::CONTENT_LENGTH, "0")])));
        assert!(has_body(&headers(&[(header::CONTENT_LENGTH, "12")])));
        assert!(has_body(&headers(&[(
            header::TRANSFER_ENCODING,
            "chunked"
        )])));
        assert!(is_json(&headers(&[(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[(header::CONTENT_TYPE, "text/plain")])));
        assert!(!is_json(&headers(&[])));
    }
}
