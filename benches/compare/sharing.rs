//! One live feed in N calls: the CPU of callfeed carrying one RTMP feed (the 1080p High clip
//! with B-frames, pushed as an encoder would) into N calls, against what a user does without
//! it — N ffmpeg processes, each pulling the same stream from nginx-rtmp and re-encoding it
//! for its room. The publisher is the same ffmpeg push on both sides and is not counted.
//!
//! On callfeed's side a call's media cost is its ingest pull of the feed's stream: N readers
//! pull N published URLs of the one feed (what N sessions' cloud tasks pull).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::measure::{self, Stdout};
use crate::report::stat;
use crate::tools::{Bench, Tool, stream_name};
use crate::{MEDIA_SECS, ROUNDS};

/// The calls each row carries.
const CALLS: [usize; 3] = [1, 10, 50];

pub(crate) fn feed_sharing(bench: &Bench) -> Value {
    let mut rows = Vec::new();
    for calls in CALLS {
        let runs: Vec<(f64, f64, u64)> = (0..ROUNDS).map(|_| callfeed_side(calls, bench)).collect();
        let ffmpeg: Vec<f64> = (0..ROUNDS).map(|_| ffmpeg_side(calls, bench)).collect();
        let median = |v: Vec<f64>| (stat(v).median * 1000.0).round() / 1000.0;
        rows.push(json!({
            "calls": calls,
            "callfeed_cpu_seconds": median(runs.iter().map(|r| r.0).collect()),
            "callfeed_rss_mb": median(runs.iter().map(|r| r.1).collect()),
            "callfeed_mb_to_readers": runs.iter().map(|r| r.2).min().unwrap_or(0) / 1_000_000,
            "ffmpeg_cpu_seconds": median(ffmpeg),
        }));
    }
    let cpu = |i: usize| rows[i]["callfeed_cpu_seconds"].as_f64().unwrap_or(0.0);
    let ratio = |i: usize| (cpu(i) / cpu(0).max(1e-3) * 100.0).round() / 100.0;
    let ffmpeg_10 = rows[1]["ffmpeg_cpu_seconds"].as_f64().unwrap_or(0.0);
    json!({
        "media_seconds": MEDIA_SECS,
        "input": "1080p H.264 High with B-frames + AAC 44.1 kHz, pushed over RTMP; the feed is encoded at 720p30",
        "rows": rows,
        "callfeed_10_over_1": ratio(1),
        "callfeed_50_over_1": ratio(2),
        "ffmpeg_10_over_callfeed_10": (ffmpeg_10 / cpu(1).max(1e-3) * 100.0).round() / 100.0,
        "target": "10 calls ≤ 1.3 × the CPU of 1 call; 50 calls ≤ 2 ×",
        "met": ratio(1) <= 1.3 && ratio(2) <= 2.0,
    })
}

/// The publisher both sides get: the clip looped and pushed in real time, unchanged.
fn publisher(bench: &Bench, url: &str) -> Child {
    bench
        .command(
            Tool::Ffmpeg,
            "-re -stream_loop -1 -i {real} -c copy -f flv {url}",
            url,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

/// callfeed serving one feed to `calls` readers: (CPU-s over the media time, peak RSS in MB,
/// bytes the slowest reader got).
fn callfeed_side(calls: usize, bench: &Bench) -> (f64, f64, u64) {
    let serve = bench.callfeed([
        "serve",
        "--emulator",
        "--listen",
        "127.0.0.1:0",
        "--rtmp-listen",
        "127.0.0.1:0",
    ]);
    measure::run([serve], Stdout::Read, |procs| {
        let api = procs.serve_api(0);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let http = reqwest::Client::new();
            let request = http
                .post(format!("{api}/v1/feeds"))
                .header("content-type", "application/json")
                .body(r#"{"kind":"rtmp"}"#);
            let feed = json_of(request).await;
            let id = feed["id"].as_str().expect("a feed").to_owned();
            let mut push = publisher(bench, feed["publish"]["url"].as_str().unwrap());
            until_live(&http, &api, 1).await;
            let mut urls = Vec::new();
            for _ in 0..calls {
                let preview = json_of(http.post(format!("{api}/v1/feeds/{id}/preview"))).await;
                urls.push(preview["url"].as_str().unwrap().to_owned());
            }
            let before = procs.cpu_seconds();
            let got = read_all(&http, &urls, Duration::from_secs(MEDIA_SECS)).await;
            let cpu = procs.cpu_seconds() - before;
            let _ = push.kill();
            let _ = push.wait();
            (cpu, procs.peak_rss_mb(), got)
        })
    })
}

/// The JSON a request to a serve's API is answered with (`null` when it is not JSON).
pub(crate) async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let answer = request.send().await.expect("the API answers");
    serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap_or_default()
}

/// Waits (at most 30 s) until `feeds` feeds of the serve at `api` are live.
pub(crate) async fn until_live(http: &reqwest::Client, api: &str, feeds: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = json_of(http.get(format!("{api}/v1/feeds"))).await;
        let live = listed["feeds"]
            .as_array()
            .map_or(0, |f| f.iter().filter(|f| f["state"] == "live").count());
        if live == feeds {
            return;
        }
        assert!(Instant::now() < deadline, "{live} of {feeds} feeds live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads every URL for `time`, discarding the bytes; the fewest any reader got.
pub(crate) async fn read_all(http: &reqwest::Client, urls: &[String], time: Duration) -> u64 {
    use futures::StreamExt;
    let reads = urls.iter().map(|url| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let mut got = 0u64;
            let Ok(answer) = http.get(&url).send().await else {
                return 0;
            };
            let mut body = answer.bytes_stream();
            let until = tokio::time::Instant::now() + time;
            while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(until, body.next()).await {
                got += chunk.len() as u64;
            }
            got
        })
    });
    let mut fewest = u64::MAX;
    for read in reads.collect::<Vec<_>>() {
        fewest = fewest.min(read.await.unwrap_or(0));
    }
    fewest
}

/// `calls` ffmpeg processes each pulling the publisher's stream from nginx and re-encoding
/// it to 720p30 for a room of its own: their CPU-s over the media time.
fn ffmpeg_side(calls: usize, bench: &Bench) -> f64 {
    let source = bench.nginx.url(&stream_name("share"));
    let mut push = publisher(bench, &source);
    // nginx has the stream once a player can read its first packets.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Command::new("ffprobe")
        .args(["-v", "quiet", "-rw_timeout", "2000000", "-i", &source])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "nginx never had the publisher's stream"
        );
    }
    let transcodes = (0..calls).map(|i| {
        let out = bench.nginx.url(&stream_name(&format!("room{i}x")));
        let template = format!("-i {source} {{ffmpeg_live}} {{url}}");
        bench.command(Tool::Ffmpeg, &template, &out)
    });
    let cpu = measure::run(transcodes, Stdout::Discard, |procs| {
        std::thread::sleep(Duration::from_secs(MEDIA_SECS));
        procs.cpu_seconds()
    });
    let _ = push.kill();
    let _ = push.wait();
    cpu
}
