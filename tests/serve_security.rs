//! The audit's cases against a real `callfeed serve` (in process, or the binary) and the
//! emulator: nothing an API client sends becomes a pipeline, a host file or a private URL;
//! nothing starts before the whole request is valid; one room admits one session; and a
//! session counts as stopped only once the cloud agrees.

use std::time::{Duration, Instant};

use crate::common::serve::*;
use crate::common::*;
use callfeed::emulator::{Emulator, Fault};
use callfeed::media::policy::{InputPolicy, Restrictions};
use serde_json::{Value, json};

async fn emulator() -> Emulator {
    Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// A TCP listener that keeps what connections sent it (their first bytes): a stray client of
/// another test, reaching this port after it was another server's, is told from what a test
/// is looking for by what it sends.
struct Tripwire {
    port: u16,
    received: std::sync::Arc<parking_lot::Mutex<Vec<u8>>>,
}

impl Tripwire {
    async fn start() -> Self {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let kept = received.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                        kept.lock().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Self { port, received }
    }

    /// Whether anything that connected sent `needle`.
    fn got(&self, needle: &[u8]) -> bool {
        self.received
            .lock()
            .windows(needle.len())
            .any(|w| w == needle)
    }
}

/// The injection forms the audit found, aimed at `secret`, `out` and a listener on `port`.
fn injections(secret: &str, out: &str, port: u16) -> Vec<String> {
    let tail = format!(
        "fakesink filesrc location={secret} ! tcpclientsink host=127.0.0.1 port={port} filesrc location={secret} ! filesink location={out} audiotestsrc"
    );
    vec![
        format!("alsa:null ! {tail}"),
        format!("pulse:null ! {tail}"),
        format!("alsa:\"null\" ! {tail}"),
        format!("alsa:null\n! {tail}"),
        format!("custom:mic:null ! {tail}"),
        format!("custom:mic:\" ! {tail} ! \""),
    ]
}

/// A custom source in the operator's config, whose argument an API client names.
fn with_custom_mic() -> callfeed::media::topology::Topologies {
    let mut o = std::collections::BTreeMap::new();
    o.insert(
        "source".to_owned(),
        std::collections::BTreeMap::from([(
            "mic_audio".to_owned(),
            "alsasrc device={arg}".to_owned(),
        )]),
    );
    callfeed::media::topology::Topologies::load(&o).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_launch_syntax_runs_nothing_but_the_named_source() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the operator's secret").unwrap();
    let out = dir.path().join("out.bin");
    let wire = Tripwire::start().await;
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    // A file whose name is launch syntax is only a name.
    let odd = media.join("a\" ! filesink location=callfeed-pwned.bin ! \"b.ogg");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/media-samples/tone-440hz-2s.ogg"
        ),
        &odd,
    )
    .unwrap();
    let root = media.clone();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), move |c| {
        c.policy = InputPolicy::Restricted(Restrictions::new(&[root], true, &[]).unwrap());
        c.topologies = with_custom_mic();
    })
    .await;
    let forms = injections(
        &secret.display().to_string(),
        &out.display().to_string(),
        wire.port,
    );
    let mut ids = Vec::new();
    for (i, media) in forms.iter().enumerate() {
        let (status, body) = api
            .post(json!({"to":["jack"],"media":media,"room":format!("inj-{i}"),"media_type":"audio","ingest_at":"ring","max_duration_secs":2}))
            .await;
        // Refused up front, or run with the text as a device name: never as syntax.
        match status {
            201 => ids.push(body["id"].as_str().unwrap().to_owned()),
            422 => {}
            other => panic!("{media:?}: {other} {body}"),
        }
    }
    assert!(!ids.is_empty(), "the device forms are admitted as data");
    let (status, created) = api
        .post(json!({"to":["jack"],"media":odd.display().to_string(),"room":"inj-file","media_type":"audio"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let file_session = created["id"].as_str().unwrap().to_owned();
    for id in &ids {
        api.ended(id, Duration::from_secs(30)).await;
    }
    let played = api.ended(&file_session, Duration::from_secs(30)).await;
    assert_eq!(played["report"]["result"], "completed", "{played:#}");
    let view = emulator
        .call_view(played["report"]["call_id"].as_str().unwrap())
        .unwrap();
    let heard = view["media"][0]["dominant_hz"].as_f64().unwrap_or(0.0);
    assert!((heard - 440.0).abs() < 6.0, "the odd file played: {view:#}");
    assert!(
        !out.exists(),
        "an injected filesink wrote {}",
        out.display()
    );
    assert!(
        !wire.got(b"the operator's secret"),
        "an injected tcpclientsink sent the secret"
    );
    assert!(!std::path::Path::new("callfeed-pwned.bin").exists());
    assert!(!media.join("callfeed-pwned.bin").exists());
    // A custom source that does not exist is named before anything rings.
    let (status, body) = api
        .post(json!({"to":["jack"],"media":"custom:nosuch","room":"inj-none","media_type":"audio"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("nosuch"), "{body}");

    // The same forms at a shell: the device is data there too.
    for form in &forms[..2] {
        let mut push = tokio::process::Command::new(env!("CARGO_BIN_EXE_callfeed"))
            .args(["--log", "info", "push", form, "--serve", "127.0.0.1:0"])
            .env_remove("CALLFEED_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(push.stderr.take().unwrap()).lines();
        // Its input is tried (and fails, as no such device exists) at least once.
        let tried = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("InputRestart") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(tried, Ok(true), "the input was tried");
        push.kill().await.unwrap();
    }
    assert!(
        !out.exists(),
        "an injected filesink wrote {}",
        out.display()
    );
    assert!(
        !wire.got(b"the operator's secret"),
        "an injected tcpclientsink sent the secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_files_and_private_urls_are_refused_with_one_message() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/media-samples/tone-440hz-2s.ogg"
        ),
        media.join("ok.ogg"),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret.ogg"), "not for callers").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.ogg"), media.join("link.ogg")).unwrap();
    let served = serve_dir(&media).await;
    let root = media.clone();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), move |c| {
        c.policy = InputPolicy::Restricted(Restrictions::new(&[root], false, &[]).unwrap());
    })
    .await;
    let refused = [
        "/etc/passwd".to_owned(),
        "/nonexistent/file.mp3".to_owned(),
        dir.path().join("secret.ogg").display().to_string(),
        media.join("link.ogg").display().to_string(),
        media.join("../secret.ogg").display().to_string(),
        format!("file://{}", dir.path().join("secret.ogg").display()),
        format!("playlist:{}", dir.path().join("secret.ogg").display()),
        format!("{served}ok.ogg"),
        "http://localhost/x.flv".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "rtmp://10.0.0.1/live/x".to_owned(),
        "srt://example.com:9000?mode=listener".to_owned(),
        "alsa:default".to_owned(),
        "v4l2:/dev/video0".to_owned(),
    ];
    let mut messages = std::collections::BTreeSet::new();
    for (i, media) in refused.iter().enumerate() {
        let (status, body) = api
            .post(json!({"to":["jack"],"media":media,"room":format!("host-{i}"),"media_type":"audio"}))
            .await;
        assert_eq!(status, 422, "{media}: {body}");
        messages.insert(body["error"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        messages.len(),
        1,
        "one message for every refusal: {messages:#?}"
    );
    let message = messages.into_iter().next().unwrap();
    assert!(
        message.contains("--media-root") && !message.contains("exist"),
        "{message}"
    );
    assert!(
        emulator_list(&emulator, "calls").await.is_empty(),
        "no phone rang"
    );
    // What the policy allows still plays.
    let (status, body) = api
        .post(json!({"to":["jack"],"media":media.join("ok.ogg").display().to_string(),"room":"host-ok","media_type":"audio"}))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_starts_before_the_whole_request_is_valid() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |_| {}).await;
    let base = json!({"to":["jack"],"media":"test:black+tone=440","room":"v","media_type":"audio"});
    let with = |field: &str, value: Value| {
        let mut v = base.clone();
        v[field] = value;
        v
    };
    let many: Vec<String> = (0..10_000).map(|i| format!("u{i}")).collect();
    for (body, expect) in [
        (
            with("max_duration_secs", json!(u64::MAX)),
            "max_duration_secs",
        ),
        (with("max_duration_secs", json!(0)), "max_duration_secs"),
        (with("repeat", json!(4_294_967_295u64)), "repeat"),
        (with("repeat", json!(0)), "repeat"),
        (with("to", json!(["robot"])), "robot"),
        (with("to", json!([])), "1 to 8 callees"),
        (with("room", json!("")), "room"),
        (with("room_type", json!("plaid")), "room_type"),
        (with("ring_timeout_secs", json!(601)), "ring_timeout_secs"),
        (with("audio_track", json!("../../etc")), "audio_track"),
        (with("audio_track", json!("1 ! filesink")), "audio_track"),
        (with("direct", json!("always ! filesink")), "direct"),
        // Only a URL can be handed to the cloud; this media is a test source.
        (with("direct", json!("always")), "a URL the cloud can pull"),
    ] {
        let (status, answer) = api.post(body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(expect), "{body}: {error}");
        // The field to fix, as the request names it, and what it may be.
        let field = answer["field"].as_str().unwrap();
        assert!(body.get(field).is_some(), "{body}: {answer}");
        assert!(
            answer["allowed"].as_str().is_some_and(|a| !a.is_empty()),
            "{answer}"
        );
        assert!(answer["value"].is_string(), "{answer}");
    }
    // Over eight callees is refused while parsing, whatever the size.
    let (status, answer) = api.post(with("to", json!(many))).await;
    assert!(status == 400 || status == 413, "{status} {answer}");
    assert!(
        emulator_list(&emulator, "calls").await.is_empty(),
        "no phone rang"
    );
    assert!(emulator_list(&emulator, "tasks").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_requests_for_one_room_admit_one_and_capacity_is_kept() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.max_sessions = 7;
    })
    .await;
    let api = std::sync::Arc::new(api);
    let session = json!({"to":["jack"],"media":"test:black+tone=440","room":"one","media_type":"audio","loop_forever":true});
    let answers = futures::future::join_all((0..5).map(|_| {
        let api = api.clone();
        let session = session.clone();
        async move { api.post(session).await }
    }))
    .await;
    let created: Vec<_> = answers.iter().filter(|(s, _)| *s == 201).collect();
    let busy: Vec<_> = answers.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!((created.len(), busy.len()), (1, 4), "{answers:?}");
    let admitted = created[0].1["id"].as_str().unwrap();
    assert!(
        busy.iter().all(|(_, b)| b["existing"] == admitted),
        "{busy:?}"
    );
    // Six more rooms fill the seven places; the eighth is asked to come back later.
    for i in 0..6 {
        let (status, body) = api
            .post(json!({"to":["jack"],"media":"test:black+silence","room":format!("cap-{i}"),"media_type":"audio","loop_forever":true}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let response = api
        .http
        .post(format!("{}/v1/sessions", api.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(
            json!({"to":["jack"],"media":"test:","room":"cap-over","media_type":"audio"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let sessions = api.get("/v1/sessions").await;
    for s in sessions["sessions"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        api.call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
    }
    for s in sessions["sessions"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        api.ended(id, Duration::from_secs(20)).await;
    }
    let (status, body) = api
        .post(json!({"to":["jack"],"media":"test:","room":"cap-over","media_type":"audio","max_duration_secs":1}))
        .await;
    assert_eq!(status, 201, "a place is free again: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teardown_the_cloud_refuses_stays_pending_until_it_is_confirmed() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |_| {}).await;
    let (status, created) = api
        .post(json!({"to":["jack"],"media":"test:black+tone=440","room":"td","media_type":"audio","loop_forever":true}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/sessions/{id}");
    api.until(&path, Duration::from_secs(15), |v| {
        v["status"]["phase"] == "ingesting"
    })
    .await;
    for (target, error) in [
        ("StopStreamIngest", json!("InternalError")),
        ("end_call", json!(90994)),
    ] {
        emulator.add_fault(
            serde_json::from_value::<Fault>(
                json!({"target": target, "count": 100_000, "error": error}),
            )
            .unwrap(),
        );
    }
    let (status, _) = api
        .call(reqwest::Method::DELETE, &path, None, Some(TOKEN))
        .await;
    assert_eq!(status, 202);
    api.until(&path, Duration::from_secs(15), |v| {
        v["status"]["phase"] == "teardown_pending"
    })
    .await;
    // While the cloud refuses, the session stays pending, its room taken.
    let (status, body) = api
        .post(json!({"to":["jack"],"media":"test:","room":"td","media_type":"audio"}))
        .await;
    assert_eq!(status, 409, "the room is still in use in the cloud: {body}");
    let still = api.get(&path).await;
    assert!(still["report"].is_null(), "not reported ended: {still:#}");
    let call_id = still["status"]["call_id"].as_str().unwrap().to_owned();
    assert_eq!(emulator.call_view(&call_id).unwrap()["state"], "connected");
    emulator.clear_faults();
    let ended = api
        .until(&path, Duration::from_secs(60), |v| !v["report"].is_null())
        .await;
    assert_eq!(ended["report"]["result"], "stopped", "{ended:#}");
    assert_eq!(ended["report"]["teardown"]["state"], "confirmed");
    let call = emulator.call_view(&call_id).unwrap();
    assert_eq!(call["state"], "ended", "{call:#}");
    assert_eq!(call["media"][0]["status"], "NotExist", "{call:#}");
}

#[tokio::test]
async fn an_open_server_on_a_public_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite").display().to_string();
    let (code, stderr) = serve_exits(&["--listen", "0.0.0.0:0", "--journal", &journal], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("CALLFEED_API_TOKEN") && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );
    let (code, stderr) = serve_exits(
        &["--listen", "0.0.0.0:0", "--journal", &journal],
        &[("CALLFEED_API_TOKEN", "t0ken")],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("CALLFEED_CALLBACK_KEY") && stderr.contains("--no-webhooks"),
        "{stderr}"
    );
    assert!(!stderr.contains("t0ken"), "secrets never show: {stderr}");
}

/// One second of H.264 in MPEG-TS, as an HLS segment.
fn write_ts_segment(path: &std::path::Path) {
    let status = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=30",
            "!",
            "x264enc",
            "!",
            "mpegtsmux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap();
    assert!(status.success());
}

/// A finished HLS playlist of one one-second segment.
fn playlist(segment: &str) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\n{segment}\n#EXT-X-ENDLIST\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_playlist_cannot_open_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.ts");
    write_ts_segment(&secret);
    std::fs::copy(&secret, dir.path().join("seg0.ts")).unwrap();
    std::fs::write(
        dir.path().join("evil.m3u8"),
        playlist(&format!("file://{}", secret.display())),
    )
    .unwrap();
    std::fs::write(dir.path().join("good.m3u8"), playlist("seg0.ts")).unwrap();
    let base = serve_dir(dir.path()).await;
    let probe = |name: &str| {
        let url = format!("{base}{name}");
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_callfeed"))
                .args(["probe", &url])
                .env_remove("CALLFEED_CONFIG")
                .output()
                .await
                .unwrap()
        }
    };
    let evil = probe("evil.m3u8").await;
    assert!(!evil.status.success());
    let stderr = String::from_utf8_lossy(&evil.stderr);
    assert!(stderr.contains("may not open"), "{stderr}");
    let good = probe("good.m3u8").await;
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_does_not_wait_for_a_poll_in_flight() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |_| {}).await;
    let (status, created) = api
        .post(json!({"to":["jack"],"media":"test:black+silence","room":"slow","media_type":"audio","loop_forever":true}))
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/sessions/{}", created["id"].as_str().unwrap());
    api.until(&path, Duration::from_secs(15), |v| {
        v["status"]["phase"] == "ingesting"
    })
    .await;
    // From now on the cloud takes 20 s to answer a poll.
    for target in ["get_call_info", "DescribeStreamIngest"] {
        emulator.add_fault(
            serde_json::from_value::<Fault>(
                json!({"target": target, "count": 1000, "delay_ms": 20_000}),
            )
            .unwrap(),
        );
    }
    // Wait until a poll of each kind is under way (each took one of its fault's uses).
    let faults = format!("{}/faults", emulator.endpoints().control);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = reqwest::get(&faults).await.unwrap().bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let used = v["faults"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["count"].as_u64() < Some(1000))
            .count();
        if used == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no poll started: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    api.call(reqwest::Method::DELETE, &path, None, Some(TOKEN))
        .await;
    let ended = api
        .until(&path, Duration::from_secs(15), |v| !v["report"].is_null())
        .await;
    assert_eq!(ended["report"]["result"], "stopped");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "the stop waited for a poll: {:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_client_playlist_reaches_no_private_host() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let wire = Tripwire::start().await;
    let segment = dir.path().join("seg0.ts");
    write_ts_segment(&segment);
    // The playlist's host is allowed; its segment points at another, private one.
    std::fs::write(
        dir.path().join("private.m3u8"),
        playlist(&format!("http://localhost:{}/seg0.ts", wire.port)),
    )
    .unwrap();
    std::fs::write(dir.path().join("good.m3u8"), playlist("seg0.ts")).unwrap();
    let base = serve_dir(dir.path()).await;
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.policy = InputPolicy::Restricted(
            Restrictions::new(&[], false, &["127.0.0.1".to_owned()]).unwrap(),
        );
    })
    .await;
    let (status, created) = api
        .post(json!({"to":["jack"],"media":format!("{base}private.m3u8"),"room":"hls-private","media_type":"audio","live":true}))
        .await;
    assert_eq!(status, 201, "the playlist's own host is allowed: {created}");
    let path = format!("/v1/sessions/{}", created["id"].as_str().unwrap());
    let ended = api
        .until(&path, Duration::from_secs(30), |v| !v["report"].is_null())
        .await;
    assert_eq!(ended["report"]["result"], "failed", "{ended:#}");
    assert!(
        !wire.got(b"GET /seg0.ts"),
        "a segment on a private host was fetched"
    );
    assert!(
        emulator_list(&emulator, "calls").await.is_empty(),
        "it failed before ringing"
    );
    // A playlist whose segments stay on the allowed host plays.
    let (status, created) = api
        .post(json!({"to":["jack"],"media":format!("{base}good.m3u8"),"room":"hls-good","media_type":"video","profile":"360p","live":true,"max_duration_secs":4}))
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/v1/sessions/{}", created["id"].as_str().unwrap());
    let ended = api
        .until(&path, Duration::from_secs(30), |v| !v["report"].is_null())
        .await;
    // Completed: the room got its media. (Its segment is video only: an audio call of it
    // would carry nothing, and fail.)
    assert_eq!(ended["report"]["result"], "completed", "{ended:#}");
}
