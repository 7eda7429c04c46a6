//! Figures with code of their own: each returns its part of report.json.

use std::time::Duration;

use callfeed::media::contract::Profile;

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

/// This process's resident memory now, in MB (the bench runs sessions in-process, as `serve`
/// does).
fn own_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Live sessions of `input` started the way `serve` starts them: probed, the settings
/// following the probe, and pushed to nginx.
struct Sessions {
    streams: Vec<callfeed::media::live::LiveStream>,
    outputs: Vec<callfeed::media::rtmp::RtmpOutput>,
}

impl Sessions {
    fn new() -> Self {
        Self {
            streams: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn start(&mut self, bench: &Bench, input: &str, profile: Profile, loops: bool) {
        use callfeed::media::contract::Contract;
        use callfeed::media::input::InputSpec;
        use callfeed::media::live::{LiveSettings, LiveStream, Loops};
        let spec = InputSpec::parse(input).unwrap();
        let contract = Contract::new(profile);
        let report = callfeed::media::inspect::probe(&spec, contract).ok();
        let mut settings = LiveSettings::new(contract);
        settings.follow(report.as_ref(), None);
        if loops {
            settings.loops = Loops::Forever;
        }
        let topologies = callfeed::media::topology::Topologies::builtin().unwrap();
        let stream = LiveStream::start(spec, settings, &topologies).unwrap();
        let url = bench.nginx.url(&stream_name("session"));
        self.outputs
            .push(callfeed::media::rtmp::RtmpOutput::start(stream.hub(), url).unwrap());
        self.streams.push(stream);
    }

    async fn stop(self) {
        for o in self.outputs {
            o.stop().await;
        }
        for s in self.streams {
            let _ = s.stop().await;
        }
    }
}

/// RSS added per extra live 720p session inside one process: of the test source, and of the
/// 1080p High clip against one ffmpeg process pushing that clip.
pub(crate) fn rss_per_session(bench: &Bench) -> Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut inputs = Vec::new();
    for (label, input) in [
        ("test_source", "test:".to_owned()),
        ("real_clip", bench.real_clip()),
    ] {
        let samples = runtime.block_on(async {
            let mut sessions = Sessions::new();
            let mut samples = Vec::new();
            for _ in 0..3 {
                sessions.start(bench, &input, Profile::P720, true);
                tokio::time::sleep(Duration::from_secs(5)).await;
                samples.push((own_rss_mb() * 10.0).round() / 10.0);
            }
            sessions.stop().await;
            samples
        });
        let per_extra = ((samples[2] - samples[0]) / 2.0 * 10.0).round() / 10.0;
        inputs.push((label, samples, per_extra));
    }
    let ffmpeg = bench.command(
        Tool::Ffmpeg,
        "-re -stream_loop -1 -i {real} {ffmpeg_live} {url}",
        &bench.nginx.url(&stream_name("rssff")),
    );
    let ffmpeg_mb = measure::run([ffmpeg], Stdout::Discard, |procs| {
        std::thread::sleep(Duration::from_secs(5));
        procs.peak_rss_mb()
    });
    let real_per_extra = inputs[1].2;
    let ratio = (real_per_extra / ffmpeg_mb * 100.0).round() / 100.0;
    json!({
        "rss_mb_with_1_2_3_sessions": inputs[0].1,
        "added_rss_mb_per_extra_session": inputs[0].2,
        "real_clip": {
            "rss_mb_with_1_2_3_sessions": inputs[1].1,
            "added_rss_mb_per_extra_session": real_per_extra,
            "one_ffmpeg_process_mb": (ffmpeg_mb * 10.0).round() / 10.0,
            "ratio": ratio,
            "target": "≤ 0.5 × one ffmpeg process",
            "met": ratio <= 0.5,
        },
    })
}

/// N live audio streams of the mp3 in one process (the library `serve` runs) against N ffmpeg
/// processes, N = 1, 10, 50: CPU seconds per stream per media second, and MB per stream.
pub(crate) fn audio_streams(bench: &Bench) -> Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mp3 = bench.args("{mp3}", "").remove(0);
    let mut rows = Vec::new();
    for n in [1usize, 10, 50] {
        let (cpu, rss_before, rss) = runtime.block_on(async {
            let rss_before = own_rss_mb();
            let mut sessions = Sessions::new();
            for _ in 0..n {
                sessions.start(bench, &mp3, Profile::Audio, true);
            }
            // Past the start, then over the media time.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let before = measure::cpu_seconds(std::process::id());
            tokio::time::sleep(Duration::from_secs(MEDIA_SECS)).await;
            let cpu = measure::cpu_seconds(std::process::id()) - before;
            let rss = own_rss_mb();
            sessions.stop().await;
            (cpu, rss_before, rss)
        });
        let pushes = (0..n).map(|_| {
            let url = bench.nginx.url(&stream_name("audioff"));
            bench.command(
                Tool::Ffmpeg,
                "-re -stream_loop -1 -i {mp3} -c:a aac -ar 48000 -ac 2 -b:a 128k -f flv {url}",
                &url,
            )
        });
        let (ffmpeg_cpu, ffmpeg_rss) = measure::run(pushes, Stdout::Discard, |procs| {
            std::thread::sleep(Duration::from_secs(1));
            let before = procs.cpu_seconds();
            std::thread::sleep(Duration::from_secs(MEDIA_SECS));
            (procs.cpu_seconds() - before, procs.peak_rss_mb())
        });
        let per_stream =
            |cpu: f64| (cpu / n as f64 / MEDIA_SECS as f64 * 10000.0).round() / 10000.0;
        let mb = |total: f64| (total / n as f64 * 10.0).round() / 10.0;
        let (a, b) = (per_stream(cpu), per_stream(ffmpeg_cpu));
        rows.push(json!({
            "streams": n,
            "callfeed_cpu_per_stream": a,
            "ffmpeg_cpu_per_stream": b,
            "cpu_ratio": if b > 0.0 { (a / b * 100.0).round() / 100.0 } else { f64::NAN },
            "callfeed_mb_per_stream": mb((rss - rss_before).max(0.0)),
            "ffmpeg_mb_per_stream": mb(ffmpeg_rss),
        }));
    }
    json!({ "media_seconds": MEDIA_SECS, "rows": rows })
}
