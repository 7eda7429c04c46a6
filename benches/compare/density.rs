//! How many passed-through RTMP feeds one callfeed process keeps in real time: N encoders
//! (played from the 720p Main clip without B-frames at about 2 Mb/s, paced in real time by
//! this process's own RTMP publishers, not counted) push to N passthrough feeds, and each
//! feed is pulled once, as one call's ingest would. A row is real time when every pull got
//! at least 90 % of what the clip carries over the window. ffmpeg has no counterpart: a
//! stream copy through nginx-rtmp would be nginx's figure, not a tool's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::measure::{self, Stdout};
use crate::sharing::json_of;
use crate::tools::Bench;

/// The feeds each row runs.
const FEEDS: [usize; 3] = [25, 50, 100];
/// The measured window.
const WINDOW: Duration = Duration::from_secs(10);

/// One FLV tag of the clip: kind, timestamp, body.
type Tag = (u8, u32, Bytes);

pub(crate) fn passthrough_density(bench: &Bench) -> Value {
    let tags = Arc::new(clip_tags(bench));
    let span_ms = tags.last().map_or(1, |t| t.1).max(1);
    let bytes: usize = tags.iter().map(|t| t.2.len()).sum();
    let clip_kbps = bytes as u64 * 8 / u64::from(span_ms);
    let mut rows = Vec::new();
    for feeds in FEEDS {
        rows.push(run(feeds, bench, &tags, clip_kbps));
    }
    let most = rows
        .iter()
        .filter(|r| r["real_time"] == true)
        .filter_map(|r| r["feeds"].as_u64())
        .max()
        .unwrap_or(0);
    json!({
        "clip_kbps": clip_kbps,
        "window_seconds": WINDOW.as_secs(),
        "rows": rows,
        "most_feeds_in_real_time": most,
        "target": "≥ 100 passed-through 720p 2 Mb/s feeds in real time",
        "met": most >= 100,
    })
}

/// The 720p Main clip's FLV tags, as an encoder would push them.
fn clip_tags(bench: &Bench) -> Vec<Tag> {
    let flv = format!("{}/main720.flv", bench.dir);
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-i",
            &format!("{}/main720.mp4", bench.dir),
        ])
        .args(["-c", "copy", "-f", "flv", &flv])
        .status()
        .expect("ffmpeg");
    assert!(made.success());
    let data = std::fs::read(&flv).unwrap();
    callfeed::media::flv::split_tags(&data)
        .into_iter()
        .filter(|t| matches!(t[0] & 0x1f, 8 | 9))
        .map(|t| {
            let ts = callfeed::media::flv::tag_timestamp(t).unwrap_or(0);
            (t[0] & 0x1f, ts, Bytes::copy_from_slice(&t[11..t.len() - 4]))
        })
        .collect()
}

fn run(feeds: usize, bench: &Bench, tags: &Arc<Vec<Tag>>, clip_kbps: u64) -> Value {
    let serve = bench.callfeed([
        "serve",
        "--emulator",
        "--listen",
        "127.0.0.1:0",
        "--rtmp-listen",
        "127.0.0.1:0",
        "--max-feeds",
        "1000",
        "--max-sessions",
        "100000",
    ]);
    measure::run([serve], Stdout::Read, |procs| {
        let api = procs.serve_api(0);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let http = reqwest::Client::new();
            let until = Instant::now() + Duration::from_secs(60);
            let mut pulls = Vec::new();
            let mut publishers = Vec::new();
            for _ in 0..feeds {
                let feed = json_of(http.post(format!("{api}/v1/feeds")).header("content-type", "application/json").body(r#"{"kind":"rtmp","mode":"passthrough"}"#)).await;
                let url = feed["publish"]["url"].as_str().expect("a passthrough feed").to_owned();
                publishers.push(tokio::spawn(publish(url, tags.clone(), until)));
                let preview = json_of(http.post(format!("{api}/v1/feeds/{}/preview", feed["id"].as_str().unwrap()))).await;
                pulls.push(preview["url"].as_str().unwrap().to_owned());
            }
            crate::sharing::until_live(&http, &api, feeds).await;
            let before = procs.cpu_seconds();
            let fewest = crate::sharing::read_all(&http, &pulls, WINDOW).await;
            let cpu = procs.cpu_seconds() - before;
            for p in publishers {
                p.abort();
            }
            let expected = clip_kbps * 1000 / 8 * WINDOW.as_secs();
            json!({
                "feeds": feeds,
                "callfeed_cpu_seconds": (cpu * 1000.0).round() / 1000.0,
                "callfeed_rss_mb": (procs.peak_rss_mb() * 10.0).round() / 10.0,
                "slowest_pull_share": (fewest as f64 / expected.max(1) as f64 * 100.0).round() / 100.0,
                "real_time": fewest as f64 >= 0.9 * expected as f64,
            })
        })
    })
}

