//! The operator console at `GET /`: static files embedded in the binary (`console/` in the
//! repository), so it works offline and needs no front-end build. Every answer carries a
//! Content-Security-Policy that admits scripts, styles and connections from this server
//! only, and no inline script: a session's fields shown in the page can never run as code.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Same origin only; `blob:` for the player (Media Source Extensions hand the video element
/// a blob URL); no inline script or style element; not framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
     worker-src 'self' blob:; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", JS),
    asset!("views.js", JS),
    asset!("session.js", JS),
    asset!("style.css", CSS),
    asset!("icon.svg", "image/svg+xml"),
    asset!("vendor/mpegts.js", JS),
    asset!("vendor/uPlot.iife.min.js", JS),
    asset!("vendor/uPlot.min.css", CSS),
];

/// `/` and `/console/...`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { answer("index.html") }))
        .route("/favicon.ico", get(|| async { answer("icon.svg") }))
        .route(
            "/console/{*file}",
            get(|Path(file): Path<String>| async move { answer(&file) }),
        )
}

fn answer(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_TYPE, asset.content_type);
    set(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_FRAME_OPTIONS, "DENY");
    // The files change with the binary; a stale page after an upgrade would confuse more
    // than the few kilobytes a cache saves.
    set(header::CACHE_CONTROL, "no-cache");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_reference_is_an_embedded_file() {
        let index = std::str::from_utf8(ASSETS[0].body).unwrap();
        for reference in index.split('"').filter(|s| s.starts_with("/console/")) {
            let name = reference.trim_start_matches("/console/");
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html names {reference}, which is not embedded"
            );
        }
        for script in index.split("<script").skip(1) {
            let tag = &script[..script.find('>').unwrap()];
            let body = &script[tag.len() + 1..];
            assert!(
                tag.contains("src=") && body.starts_with("</script>"),
                "an inline script: <script{tag}>"
            );
        }
        assert!(!index.contains("style="), "no inline style");
    }

    #[test]
    fn an_unknown_file_is_404_and_a_known_one_carries_the_policy() {
        assert_eq!(answer("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        let ok = answer("app.js");
        assert_eq!(ok.status(), StatusCode::OK);
        let csp = ok.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    }
}
