//! Sessions through an RTMP relay: a real nginx-rtmp stands in for Tencent CSS, SRS or any
//! relay, and the emulator's room observer pulls the relay's play URL, as the cloud would.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;
use crate::common::*;
use callfeed::cloud::http::HttpSettings;
use callfeed::cloud::{RoomRef, UserId};
use callfeed::emulator::Emulator;
use callfeed::media::topology::Topologies;
use callfeed::publish::relay::RelayFields;
use callfeed::session::SessionSpec;
use callfeed::session::driver::{self, DriverSettings, Status};
use callfeed::session::state::Outcome;
use md5::{Digest, Md5};
use tokio::process::Command;

fn callfeed() -> Command {
    callfeed_cli("callfeed-relay-state")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `callfeed call --emulator` of a 660 Hz tone for 4 s with `relay` flags; exit code and
/// JSON report.
async fn call_through(relay: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec![
        "call",
        "--emulator",
        "--to",
        "jack",
        "--room",
        "relay-room",
        "--media",
        "test:black+tone=660",
        "--media-type",
        "audio",
        "--max-duration",
        "4",
        "--callee-answers-after",
        "300",
        "--json",
    ];
    args.extend_from_slice(relay);
    let out = callfeed().args(&args).output().await.unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code(), report, stderr(&out))
}

/// The cloud heard the tone in its room, pulled from the relay's play URL.
fn assert_heard_from(report: &serde_json::Value, play_prefix: &str) {
    assert_eq!(report["result"], "completed", "{report:#}");
    let heard = &report["observed"]["media"][0];
    let pulled = heard["stream_url"].as_str().unwrap();
    assert!(pulled.starts_with(play_prefix), "{report:#}");
    assert_eq!(pulled, report["relay"]["play_url"], "{report:#}");
    assert_eq!(heard["room_id"], "relay-room");
    assert!(
        (heard["dominant_hz"].as_f64().unwrap() - 660.0).abs() < 5.0,
        "{report:#}"
    );
    assert!(heard["audio_ms"].as_u64().unwrap() > 2000, "{report:#}");
    // The relay was tried before the phone rang, and took the stream before it was bound.
    let relay = &report["relay"];
    let timings = &report["timings"];
    assert!(relay["checked_ms"].as_u64().unwrap() <= timings["call_started_ms"].as_u64().unwrap());
    assert!(
        relay["publishing_ms"].as_u64().unwrap() <= timings["ingest_started_ms"].as_u64().unwrap()
    );
    assert!(relay["bytes_out"].as_u64().unwrap() > 10_000, "{report:#}");
}

#[tokio::test]
async fn a_call_through_a_relay_is_heard_from_the_relay_not_the_node() {
    let nginx = Nginx::start();
    let template = format!("rtmp://127.0.0.1:{}/live/{{stream}}", nginx.port);
    let (code, report, err) =
        call_through(&["--relay-push", &template, "--relay-play", &template]).await;
    assert_eq!(code, Some(0), "{err}");
    let prefix = format!("rtmp://127.0.0.1:{}/live/callfeed-", nginx.port);
    assert_heard_from(&report, &prefix);
}

/// A CSS-like push authentication for nginx's `on_publish`: a push is taken when its
/// txSecret is MD5(key + stream name + txTime) and txTime is not past, as CSS checks it.
struct CssAuth {
    url: String,
    accepted: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

async fn css_auth(key: &'static str) -> CssAuth {
    use axum::http::StatusCode;
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (ok, no) = (accepted.clone(), refused.clone());
    let check = move |body: String| {
        let (ok, no) = (ok.clone(), no.clone());
        async move {
            let form: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
            let field = |k: &str| form.get(k).cloned().unwrap_or_default();
            let (name, time) = (field("name"), field("txTime"));
            let expected = hex::encode(Md5::digest(format!("{key}{name}{time}")));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let valid = u64::from_str_radix(&time, 16).is_ok_and(|t| t > now);
            if valid && field("txSecret") == expected {
                ok.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            } else {
                no.fetch_add(1, Ordering::SeqCst);
                StatusCode::FORBIDDEN
            }
        }
    };
    let app = axum::Router::new().route("/on_publish", axum::routing::post(check));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/on_publish", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    CssAuth {
        url,
        accepted,
        refused,
    }
}

