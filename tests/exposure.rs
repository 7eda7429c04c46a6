//! What a web page, a stranger's host name and a greedy client can make a `callfeed serve`
//! do, against the real binary (and the bounded server in process): a token-less node answers
//! only its own names and takes no change from another origin, `--public-url` needs a token,
//! half-sent requests from one address, or from many, do not keep another's health probes
//! out, one address holds only its share of connections, and one client only so many event
//! streams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::serve::{cloud_env, serve_binary, serve_command};
use crate::common::test_emulator_config;
use callfeed::emulator::Emulator;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(10);

/// A `callfeed serve` on a free loopback port with `extra` arguments, without a token unless
/// `env` sets one, its cloud the `emulator` when given (else the embedded one); the process
/// and its address.
async fn node(
    dir: &tempfile::TempDir,
    emulator: Option<&Emulator>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, SocketAddr) {
    let journal = dir.path().join("journal.sqlite").display().to_string();
    let mut args = vec!["--listen", "127.0.0.1:0"];
    let cloud = emulator.map(cloud_env).unwrap_or_default();
    if emulator.is_none() {
        args.push("--emulator");
    } else {
        args.extend(["--journal", &journal]);
    }
    args.extend_from_slice(extra);
    let mut all_env: Vec<(&str, &str)> = cloud.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all_env.extend_from_slice(env);
    let (child, api) = serve_binary(&args, &all_env).await;
    let addr = api.trim_start_matches("http://").parse().unwrap();
    (child, addr)
}

/// One HTTP/1.1 request on a new connection (asked to close after it), sent byte for byte
/// as given; the status and the body, or None when the connection closed with no answer.
async fn raw(addr: SocketAddr, head: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .ok()?;
    let request = format!(
        "{head}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .ok()?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_owned()))
}

/// `GET path` naming `host`.
async fn get_as(addr: SocketAddr, host: &str, path: &str) -> Option<(u16, String)> {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n"),
        "",
    )
    .await
}

async fn emulator() -> Emulator {
    Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn emulator_calls(emulator: &Emulator) -> Vec<Value> {
    let url = format!("{}/calls", emulator.endpoints().control);
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["calls"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_origin_starts_nothing_on_a_tokenless_node() {
    let emulator = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = node(&dir, Some(&emulator), &[], &[]).await;
    let host = format!("Host: 127.0.0.1:{}\r\n", addr.port());
    let session = |room: &str| {
        json!({"to":["jack"],"media":"test:black+tone=440","room":room,"media_type":"audio","max_duration_secs":2}).to_string()
    };
    // What `fetch(url, {method: "POST", body})` sends from any page without asking first.
    let (status, body) = raw(
        addr,
        &format!(
            "POST /v1/sessions HTTP/1.1\r\n{host}Origin: http://evil.example\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        ),
        &session("from-a-page"),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("application/json"), "{body}");
    // A form post is no better.
    let (status, _) = raw(
        addr,
        &format!(
            "POST /v1/sessions HTTP/1.1\r\n{host}Content-Type: application/x-www-form-urlencoded\r\n"
        ),
        &session("from-a-form"),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 415);
    // Nor a request with no body, which needs no preflight either: the node does not drain.
    let (status, body) = raw(
        addr,
        &format!("POST /v1/drain HTTP/1.1\r\n{host}Origin: http://evil.example\r\n"),
        "",
    )
    .await
    .expect("an answer");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("CALLFEED_API_TOKEN"), "{body}");
    // The preflight a page would need for JSON is refused, with no CORS grant.
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{addr}/v1/sessions"),
        )
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_client_error(), "{preflight:?}");
    assert!(
        !preflight
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "{preflight:?}"
    );

    // The console's own JSON request (same origin) and a program's are taken.
    let (status, body) = raw(
        addr,
        &format!(
            "POST /v1/sessions HTTP/1.1\r\n{host}Origin: http://127.0.0.1:{}\r\nContent-Type: application/json\r\n",
            addr.port()
        ),
        &session("from-the-console"),
    )
    .await
    .expect("an answer");
    assert_eq!(status, 201, "{body}");
    let started = Instant::now();
    let calls = loop {
        let calls = emulator_calls(&emulator).await;
        if !calls.is_empty() {
            break calls;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the console's session never rang"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let listed = reqwest::get(format!("http://{addr}/v1/sessions"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed).unwrap();
    let rooms: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["request"]["room"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, ["from-the-console"], "only that one was admitted");
    assert_eq!(calls.len(), 1, "only that one rang: {calls:#?}");
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "the node is not draining");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenless_node_answers_only_requests_for_its_own_host() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = node(&dir, None, &[], &[]).await;
    let port = addr.port();
    // A DNS-rebinding page reaches the node under its own name.
    for path in ["/v1/sessions", "/", "/metrics", "/v1/events"] {
        let (status, body) = get_as(addr, &format!("evil.example:{port}"), path)
            .await
            .expect("an answer");
        assert_eq!(status, 421, "{path}: {body}");
        if path.starts_with("/v1") {
            assert!(body.contains("CALLFEED_API_TOKEN"), "{body}");
        }
    }
    for ours in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "localhost".to_owned(),
    ] {
        for path in ["/v1/sessions", "/"] {
            let (status, body) = get_as(addr, &ours, path).await.expect("an answer");
            assert_eq!(status, 200, "{ours} {path}: {body}");
        }
    }
    // Health probes name the node however their platform does.
    let (status, _) = get_as(addr, "pod-7.internal", "/healthz")
        .await
        .expect("an answer");
    assert_eq!(status, 200);

    // With a token, the token is the defence: any name is answered.
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = node(&dir, None, &[], &[("CALLFEED_API_TOKEN", "t0ken")]).await;
    let (status, body) = raw(
        addr,
        &format!(
            "GET /v1/sessions HTTP/1.1\r\nHost: evil.example:{}\r\nAuthorization: Bearer t0ken\r\n",
            addr.port()
        ),
        "",
    )
    .await
    .expect("an answer");
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_url_without_a_token_refuses_to_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.sqlite").display().to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--journal",
        &journal,
        "--public-url",
        "https://x.example",
    ];
    let out = tokio::time::timeout(Duration::from_secs(20), serve_command(&args, &[]).output())
        .await
        .expect("serve refuses at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--public-url")
            && stderr.contains("CALLFEED_API_TOKEN")
            && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );

    // Allowed: it starts, and answers requests for the public host as its own.
    let (_node, addr) = node(
        &dir,
        None,
        &[
            "--public-url",
            "https://x.example",
            "--allow-unauthenticated",
        ],
        &[],
    )
    .await;
    let (status, body) = get_as(addr, "x.example", "/v1/sessions")
        .await
        .expect("an answer");
    assert_eq!(status, 200, "{body}");
    let (status, _) = get_as(addr, "y.example", "/v1/sessions")
        .await
        .expect("an answer");
    assert_eq!(status, 421);
}

