//! Figures with code of their own: each returns its part of report.json.

use std::time::Duration;

use serde_json::{Value, json};

use crate::measure::{self, Stdout, clk_tck};
use crate::report::stat;
use crate::tools::{Bench, Tool, stream_name};
use crate::{MEDIA_SECS, ROUNDS};

/// Answer → first decoded frame at the emulator's room observer over 20 sessions, from
/// `callfeed load --emulator` (ffmpeg has no counterpart: it cannot place a call).
pub(crate) fn answer_to_first_frame(bench: &Bench) -> Value {
    let output = bench
        .callfeed([
            "load",
            "--emulator",
            "--calls",
            "20",
            "--rate",
            "2",
            "--concurrency",
            "2",
            "--media",
            "test:",
            "--media-type",
            "video",
            "--profile",
            "720p",
            "--duration",
            "2",
            "--callee-answers-after",
            "200",
            "--json",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .expect("callfeed load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("callfeed load --json prints a report");
    json!({
        "sessions": report["calls"],
        "succeeded": report["succeeded"],
        "answer_to_first_frame_ms": report["answer_to_first_media_ms"],
        "ingest_ms": report["ingest_ms"],
    })
}

/// One announcement to 1, 10 and 50 rooms: one callfeed process serving the MP4 against one
/// ffmpeg push per room; medians over `ROUNDS`.
pub(crate) fn announcement_fanout(bench: &Bench) -> Value {
    // Warm the cache: the announcement is transcoded once, before any room pulls it.
    fanout(1, bench);
    let mut rows = Vec::new();
    for rooms in [1usize, 10, 50] {
        let runs: Vec<_> = (0..ROUNDS).map(|_| fanout(rooms, bench)).collect();
        let med = |f: fn(&(f64, f64, f64, f64)) -> f64| stat(runs.iter().map(f).collect()).median;
        rows.push(json!({
            "rooms": rooms,
            "callfeed_cpu_seconds": (med(|r| r.0) * 1000.0).round() / 1000.0,
            "callfeed_rss_mb": (med(|r| r.1) * 10.0).round() / 10.0,
            "ffmpeg_cpu_seconds": (med(|r| r.2) * 1000.0).round() / 1000.0,
            "ffmpeg_rss_mb": (med(|r| r.3) * 10.0).round() / 10.0,
        }));
    }
    let one = rows[0]["callfeed_cpu_seconds"].as_f64().unwrap_or(0.0);
    let fifty = rows[2]["callfeed_cpu_seconds"].as_f64().unwrap_or(0.0);
    // /proc counts CPU in 10 ms ticks: below one tick, the two costs cannot be told apart.
    let tick = 1.0 / clk_tck();
    let ratio = (one >= tick).then(|| (fifty / one * 100.0).round() / 100.0);
    json!({
        "media_seconds": MEDIA_SECS,
        "rows": rows,
        "callfeed_50_rooms_over_1_room": ratio,
        "target": "50-room fan-out ≤ 1.5 × the 1-room cost",
        "met": fifty <= 1.5 * one.max(tick),
    })
}

/// One announcement served to `rooms` pullers by callfeed (one process, the MP4 served with
/// Range) against `rooms` ffmpeg pushes of the same file. CPU-s and MB, summed per tool.
fn fanout(rooms: usize, bench: &Bench) -> (f64, f64, f64, f64) {
    // callfeed: the cached transcode is served; each room's puller fetches the whole file.
    let serve = bench.command(Tool::Callfeed, "push {wav} --serve --profile audio", "");
    let (callfeed_cpu, callfeed_rss) = measure::run([serve], Stdout::Read, |procs| {
        let url = procs.first_line(0);
        let cpu_before = procs.cpu_seconds();
        pull(rooms, &url);
        (procs.cpu_seconds() - cpu_before, procs.peak_rss_mb())
    });
    // ffmpeg: one process per room.
    let pushes = (0..rooms).map(|i| {
        let url = bench.nginx.url(&stream_name(&format!("fan{i}x")));
        bench.command(
            Tool::Ffmpeg,
            "-re -i {wav} -c:a aac -b:a 128k -f flv {url}",
            &url,
        )
    });
    let (ffmpeg_cpu, ffmpeg_rss) = measure::run(pushes, Stdout::Discard, |procs| {
        std::thread::sleep(Duration::from_secs(MEDIA_SECS));
        (procs.cpu_seconds(), procs.peak_rss_mb())
    });
    (callfeed_cpu, callfeed_rss, ffmpeg_cpu, ffmpeg_rss)
}

/// `rooms` pullers each play the file at `url` through, fetching it in ranges as they go.
fn pull(rooms: usize, url: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let pulls = (0..rooms).map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            async move {
                let len = client
                    .head(&url)
                    .send()
                    .await
                    .unwrap()
                    .content_length()
                    .unwrap_or(0);
                let chunk = (len / MEDIA_SECS).max(1);
                let mut from = 0;
                while from < len {
                    let to = (from + chunk - 1).min(len - 1);
                    let r = client
                        .get(&url)
                        .header("Range", format!("bytes={from}-{to}"))
                        .send()
                        .await
                        .unwrap();
                    let _ = r.bytes().await.unwrap();
                    from = to + 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        futures::future::join_all(pulls).await;
    });
}

/// Added RSS per extra live 720p session inside one callfeed process.
pub(crate) fn rss_per_session(bench: &Bench) -> Value {
    use callfeed::media::contract::{Contract, Profile};
    use callfeed::media::input::InputSpec;
    use callfeed::media::live::{LiveSettings, LiveStream};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rss_now = || {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    runtime.block_on(async {
        let topologies = callfeed::media::topology::Topologies::builtin().unwrap();
        let mut streams = Vec::new();
        let mut outputs = Vec::new();
        let mut samples = Vec::new();
        for i in 0..3 {
            let s = LiveStream::start(
                InputSpec::parse("test:").unwrap(),
                LiveSettings::new(Contract::new(Profile::P720)),
                &topologies,
            )
            .unwrap();
            let url = bench.nginx.url(&format!("rss{i}"));
            outputs.push(callfeed::media::rtmp::RtmpOutput::start(s.hub(), url).unwrap());
            streams.push(s);
            tokio::time::sleep(Duration::from_secs(4)).await;
            samples.push(rss_now());
        }
        let per_extra = ((samples[2] - samples[0]) / 2.0 * 10.0).round() / 10.0;
        for o in outputs {
            o.stop().await;
        }
        for s in streams {
            let _ = s.stop().await;
        }
        let samples: Vec<f64> = samples
            .iter()
            .map(|mb| (mb * 10.0).round() / 10.0)
            .collect();
        json!({"rss_mb_with_1_2_3_sessions": samples, "added_rss_mb_per_extra_session": per_extra})
    })
}