#[tokio::test]
async fn css_pushes_are_signed_per_session_and_a_wrong_key_is_refused_before_anything_rings() {
    let auth = css_auth("relaykey42").await;
    let nginx = Nginx::start_with(Some(&auth.url));
    let domain = format!("127.0.0.1:{}", nginx.port);
    let css = |key: &'static str| {
        [
            "--css-push-domain".to_owned(),
            domain.clone(),
            "--css-play-domain".to_owned(),
            domain.clone(),
            "--css-push-key".to_owned(),
            key.to_owned(),
            "--css-play-format".to_owned(),
            "rtmp".to_owned(),
        ]
    };
    let right = css("relaykey42");
    let right: Vec<&str> = right.iter().map(String::as_str).collect();
    let (code, report, err) = call_through(&right).await;
    assert_eq!(code, Some(0), "{err}");
    assert_heard_from(&report, &format!("rtmp://{domain}/live/callfeed-"));
    // The test push and the push itself, each signed as CSS checks it.
    assert_eq!(auth.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(auth.refused.load(Ordering::SeqCst), 0);
    let play = report["relay"]["play_url"].as_str().unwrap();
    assert!(!play.contains("txSecret") && !play.contains("relaykey42"));

    let wrong = css("not-the-key");
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let (code, report, _) = call_through(&wrong).await;
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["result"], "failed");
    assert_eq!(report["stage"], "relay");
    let reason = report["reason"].as_str().unwrap();
    assert!(reason.contains("refused the push"), "{reason}");
    assert!(reason.contains("push key"), "{reason}");
    assert!(!reason.contains("not-the-key"), "{reason}");
    // Nothing rang.
    assert!(report["call_id"].is_null(), "{report:#}");
    assert!(report["timings"]["call_started_ms"].is_null());
    assert_eq!(auth.refused.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bad_relays_are_refused_before_anything_rings_naming_the_field() {
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "--relay-push",
                "http://127.0.0.1/live/{stream}",
                "--relay-play",
                "rtmp://127.0.0.1/live/{stream}",
            ],
            "relay.push",
        ),
        (
            &["--relay-push", "rtmp://127.0.0.1/live/{stream}"],
            "relay.play",
        ),
        (
            &[
                "--relay-push",
                "rtmp://127.0.0.1/live/{stream}",
                "--relay-play",
                "file:///etc/passwd",
            ],
            "relay.play",
        ),
        (
            &[
                "--css-push-domain",
                "push.example.com",
                "--css-play-domain",
                "play.example.com",
                "--css-push-key",
                "key with space",
            ],
            "relay.css_push_key",
        ),
        (
            &[
                "--css-push-domain",
                "no-such-push-domain.invalid",
                "--css-play-domain",
                "play.example.com",
                "--css-push-key",
                "k",
            ],
            "no-such-push-domain.invalid",
        ),
        (
            &[
                "--css-push-domain",
                "push.example.com",
                "--css-push-key",
                "k",
            ],
            "relay.css_play_domain",
        ),
    ];
    for (relay, needle) in cases {
        let (code, _, err) = call_through(relay).await;
        assert_eq!(code, Some(2), "{relay:?}: {err}");
        assert!(err.contains(needle), "{relay:?}: `{needle}` not in {err}");
        assert!(!err.contains("key with space"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_going_away_mid_call_is_ridden_out_in_the_same_call() {
    let mut nginx = Nginx::start();
    let port = nginx.port;
    let emulator = Arc::new(
        Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    let cloud = test_clients(
        &format!("{}/", emulator.endpoints().im_endpoint),
        APP_KEY,
        HttpSettings::default(),
    );
    let template = format!("rtmp://127.0.0.1:{port}/live/{{stream}}");
    let relay = RelayFields {
        push: Some(template.clone()),
        play: Some(template),
        ..Default::default()
    }
    .validate()
    .unwrap();
    let spec = SessionSpec {
        callees: vec![UserId::new("to", "jack").unwrap()],
        robot: UserId::new("robot", "robot").unwrap(),
        ingest_user: UserId::new("robot", "robot").unwrap(),
        room: RoomRef::string("relay-outage").unwrap(),
        media: "test:black+tone=550".into(),
        input: callfeed::media::input::InputSpec::parse("test:black+tone=550").unwrap(),
        source_guard: None,
        media_type: callfeed::cloud::call::MediaType::Audio,
        profile: callfeed::media::contract::Profile::Audio,
        ingest_at: callfeed::session::state::IngestAt::Answer,
        repeat: None,
        ring_timeout: Duration::from_secs(30),
        max_duration: Some(Duration::from_secs(20)),
        live: false,
        audio_track: Default::default(),
        direct: Default::default(),
        relay,
        ring_when_live: None,
        stays_after_feed: false,
        start: None,
        monitor: None,
    };
    let (status_tx, mut status) = tokio::sync::watch::channel(Status::default());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = callfeed::publish::StreamServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut settings = DriverSettings::new(Arc::new(server));
    settings.room_witness = Some(callfeed::app::room_witness(&emulator));
    let session = tokio::spawn({
        let cloud = cloud.clone();
        async move {
            driver::run(
                uuid::Uuid::new_v4().to_string(),
                spec,
                &cloud,
                None,
                settings,
                Topologies::builtin().unwrap(),
                driver::Controls {
                    status: status_tx,
                    stop: stop_rx,
                    nudge: Arc::new(tokio::sync::Notify::new()),
                    changes: None,
                },
            )
            .await
        }
    });
    let relay_state = |s: &Status| s.relay.as_ref().map(|r| (r.state, r.reconnects));
    let heard = |call_id: &str| {
        let view = emulator.call_view(call_id).unwrap_or_default();
        let tasks = view["media"].as_array().cloned().unwrap_or_default();
        tasks
            .iter()
            .filter_map(|t| t["audio_ms"].as_u64())
            .sum::<u64>()
    };
    let within = Duration::from_secs(20);
    // The room hears the relay's stream...
    let s = tokio::time::timeout(within, status.wait_for(|s| s.call_id.is_some()))
        .await
        .unwrap()
        .unwrap()
        .clone();
    let call_id = s.call_id.unwrap();
    wait_until(within, || heard(&call_id) > 1500).await;
    // ...the relay dies: the push is lost and retries...
    nginx.kill();
    tokio::time::timeout(
        within,
        status.wait_for(|s| relay_state(s).is_some_and(|(state, _)| state == "lost")),
    )
    .await
    .expect("the push noticed the relay gone")
    .unwrap();
    let before = heard(&call_id);
    // ...and comes back on the same address: the push publishes again and the room hears
    // the stream again, in the same call.
    let _nginx = Nginx::start_on(port);
    tokio::time::timeout(
        within,
        status.wait_for(|s| {
            relay_state(s)
                .is_some_and(|(state, reconnects)| state == "publishing" && reconnects > 0)
        }),
    )
    .await
    .expect("the push published again")
    .unwrap();
    wait_until(within, || heard(&call_id) > before + 1500).await;
    let report = tokio::time::timeout(Duration::from_secs(40), session)
        .await
        .expect("the session ends")
        .unwrap();
    assert_eq!(report.outcome, Outcome::Completed, "{report:#?}");
    assert!(report.relay.as_ref().unwrap().reconnects >= 1);
    let calls = reqwest::get(format!(
        "{}/emulator/v1/calls",
        emulator.endpoints().im_endpoint
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    let calls: serde_json::Value = serde_json::from_slice(&calls).unwrap();
    assert_eq!(
        calls["calls"].as_array().unwrap().len(),
        1,
        "one call: {calls:#}"
    );
}

/// Polls `done` every 100 ms until it holds, failing after `within`.
async fn wait_until(within: Duration, done: impl Fn() -> bool) {
    let until = std::time::Instant::now() + within;
    while !done() {
        assert!(std::time::Instant::now() < until, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_serve_client_may_not_point_the_relay_at_a_private_host() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let journal = tempfile::tempdir().unwrap();
    let (_service, api) =
        common::serve::start_service(&emulator, &journal.path().join("j.db"), |_| {}).await;
    let request = |relay: serde_json::Value| serde_json::json!({"to": ["jack"], "media": "test:tone", "room": "r1", "relay": relay});
    let cases = [
        (
            serde_json::json!({"push": "rtmp://127.0.0.1:1935/live/{stream}", "play": "rtmp://127.0.0.1/live/{stream}"}),
            "relay.push",
        ),
        (
            serde_json::json!({"push": "rtmp://169.254.169.254/live/{stream}", "play": "rtmp://x.example/live/{stream}"}),
            "relay.push",
        ),
        (
            serde_json::json!({"push": "rtmp://relay.example.com/live/{stream}"}),
            "relay.play",
        ),
        (
            serde_json::json!({"push": "http://relay.example.com/{stream}", "play": "rtmp://relay.example.com/{stream}"}),
            "relay.push",
        ),
        (
            serde_json::json!({"css_push_domain": "localhost", "css_play_domain": "p.example.com", "css_push_key": "k"}),
            "relay.css_push_domain",
        ),
        // What the cloud is sent to pull is judged like a direct URL.
        (
            serde_json::json!({"push": "rtmp://8.8.8.8/live/{stream}", "play": "http://127.0.0.1:8080/live/{stream}.flv"}),
            "relay.play",
        ),
        (
            serde_json::json!({"push": "rtmp://8.8.8.8/live/{stream}", "play": "rtmp://169.254.169.254/live/{stream}"}),
            "relay.play",
        ),
        // A per-session host name could resolve anywhere (a wildcard DNS answer).
        (
            serde_json::json!({"push": "rtmp://{stream}.relay.example/live/s", "play": "rtmp://8.8.8.8/live/{stream}"}),
            "relay.push",
        ),
        (
            serde_json::json!({"push": "rtmp://8.8.8.8/live/{stream}", "play": "https://{stream}.relay.example/live.flv"}),
            "relay.play",
        ),
    ];
    for (relay, field) in cases {
        let (code, body) = api.post(request(relay.clone())).await;
        assert_eq!(code, 422, "{relay}: {body}");
        assert_eq!(body["field"], field, "{relay}: {body}");
    }
    // A field the relay does not have is not ignored.
    for (relay, field) in [(serde_json::json!({"pull": "rtmp://x/{stream}"}), "pull")] {
        let (code, body) = api.post(request(relay.clone())).await;
        assert_eq!(code, 400, "{relay}: {body}");
        assert!(body.to_string().contains(field), "{relay}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_session_pushes_through_the_relay_it_asks_for_and_never_shows_its_key() {
    use callfeed::media::policy::{InputPolicy, Restrictions};
    let nginx = Nginx::start();
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let journal = tempfile::tempdir().unwrap();
    let (_service, api) =
        common::serve::start_service(&emulator, &journal.path().join("j.db"), |c| {
            // The operator allows this relay host, as --allow-url-host does.
            c.policy = InputPolicy::Restricted(
                Restrictions::new(&[], false, &["127.0.0.1".to_owned()]).unwrap(),
            );
        })
        .await;
    let push = format!(
        "rtmp://127.0.0.1:{}/live/{{stream}}?secret=hunter2",
        nginx.port
    );
    let play = format!("rtmp://127.0.0.1:{}/live/{{stream}}", nginx.port);
    let (code, created) = api
        .post(serde_json::json!({
            "to": ["jack"], "media": "test:black+tone=660", "room": "relay-api",
            "media_type": "audio", "max_duration_secs": 3,
            "relay": {"push": push, "play": play},
        }))
        .await;
    assert_eq!(code, 201, "{created}");
    let path = format!("/v1/sessions/{}", created["id"].as_str().unwrap());
    let done = api
        .until(&path, Duration::from_secs(30), |v| v["report"].is_object())
        .await;
    let report = &done["report"];
    assert_eq!(report["result"], "completed", "{done:#}");
    let relay = &report["relay"];
    let prefix = format!("rtmp://127.0.0.1:{}/live/callfeed-", nginx.port);
    assert!(
        relay["play_url"].as_str().unwrap().starts_with(&prefix),
        "{done:#}"
    );
    assert!(relay["bytes_out"].as_u64().unwrap() > 10_000, "{done:#}");
    let view = emulator
        .call_view(report["call_id"].as_str().unwrap())
        .unwrap();
    let heard = &view["media"][0];
    assert_eq!(heard["stream_url"], relay["play_url"], "{view:#}");
    assert!(heard["audio_ms"].as_u64().unwrap() > 1500, "{view:#}");
    assert!(!done.to_string().contains("hunter2"), "{done:#}");
    assert_eq!(done["request"]["relay"]["play"], play);
}