/// Connections from one address, each with half a request head sent and never finished,
/// reopened (after the attacker's pause) whenever the server closes one; they stop when this
/// is dropped.
struct Flood {
    /// Open now.
    held: Arc<AtomicUsize>,
    /// Connections made so far.
    tried: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Flood {
    fn start(from: &str, addr: SocketAddr, count: usize, pause: Duration) -> Self {
        let held = Arc::new(AtomicUsize::new(0));
        let tried = Arc::new(AtomicUsize::new(0));
        let from: SocketAddr = format!("{from}:0").parse().unwrap();
        let tasks = (0..count)
            .map(|_| {
                let (held, tried) = (held.clone(), tried.clone());
                tokio::spawn(async move {
                    loop {
                        let socket = TcpSocket::new_v4().unwrap();
                        socket.bind(from).unwrap();
                        let connected = socket.connect(addr).await;
                        tried.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut stream) = connected
                            && stream
                                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow:")
                                .await
                                .is_ok()
                        {
                            held.fetch_add(1, Ordering::Relaxed);
                            // Until the server closes it.
                            let mut buf = [0; 64];
                            while let Ok(1..) = stream.read(&mut buf).await {}
                            held.fetch_sub(1, Ordering::Relaxed);
                        }
                        // The attacker's pace, not a wait for the server.
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self { held, tried, tasks }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Asks `/healthz` from 127.0.0.1 twenty times, each on a new connection: every probe must
/// be answered 200, promptly, while `floods` go on.
async fn probes_are_answered(addr: SocketAddr, floods: &[Flood]) {
    let held = || -> usize { floods.iter().map(|f| f.held.load(Ordering::Relaxed)).sum() };
    let started = Instant::now();
    while floods
        .iter()
        .any(|f| f.tried.load(Ordering::Relaxed) < f.tasks.len())
    {
        assert!(started.elapsed() < DEADLINE, "the flood never got going");
        tokio::task::yield_now().await;
    }
    for probe in 0..20 {
        let asked = Instant::now();
        let answer = raw(
            addr,
            &format!(
                "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
                addr.port()
            ),
            "",
        )
        .await;
        assert_eq!(
            answer.as_ref().map(|(s, _)| *s),
            Some(200),
            "probe {probe}: {answer:?} while {} half-open connections were held",
            held()
        );
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "probe {probe} took {:?}",
            asked.elapsed()
        );
    }
    assert!(held() > 0, "the flood held connections throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_from_one_address_do_not_keep_health_probes_out() {
    let dir = tempfile::tempdir().unwrap();
    // Fewer connections than the flood, so that holding them all is possible.
    let (_node, addr) = node(&dir, None, &["--max-connections", "256"], &[]).await;
    let flood = Flood::start("127.0.0.3", addr, 300, Duration::from_millis(500));
    probes_are_answered(addr, &[flood]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_from_many_addresses_do_not_keep_health_probes_out_either() {
    let dir = tempfile::tempdir().unwrap();
    // Each address stays under its cap (64 of 256); together they are more than all.
    let (_node, addr) = node(&dir, None, &["--max-connections", "256"], &[]).await;
    let floods: Vec<Flood> = (3..13)
        .map(|i| {
            Flood::start(
                &format!("127.0.0.{i}"),
                addr,
                30,
                Duration::from_millis(500),
            )
        })
        .collect();
    probes_are_answered(addr, &floods).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
    tokio::spawn(callfeed::server::serve(
        listener,
        app,
        callfeed::server::HttpLimits {
            max_connections_per_peer: 4,
            header_read_timeout: Duration::from_secs(60),
            ..Default::default()
        },
        std::future::pending(),
    ));
    let from: SocketAddr = "127.0.0.3:0".parse().unwrap();
    let connect_from = || async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(from).unwrap();
        socket.connect(addr).await.unwrap()
    };
    // Four idle connections are held; each sends a byte of a head so the server has read
    // from it before the next one comes (its accept order is then ours).
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_from().await;
        stream.write_all(b"G").await.unwrap();
        held.push(stream);
    }
    // The fifth from that address is closed at once, with no answer.
    let mut fifth = connect_from().await;
    let _ = fifth
        .write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(DEADLINE, fifth.read_to_end(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        read.is_err() || buf.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    // Another address is served.
    let (status, body) = get_as(addr, "t", "/ping").await.expect("an answer");
    assert_eq!((status, body.as_str()), (200, "pong"));
    // And the address gets a place back once it lets one go.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let mut stream = connect_from().await;
        let _ = stream
            .write_all(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut got)).await;
        if got.ends_with(b"pong") {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "no place given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens `GET path` as an event stream with `auth` headers from `client`; the status, and
/// the response (held open) when it is 200.
async fn open_stream(
    client: &reqwest::Client,
    url: &str,
    auth: &[(&str, &str)],
) -> (u16, reqwest::Response) {
    let mut request = client.get(url).header("Accept", "text/event-stream");
    for (k, v) in auth {
        request = request.header(*k, *v);
    }
    let response = tokio::time::timeout(DEADLINE, request.send())
        .await
        .expect("an answer in time")
        .unwrap();
    (response.status().as_u16(), response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_beyond_a_clients_cap_get_429() {
    let dir = tempfile::tempdir().unwrap();
    // The default cap: every holder of the token together is one client.
    let (_node, addr) = node(&dir, None, &[], &[("CALLFEED_API_TOKEN", "t0ken")]).await;
    let http = reqwest::Client::new();
    let events = format!("http://{addr}/v1/events");
    let bearer = [("Authorization", "Bearer t0ken")];
    let mut open = Vec::new();
    for _ in 0..callfeed::serve::api::DEFAULT_MAX_EVENT_STREAMS {
        let (status, stream) = open_stream(&http, &events, &bearer).await;
        assert_eq!(status, 200);
        open.push(stream);
    }
    let (status, refused) = open_stream(&http, &events, &bearer).await;
    assert_eq!(status, 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("event streams"),
        "{body}"
    );
    // A session's own stream counts against the same cap.
    let (status, _) = open_stream(
        &http,
        &format!("http://{addr}/v1/sessions/no-such/events"),
        &bearer,
    )
    .await;
    assert_eq!(status, 429);

    // A console login is another client, with its own streams.
    let login = http
        .post(format!("http://{addr}/v1/console/login"))
        .header("Authorization", "Bearer t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 204);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, _viewer) = open_stream(&http, &events, &[("Cookie", &cookie)]).await;
    assert_eq!(status, 200);

    // A stream closed gives its place back.
    open.pop();
    let started = Instant::now();
    loop {
        let (status, stream) = open_stream(&http, &events, &bearer).await;
        if status == 200 {
            open.push(stream);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never given back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_event_streams_are_counted_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, addr) = node(&dir, None, &["--max-event-streams", "2"], &[]).await;
    let events = format!("http://{addr}/v1/events");
    let here = reqwest::Client::new();
    let (_a, _b) = (
        open_stream(&here, &events, &[]).await,
        open_stream(&here, &events, &[]).await,
    );
    assert_eq!((_a.0, _b.0), (200, 200));
    let (status, _) = open_stream(&here, &events, &[]).await;
    assert_eq!(status, 429);
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let (status, _c) = open_stream(&elsewhere, &events, &[]).await;
    assert_eq!(status, 200);
}
