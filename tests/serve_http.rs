//! The bounds `server` puts on clients: slow heads, idle connections, too many
//! connections, oversized and stalled request bodies, and live readers that stop reading.
//! Everything talks raw HTTP/1.1 over 127.0.0.1 so the client does exactly what a bad one would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::{get, post};
use callfeed::media::hub::StreamHub;
use callfeed::publish::StreamServer;
use callfeed::server::{HttpLimits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(app: axum::Router, limits: HttpLimits) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener, app, limits)
    }

    fn on(listener: tokio::net::TcpListener, app: axum::Router, limits: HttpLimits) -> Self {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Stops the server and waits for it to return, as `callfeed serve` does at a signal.
    async fn shut_down(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("the server stops in time")
            .unwrap()
            .unwrap();
    }
}

fn app() -> axum::Router {
    axum::Router::new()
        .route("/ping", get(|| async { "pong" }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
}

async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(DEADLINE, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .unwrap()
}

/// One request on a new connection that the server is asked to close after it; returns the
/// whole response, or None when the connection was closed without one.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Option<String> {
    let mut stream = connect(addr).await;
    stream.write_all(request).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("a response in time")
        .ok()?;
    (!response.is_empty()).then(|| String::from_utf8_lossy(&response).into_owned())
}

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
const PING_KEEP_ALIVE: &[u8] = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n";

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// Reads until the server closes the connection (end of stream or reset); returns how long
/// that took, or panics at `deadline`.
async fn closed_within(stream: &mut TcpStream, deadline: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {deadline:?}"),
        }
    }
}

