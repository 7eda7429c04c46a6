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
    // ES modules: main.js wires the others; views/ imports only the helpers beside main.js.
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("feed.js", JS),
    asset!("format.js", JS),
    asset!("record.js", JS),
    asset!("store.js", JS),
    // This browser's WHIP publish, which outlives the view that started it.
    asset!("whip.js", JS),
    asset!("views/counts.js", JS),
    asset!("views/feed.js", JS),
    asset!("views/feeds.js", JS),
    asset!("views/go-live.js", JS),
    asset!("views/new-session.js", JS),
    asset!("views/session.js", JS),
    asset!("views/session/charts.js", JS),
    asset!("views/session/control.js", JS),
    asset!("views/session/event-log.js", JS),
    asset!("views/session/facts.js", JS),
    asset!("views/session/monitor.js", JS),
    asset!("views/session/player.js", JS),
    asset!("views/session/room.js", JS),
    asset!("views/sessions.js", JS),
    asset!("views/sign-in.js", JS),
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

    /// The files a console module imports (`import … from '…';` lines), resolved from its
    /// own folder.
    fn imports(module: &Asset) -> Vec<String> {
        let text = std::str::from_utf8(module.body).unwrap();
        let folder = module
            .name
            .rsplit_once('/')
            .map_or("", |(folder, _)| folder);
        text.lines()
            .filter(|line| line.starts_with("import "))
            .filter_map(|line| line.split('\'').nth(1))
            .map(|target| {
                let mut path: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
                for part in target.split('/') {
                    match part {
                        "." => {}
                        ".." => assert!(path.pop().is_some(), "{}: {target}", module.name),
                        part => path.push(part),
                    }
                }
                path.join("/")
            })
            .collect()
    }

    /// A missing entry in `ASSETS` would only show as a 404 in a browser; and the imports run
    /// one way: views import the helpers (and their own parts), never the wiring in main.js
    /// and feed.js, and the helpers import no view.
    #[test]
    fn every_import_is_embedded_and_views_import_only_helpers() {
        const HELPERS: &[&str] = &[
            "api.js",
            "dom.js",
            "format.js",
            "record.js",
            "store.js",
            "whip.js",
        ];
        let modules = ASSETS
            .iter()
            .filter(|a| a.name.ends_with(".js") && !a.name.starts_with("vendor/"));
        for module in modules {
            for target in imports(module) {
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {target}, which is not embedded",
                    module.name
                );
                let allowed = if module.name.starts_with("views/") {
                    HELPERS.contains(&target.as_str()) || target.starts_with("views/")
                } else if HELPERS.contains(&module.name) {
                    HELPERS.contains(&target.as_str())
                } else {
                    target != "main.js"
                };
                assert!(allowed, "{} imports {target}", module.name);
            }
        }
    }

    #[test]
    fn an_unknown_file_is_404_and_a_known_one_carries_the_policy() {
        assert_eq!(answer("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        let ok = answer("main.js");
        assert_eq!(ok.status(), StatusCode::OK);
        let csp = ok.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    }
}