/// Pushes the clip to `url` in real time, looped, until `until`, as an encoder would.
async fn publish(url: String, tags: Arc<Vec<Tag>>, until: Instant) {
    let (address, key) = {
        let rest = url.strip_prefix("rtmp://").expect("an rtmp URL");
        let (address, path) = rest.split_once('/').expect("a path");
        (
            address.to_owned(),
            path.rsplit('/').next().unwrap().to_owned(),
        )
    };
    let mut socket = TcpStream::connect(&address).await.expect("the RTMP server");
    let _ = socket.set_nodelay(true);
    let mut handshake = Handshake::new(PeerType::Client);
    socket
        .write_all(&handshake.generate_outbound_p0_and_p1().unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = socket.read(&mut buf).await.unwrap();
        match handshake.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await.unwrap()
            }
            HandshakeProcessResult::Completed { response_bytes, .. } => {
                socket.write_all(&response_bytes).await.unwrap();
                break;
            }
        }
    }
    let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    let asked = session.request_connection("live".into()).unwrap();
    send(&mut socket, vec![asked]).await;
    until_event(&mut socket, &mut session, &mut buf, |e| {
        matches!(e, ClientSessionEvent::ConnectionRequestAccepted)
    })
    .await;
    let asked = session
        .request_publishing(key, PublishRequestType::Live)
        .unwrap();
    send(&mut socket, vec![asked]).await;
    until_event(&mut socket, &mut session, &mut buf, |e| {
        matches!(e, ClientSessionEvent::PublishRequestAccepted)
    })
    .await;
    let span = tags.last().map_or(1, |t| t.1) + 33;
    let started = tokio::time::Instant::now();
    for round in 0u32.. {
        for (i, (kind, ts, body)) in tags.iter().enumerate() {
            let config = body.get(1) == Some(&0) && i < 4;
            if round > 0 && config {
                continue;
            }
            let at = round * span + ts;
            tokio::time::sleep_until(started + Duration::from_millis(u64::from(at))).await;
            if Instant::now() >= until {
                return;
            }
            let time = RtmpTimestamp::new(at);
            let packet = match kind {
                9 => session.publish_video_data(body.clone(), time, false),
                _ => session.publish_audio_data(body.clone(), time, false),
            };
            if let Ok(ClientSessionResult::OutboundResponse(p)) = packet
                && socket.write_all(&p.bytes).await.is_err()
            {
                return;
            }
        }
    }
}

async fn send(socket: &mut TcpStream, results: Vec<ClientSessionResult>) {
    for r in results {
        if let ClientSessionResult::OutboundResponse(p) = r {
            socket.write_all(&p.bytes).await.unwrap();
        }
    }
}

/// Reads until `wanted` happens, sending every packet the session asks to (its chunk size
/// among them, which comes after the connect's answer).
async fn until_event(
    socket: &mut TcpStream,
    session: &mut ClientSession,
    buf: &mut [u8],
    wanted: impl Fn(&ClientSessionEvent) -> bool,
) {
    loop {
        let n = socket.read(buf).await.unwrap();
        assert!(n > 0, "the RTMP server closed the connection");
        let results = session.handle_input(&buf[..n]).unwrap();
        let seen = results
            .iter()
            .any(|r| matches!(r, ClientSessionResult::RaisedEvent(e) if wanted(e)));
        send(socket, results).await;
        if seen {
            return;
        }
    }
}