/// Reads one keep-alive `/ping` response off `stream`.
async fn read_pong(stream: &mut TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0; 1024];
    while !got.ends_with(b"pong") {
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert_ne!(
            n,
            0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
}

/// Polls `done` until it holds, or panics with `what` at the deadline.
async fn until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_head_is_cut_off_and_others_are_served() {
    let header_read_timeout = Duration::from_millis(500);
    let server = Server::start(
        app(),
        HttpLimits {
            header_read_timeout,
            ..HttpLimits::default()
        },
    )
    .await;
    let mut slow = connect(server.addr).await;
    slow.write_all(b"GET /pi").await.unwrap();
    let started = Instant::now();

    let response = exchange(server.addr, PING).await.expect("a response");
    assert_eq!(status(&response), 200, "{response}");
    assert!(response.ends_with("pong"), "{response}");

    closed_within(&mut slow, DEADLINE).await;
    // Not closed for some other reason before the limit was up (the server's clock started
    // a little before ours).
    assert!(
        started.elapsed() >= header_read_timeout / 2,
        "{:?}",
        started.elapsed()
    );
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = Server::start(
        app(),
        HttpLimits {
            header_read_timeout: Duration::from_millis(500),
            ..HttpLimits::default()
        },
    )
    .await;
    let mut idle = connect(server.addr).await;
    idle.write_all(PING_KEEP_ALIVE).await.unwrap();
    read_pong(&mut idle).await;
    closed_within(&mut idle, DEADLINE).await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_closed_until_one_is_freed() {
    let server = Server::start(
        app(),
        HttpLimits {
            max_connections: 2,
            // Long enough that the held connections are not closed for idling meanwhile.
            header_read_timeout: Duration::from_secs(60),
            ..HttpLimits::default()
        },
    )
    .await;
    // The server accepts in connection order, so these two hold both permits.
    let first = connect(server.addr).await;
    let mut second = connect(server.addr).await;
    let mut third = connect(server.addr).await;
    closed_within(&mut third, DEADLINE).await;

    // The held connections are still served.
    second.write_all(PING_KEEP_ALIVE).await.unwrap();
    read_pong(&mut second).await;
    assert!(
        exchange(server.addr, PING).await.is_none(),
        "served over the cap"
    );

    // Closing one frees its permit as soon as the server sees the close.
    drop(first);
    let started = Instant::now();
    let response = loop {
        if let Some(r) = exchange(server.addr, PING).await {
            break r;
        }
        assert!(started.elapsed() < DEADLINE, "no connection freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status(&response), 200, "{response}");
    drop(second);
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_413() {
    let server = Server::start(
        app(),
        HttpLimits {
            body_limit: 1024,
            ..HttpLimits::default()
        },
    )
    .await;
    let post = |len: usize| {
        let mut r = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n"
        )
        .into_bytes();
        r.resize(r.len() + len, b'x');
        r
    };
    let response = exchange(server.addr, &post(2048))
        .await
        .expect("a response");
    assert_eq!(status(&response), 413, "{response}");
    let response = exchange(server.addr, &post(1000))
        .await
        .expect("a response");
    assert_eq!(status(&response), 200, "{response}");
    assert!(response.ends_with("1000"), "{response}");
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_cut_off() {
    let body_timeout = Duration::from_millis(500);
    let server = Server::start(
        app(),
        HttpLimits {
            body_timeout,
            ..HttpLimits::default()
        },
    )
    .await;
    let mut stream = connect(server.addr).await;
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert_eq!(status(&response), 400, "{response}");
    assert!(
        started.elapsed() >= body_timeout / 2,
        "{:?}",
        started.elapsed()
    );
    server.shut_down().await;
}

/// One FLV video keyframe tag (AVC NALU) with `len` bytes of payload, then its
/// PreviousTagSize. Every tag a keyframe, so the hub's kept GOP stays one tag long.
fn keyframe(ts_ms: u32, len: usize) -> Bytes {
    let data_len = len + 2;
    let mut tag = vec![9];
    tag.extend_from_slice(&(data_len as u32).to_be_bytes()[1..]);
    let ts = ts_ms.to_be_bytes();
    tag.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0], 0, 0, 0]);
    tag.extend_from_slice(&[0x17, 1]);
    tag.resize(11 + data_len, 0xAB);
    tag.extend_from_slice(&((11 + data_len) as u32).to_be_bytes());
    Bytes::from(tag)
}

const FLV_HEADER: &[u8] = b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00";

/// A reader that reads everything it is sent, counting bytes, until the connection ends.
fn spawn_reader(
    addr: SocketAddr,
    path: String,
    read: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0; 256 * 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            read.fetch_add(n as u64, Ordering::Relaxed);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reader_that_stops_reading_is_dropped_and_others_read_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (streams, routes) = StreamServer::attached(&format!("http://{addr}"));
    let server = Server::on(
        listener,
        routes,
        HttpLimits {
            write_stall_timeout: Duration::from_millis(500),
            ..HttpLimits::default()
        },
    );
    let hub = Arc::new(StreamHub::new());
    hub.push(Bytes::from_static(FLV_HEADER));
    let url = streams.publish_live(hub.clone(), None);
    let path = url
        .strip_prefix(&format!("http://{addr}"))
        .unwrap()
        .to_owned();

    // About 16 MB/s: far more than the stalled reader's socket buffers hold within a second,
    // and easily read by the one that keeps reading.
    let pushing = Arc::new(AtomicBool::new(true));
    let producer = tokio::spawn({
        let (hub, pushing) = (hub.clone(), pushing.clone());
        async move {
            let mut ts = 0;
            while pushing.load(Ordering::Relaxed) {
                hub.push(keyframe(ts, 32 * 1024));
                ts += 2;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    let read = Arc::new(AtomicU64::new(0));
    let reader = spawn_reader(addr, path.clone(), read.clone());
    // The stalled reader asks, then never reads; a small receive buffer fills fast.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = tokio::time::timeout(DEADLINE, socket.connect(addr))
        .await
        .expect("connect in time")
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stalled.write_all(request.as_bytes()).await.unwrap();
    until("both readers", DEADLINE, || hub.readers() == 2).await;
    let read_while_both = read.load(Ordering::Relaxed);

    until("the stalled reader to be dropped", DEADLINE, || {
        hub.readers() == 1
    })
    .await;
    let read_at_drop = read.load(Ordering::Relaxed);
    assert!(
        read_at_drop > read_while_both,
        "the other reader was held up"
    );
    until("the other reader to read on", DEADLINE, || {
        read.load(Ordering::Relaxed) > read_at_drop + 1024 * 1024
    })
    .await;
    assert!(!reader.is_finished(), "the reader that kept up was dropped");
    // Its connection is closed too: what was in flight, then the end.
    closed_within(&mut stalled, DEADLINE).await;

    // A reader that goes away is released as well.
    reader.abort();
    until("no readers", DEADLINE, || hub.readers() == 0).await;
    pushing.store(false, Ordering::Relaxed);
    producer.await.unwrap();
    server.shut_down().await;
}
