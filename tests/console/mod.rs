//! The operator console in a real browser: Debian's headless Chromium driven through
//! ChromeDriver (WebDriver), against `callfeed serve --emulator` run as a user would.
//! Set `CALLFEED_SCREENSHOTS=DIR` to keep screenshots of the sessions and session views.

mod browser;
mod control;
mod feeds;
mod go_live;
mod http;
mod monitor;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Child;

use crate::common;
use browser::{Browser, errors, text_of};
use http::{EventStream, request};

const TOKEN: &str = "console-test-token-7f3a";

/// `callfeed serve --emulator` on a free loopback port, with an API token.
async fn serve() -> (Child, String) {
    serve_with(&[]).await
}

/// The same, with `extra` arguments.
async fn serve_with(extra: &[&str]) -> (Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = common::callfeed_cli("callfeed-console-test");
    cmd.args([
        "serve",
        "--emulator",
        "--listen",
        "127.0.0.1:0",
        "--callee-answers-after",
        "300",
    ])
    .args(extra)
    .env("CALLFEED_API_TOKEN", TOKEN)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("callfeed serve starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve prints its address in time")
        .unwrap()
        .expect("a line");
    let v: Value = serde_json::from_str(&line).unwrap();
    (child, v["api"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_starts_watches_hears_and_stops_a_session_from_the_console() {
    let (_serve, api) = serve().await;
    let browser = Browser::start().await;
    browser.open_sign_in(&api).await;
    // Signing in with the keyboard: the token, then Enter.
    browser.sign_in(TOKEN).await;
    let href = browser.js("return location.href").await;
    assert!(
        !href.as_str().unwrap().contains(TOKEN),
        "the token went into the URL: {href}"
    );
    let history = browser
        .js("return document.cookie + ' ' + localStorage.length")
        .await;
    assert_eq!(
        history,
        json!(" 0"),
        "the token is in no script-readable cookie nor localStorage"
    );

    // A session from the form, with its default test source.
    browser.open_form().await;
    browser.type_into("#f-max_duration_secs", "120").await;
    browser.click("#new-session button[type=submit]").await;
    browser
        .until_text("#session-phase", "ingesting", Duration::from_secs(30))
        .await;
    let id = browser
        .js("return decodeURIComponent(location.hash.slice(4))")
        .await;
    let id = id.as_str().unwrap().to_owned();

    // The player plays the live stream in the page.
    let played = browser
        .until(
            "the player's currentTime advances",
            Duration::from_secs(30),
            "const v = document.getElementById('player'); return v && v.currentTime > 1.5 ? v.currentTime : null;",
        )
        .await;
    assert!(played.as_f64().unwrap() > 1.5);

    // What the room observer heard: the test source's 440 Hz tone.
    let hz = browser
        .until_hz("the room observer's tone", "[data-fact=room_tone]")
        .await;
    assert!((hz - 440.0).abs() < 30.0, "the room heard {hz} Hz");
    // Media charts from the live figures.
    browser
        .until(
            "a chart of the stream",
            Duration::from_secs(10),
            "return document.querySelector('.charts .chart canvas')",
        )
        .await;
    assert_eq!(
        browser
            .js(&text_of("[data-fact=call_id]"))
            .await
            .as_str()
            .map(str::len)
            .map(|n| n > 0),
        Some(true)
    );
    if std::env::var_os("CALLFEED_SCREENSHOTS").is_some() {
        // A few seconds of figures in the charts, and the whole page in the picture.
        browser.client.set_window_size(1280, 1750).await.unwrap();
        browser
            .until(
                "some seconds of video in the room",
                Duration::from_secs(20),
                "const e = document.querySelector('[data-fact=room_frames]'); return e && Number(e.textContent) > 240;",
            )
            .await;
        browser.screenshot("console-session.png").await;
        browser.client.set_window_size(1280, 1000).await.unwrap();
    }

    // The sessions view shows it live, with its room, callees and mode.
    browser.click("#nav a[href='#/']").await;
    let row = format!("tr[data-session='{id}']");
    browser
        .until(
            "the session in the list",
            Duration::from_secs(10),
            &format!("return document.querySelector(\"{row}\")"),
        )
        .await;
    let cells = browser
        .js(&format!(
            "return [...document.querySelectorAll(\"{row} td\")].map(td => td.textContent)"
        ))
        .await;
    let cells: Vec<String> = serde_json::from_value(cells).unwrap();
    assert_eq!(cells[1], "jack", "{cells:?}");
    assert!(cells[2].ends_with("(string)"), "{cells:?}");
    assert!(cells[3].starts_with("ingesting"), "{cells:?}");
    assert_eq!(cells[4], "live", "{cells:?}");
    assert_eq!(
        browser.js(&text_of("[data-count=ingesting] .n")).await,
        json!("1")
    );
    browser.screenshot("console-sessions.png").await;

    // With the keyboard: the row's link keeps the focus while the list redraws, and Enter
    // opens the session.
    browser
        .js(&format!(
            "document.querySelector(\"{row} a\").focus(); return true"
        ))
        .await;
    browser.redrawn(&format!("{row} td:nth-child(4)")).await;
    assert_eq!(
        browser
            .js("return document.activeElement.getAttribute('href')")
            .await,
        json!(format!("#/s/{id}")),
        "the focus stayed on the row's link through the redraws"
    );
    browser.press_enter().await;
    browser
        .until(
            "the stop button",
            Duration::from_secs(5),
            "const b = document.getElementById('stop'); return b && !b.hidden;",
        )
        .await;
    assert_eq!(
        browser.js("return document.activeElement.id").await,
        json!("main"),
        "a keyboard user lands at the top of the opened view"
    );
    // Stop, from the keyboard: the button keeps the focus while the view redraws.
    browser
        .js("document.getElementById('stop').focus(); return true")
        .await;
    browser.redrawn("[data-fact=Elapsed]").await;
    assert_eq!(
        browser.js("return document.activeElement.id").await,
        json!("stop")
    );
    browser.press_enter().await;
    browser
        .until_text("#session-result", "stopped", Duration::from_secs(30))
        .await;

    // A field the API refuses is shown next to that field.
    browser.open_form().await;
    browser.type_into("#f-ring_timeout_secs", "5").await;
    browser.click("#new-session button[type=submit]").await;
    let message = browser
        .until(
            "the 422 next to its field",
            Duration::from_secs(10),
            "const e = document.querySelector('[data-error-for=ring_timeout_secs]'); return e && !e.hidden ? e.textContent : null;",
        )
        .await;
    assert!(message.as_str().unwrap().contains("10 to 600"), "{message}");
    assert_eq!(
        browser.js("return document.activeElement.id").await,
        json!("f-ring_timeout_secs"),
        "the field to fix has the focus"
    );
    assert_eq!(
        browser.js("return location.hash").await,
        json!("#/new"),
        "no session started"
    );

    // At a phone's width the list and the session fit without sideways scrolling.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.click("#nav a[href='#/']").await;
    browser
        .until(
            "the list",
            Duration::from_secs(5),
            &format!("return document.querySelector(\"{row}\")"),
        )
        .await;
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth \
        && [...document.querySelectorAll('.table-wrap, .facts, .charts')].every(e => e.scrollWidth <= e.clientWidth + 1)";
    assert_eq!(
        browser.js(fits).await,
        json!(true),
        "the list scrolls sideways at 390 px"
    );
    browser.click(&format!("{row} a")).await;
    browser
        .until(
            "the session",
            Duration::from_secs(5),
            &text_of("#session-result"),
        )
        .await;
    assert_eq!(
        browser.js(fits).await,
        json!(true),
        "the session scrolls sideways at 390 px"
    );

    // Nothing went wrong in the page but the one refusal asked for, and it asked nothing of
    // any other origin.
    let entries = browser.console_entries().await;
    let errors = errors(&entries);
    assert_eq!(errors.len(), 1, "console errors: {entries:#?}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("422"),
        "{entries:#?}"
    );
    let origins = browser
        .js("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
        .await;
    for origin in origins.as_array().unwrap() {
        assert_eq!(origin.as_str().unwrap(), api, "a request went elsewhere");
    }
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_plays_in_the_page_from_the_file_the_cloud_plays() {
    let samples = concat!(env!("CARGO_MANIFEST_DIR"), "/media-samples");
    let (_serve, api) = serve_with(&["--media-root", samples]).await;
    let created = reqwest::Client::new()
        .post(format!("{api}/v1/sessions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(
            json!({"to": ["jack"], "room": "announcement-room", "media_type": "audio",
                "media": format!("{samples}/tone-440hz-2s.ogg"), "repeat": 5})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let browser = Browser::start().await;
    browser.open_sign_in(&api).await;
    browser.sign_in(TOKEN).await;
    browser
        .js(&format!("location.hash = '#/s/{id}'; return true"))
        .await;
    let source = browser
        .until(
            "the announcement playing in the page",
            Duration::from_secs(30),
            "const v = document.getElementById('player'); return v && v.currentTime > 0.5 ? v.currentSrc : null;",
        )
        .await;
    let source = source.as_str().unwrap();
    assert!(
        source.starts_with(&api) && source.ends_with(".mp4"),
        "{source}"
    );
    assert_eq!(
        browser.js(&text_of("[data-fact=mode]")).await,
        json!("announcement")
    );
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_shows_an_error_and_nothing_else() {
    let (_serve, api) = serve().await;
    // A session exists, so "nothing else" is something the page could have shown.
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{api}/v1/sessions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(json!({"to": ["jack"], "room": "hidden-room", "media": "test:", "max_duration_secs": 30}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let browser = Browser::start().await;
    browser.open_sign_in(&api).await;
    browser.type_into("#token", "not-the-token\n").await;
    let message = browser
        .until(
            "the refusal",
            Duration::from_secs(10),
            "const e = document.getElementById('login-error'); return e && !e.hidden ? e.textContent : null;",
        )
        .await;
    assert!(
        message.as_str().unwrap().contains("not accepted"),
        "{message}"
    );
    let page = browser.js("return document.body.innerText").await;
    assert!(!page.as_str().unwrap().contains("hidden-room"), "{page}");
    assert_eq!(
        browser
            .js("return document.getElementById('nav').hidden")
            .await,
        json!(true)
    );
    assert_eq!(
        browser.js("return sessionStorage.length").await,
        json!(0),
        "a refused token is not kept"
    );
    assert_eq!(
        browser.js("return document.activeElement.id").await,
        json!("token")
    );
    // The refusal is the one error in the browser's console: the log is really read.
    let entries = browser.console_entries().await;
    let refused = errors(&entries);
    assert_eq!(refused.len(), 1, "{entries:#?}");
    assert!(
        refused[0]["message"].as_str().unwrap().contains("401"),
        "{entries:#?}"
    );
    browser.client.clone().close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_stream_takes_a_login_cookie_that_opens_nothing_else_and_resumes() {
    use reqwest::Method;
    let (_serve, api) = serve().await;
    let bearer = format!("Bearer {TOKEN}");

    // The page: a policy that admits no inline script and no other origin.
    let (status, headers, page) = request(Method::GET, &format!("{api}/"), &[]).await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(page.contains("/console/main.js"));
    for script in page.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap()];
        assert!(
            tag.contains("src=") && script[tag.len() + 1..].starts_with("</script>"),
            "an inline script: <script{tag}>"
        );
    }

    // Without a token nothing; a wrong token gets no cookie.
    let events = format!("{api}/v1/events");
    assert_eq!(request(Method::GET, &events, &[]).await.0, 401);
    let login = format!("{api}/v1/console/login");
    let (status, headers, _) =
        request(Method::POST, &login, &[("authorization", "Bearer nope")]).await;
    assert_eq!(status, 401);
    assert!(headers.get("set-cookie").is_none());
    let (status, headers, _) = request(Method::POST, &login, &[("authorization", &bearer)]).await;
    assert_eq!(status, 204);
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/v1/events"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie is not the token");
    let pair = cookie.split(';').next().unwrap().to_owned();

    // The cookie opens the event stream and nothing else.
    for (method, path) in [
        (Method::GET, "/v1/sessions"),
        (Method::POST, "/v1/sessions"),
        (Method::GET, "/v1/nodes"),
        (Method::POST, "/v1/drain"),
    ] {
        let (status, _, _) = request(
            method.clone(),
            &format!("{api}{path}"),
            &[("cookie", &pair)],
        )
        .await;
        assert_eq!(status, 401, "{method} {path} with the console cookie");
    }

    // The stream opens with every session, then each session's events as they happen.
    let mut stream = EventStream::open(&events, &[("cookie", &pair)]).await;
    stream.until(|evs| !evs.is_empty()).await;
    let created = reqwest::Client::new()
        .post(format!("{api}/v1/sessions"))
        .header("authorization", &bearer)
        .header("content-type", "application/json")
        .body(json!({"to": ["jack"], "room": "feed-room", "media": "test:", "media_type": "audio", "max_duration_secs": 2}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = serde_json::from_str(&created.text().await.unwrap()).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let seen = stream
        .until(|evs| {
            evs.iter()
                .any(|(kind, _, data)| kind == "report" && data.contains(&id))
        })
        .await
        .to_vec();
    assert_eq!(seen[0].0, "sessions", "{seen:#?}");
    assert!(!seen[0].2.contains(&id), "created after the stream opened");
    let numbered: Vec<_> = seen
        .iter()
        .filter(|(kind, _, _)| kind == "status" || kind == "report")
        .collect();
    let phases: Vec<String> = numbered
        .iter()
        .filter(|(kind, _, _)| kind == "status")
        .map(|(_, _, data)| {
            serde_json::from_str::<Value>(data).unwrap()["data"]["phase"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut order = phases.iter();
    for phase in ["preparing", "ringing", "answered", "ingesting"] {
        assert!(order.any(|p| p == phase), "{phase} in order: {phases:?}");
    }
    assert!(
        seen.iter().any(|(kind, id, data)| kind == "stats"
            && id.is_empty()
            && data.contains("elapsed_ms")),
        "samples come unnumbered: {seen:#?}"
    );

    // Resuming from an event gets exactly what came after it.
    let (_, middle_id, _) = numbered[numbered.len() - 2].clone();
    let mut again =
        EventStream::open(&events, &[("cookie", &pair), ("last-event-id", &middle_id)]).await;
    let resumed: Vec<_> = again
        .until(|evs| evs.iter().any(|(kind, _, _)| kind == "report"))
        .await
        .iter()
        .filter(|(kind, _, _)| kind != "stats")
        .cloned()
        .collect();
    assert_eq!(resumed.len(), 1, "{resumed:#?}");
    assert_eq!(resumed[0], numbered[numbered.len() - 1].clone());

    // Signed out: the cookie opens nothing.
    let (status, headers, _) = request(
        Method::POST,
        &format!("{api}/v1/events/logout"),
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(status, 204);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        request(Method::GET, &events, &[("cookie", &pair)]).await.0,
        401
    );
}
