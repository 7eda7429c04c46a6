//! callfeed against the ffmpeg CLI on the same input, in the same run, on this machine.
//!
//! `make bench` runs it and writes `target/bench-report/report.{json,md}` and `chart.svg`.
//! Every comparison runs the two tools interleaved (A B A B ...) `ROUNDS` times on the same
//! input and reports the median with min and max, and the ratio of the medians.
//! CPU is read from /proc (user + system time of the process), RSS from VmHWM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../support/rtmp_reader.rs"]
mod rtmp_reader;
use rtmp_reader::RtmpReader;

const ROUNDS: usize = 3;
const MEDIA_SECS: u64 = 8;
const CALLFEED: &str = env!("CARGO_BIN_EXE_callfeed");
/// The ffmpeg command a user would write for a live push (the issue's reference command).
const FFMPEG_LIVE: &str =
    "-c:v libx264 -preset veryfast -tune zerolatency -b:v 2M -g 60 -bf 0 -c:a aac -b:a 128k -f flv";
/// ffmpeg's own moving 720p30 test pattern and a 440 Hz tone.
const FFMPEG_TEST_SOURCE: &str =
    "-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000";
/// A stream is real-time while its wall time stays within this factor of its media time.
const REAL_TIME_SLACK: f64 = 1.05;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn clk_tck() -> f64 {
    100.0
}

/// user + system CPU seconds of a process and its threads, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / clk_tck()
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Nginx {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = dir.path().display();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log {p}/error.log warn;
events {{ worker_connections 1024; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; }} }} }}"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .args(["-c", &format!("{p}/nginx.conf"), "-p", &p.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx with the RTMP module (make setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` for `secs` of wall time; returns (CPU seconds, peak RSS MB).
fn measure(mut cmd: Command, secs: u64) -> (f64, f64) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = cpu_seconds(pid);
    let rss = peak_rss_mb(pid);
    let _ = child.kill();
    let _ = child.wait();
    (cpu, rss)
}

#[derive(Debug, Clone, serde::Serialize)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    samples: Vec<f64>,
}

fn stat(mut v: Vec<f64>) -> Stat {
    let samples = v.clone();
    v.sort_by(|a, b| a.total_cmp(b));
    Stat {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
        samples,
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Comparison {
    name: String,
    unit: String,
    callfeed: Stat,
    ffmpeg: Stat,
    /// callfeed median / ffmpeg median.
    ratio: f64,
    target: String,
    met: Option<bool>,
}

fn compare(
    name: &str,
    unit: &str,
    target: &str,
    target_ratio: Option<f64>,
    mut callfeed: impl FnMut() -> f64,
    mut ffmpeg: impl FnMut() -> f64,
) -> Comparison {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        eprintln!("  {name}: round {}/{ROUNDS}", round + 1);
        a.push(callfeed());
        b.push(ffmpeg());
    }
    let (a, b) = (stat(a), stat(b));
    let ratio = if b.median > 0.0 {
        a.median / b.median
    } else {
        f64::NAN
    };
    Comparison {
        name: name.into(),
        unit: unit.into(),
        ratio: (ratio * 1000.0).round() / 1000.0,
        met: target_ratio.map(|t| ratio <= t),
        target: target.into(),
        callfeed: a,
        ffmpeg: b,
    }
}

fn callfeed_cmd(args: &[&str], cache: &Path) -> Command {
    let mut c = Command::new(CALLFEED);
    c.args(args)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("CALLFEED_CONFIG");
    c
}

fn ffmpeg_cmd(args: &str) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args.split_whitespace());
    c
}

fn gst(pipeline: &str) {
    assert!(
        Command::new("gst-launch-1.0")
            .args(["-q", "-e"])
            .args(pipeline.split_whitespace())
            .status()
            .unwrap()
            .success(),
        "{pipeline}"
    );
}

fn version(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    json!({
        "cores": cores(),
        "cpu": cpu,
        "gstreamer": version("gst-launch-1.0", &["--version"]),
        "ffmpeg": version("ffmpeg", &["-version"]),
        "callfeed": version(CALLFEED, &["--version"]),
    })
}

/// Throughput of the control plane: signatures per second on one core, and call + ingest
/// requests per second against the in-process emulator with client-side limits off.
fn control_plane() -> Value {
    use callfeed::cloud::{tc3, usersig};
    let key = b"5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    let rate = |f: &mut dyn FnMut(u64)| {
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(2) {
            f(n);
            n += 1;
        }
        (n as f64 / started.elapsed().as_secs_f64()).round()
    };
    let usersigs = rate(&mut |n| {
        std::hint::black_box(usersig::generate(
            1_400_000_000,
            key,
            "robot",
            86_400,
            1_700_000_000 + n,
            None,
        ));
    });
    let body = br#"{"SdkAppId":1400000000,"TaskId":"t"}"#;
    let tc3s = rate(&mut |n| {
        std::hint::black_box(tc3::sign(
            "secret",
            &tc3::SignInput {
                method: "POST",
                canonical_uri: "/",
                canonical_query: "",
                signed_headers: &[
                    ("content-type", "application/json"),
                    ("host", "trtc.tencentcloudapi.com"),
                ],
                payload: Some(body),
                timestamp: 1_700_000_000 + n as i64,
                service: "trtc",
            },
        ));
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let requests = runtime.block_on(async {
        use callfeed::cloud::call::{CallClient, ImCredentials};
        use callfeed::cloud::http::{HttpSettings, Transport};
        use callfeed::cloud::ingest::{ApiCredentials, IngestClient};
        let emulator = callfeed::emulator::Emulator::start(
            callfeed::emulator::EmulatorConfig {
                sdkappid: 1_400_000_000,
                sdk_secret_key: std::str::from_utf8(key).unwrap().into(),
                admin: "administrator".into(),
                secret_id: "AKIDbench".into(),
                secret_key: "benchsecret".into(),
                pace: callfeed::emulator::Pace::Fast,
                default_behaviour: callfeed::emulator::Behaviour::NeverAnswer,
                behaviours: Default::default(),
                trtc_callback: None,
                record_delay: Duration::ZERO,
                reconnect_delays: vec![Duration::ZERO],
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let base = url::Url::parse(&format!("{}/", emulator.endpoints().im_endpoint)).unwrap();
        let transport = Arc::new(
            Transport::new(HttpSettings {
                rate_limits: false,
                max_attempts: 1,
                ..HttpSettings::default()
            })
            .unwrap(),
        );
        let calls = CallClient::new(
            transport.clone(),
            base.clone(),
            ImCredentials {
                sdkappid: 1_400_000_000,
                secret_key: std::str::from_utf8(key).unwrap().into(),
                admin: callfeed::cloud::UserId::new("a", "administrator").unwrap(),
            },
        );
        let ingest = IngestClient::new(
            transport,
            base,
            "ap-singapore".into(),
            ApiCredentials {
                secret_id: "AKIDbench".into(),
                secret_key: "benchsecret".into(),
            },
            1_400_000_000,
            std::str::from_utf8(key).unwrap().into(),
        );
        let started = Instant::now();
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut workers = Vec::new();
        for w in 0..8 {
            let (calls, ingest, done) = (calls.clone(), ingest.clone(), done.clone());
            workers.push(tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(3) {
                    // The emulator answers 101004 / NotExist: a full signed round trip each.
                    let _ = calls.get_call_info(&format!("c{w}")).await;
                    let _ = ingest.describe("t").await;
                    done.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        let rate = done.load(std::sync::atomic::Ordering::Relaxed) as f64
            / started.elapsed().as_secs_f64();
        emulator.shutdown().await;
        rate.round()
    });
    json!({
        "usersig_per_second_one_core": usersigs,
        "tc3_signatures_per_second_one_core": tc3s,
        "call_and_ingest_requests_per_second_against_the_emulator": requests,
    })
}

/// Added RSS per extra live 720p session inside one callfeed process.
fn rss_per_session(nginx: &Nginx) -> Value {
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
            outputs.push(
                callfeed::media::rtmp::RtmpOutput::start(s.hub(), nginx.url(&format!("rss{i}")))
                    .unwrap(),
            );
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

/// A chart row: label, callfeed's median, ffmpeg's median.
type Bar = (String, f64, f64);

/// A bar chart, one section per (title, rows).
fn svg_chart(sections: &[(&str, Vec<Bar>)]) -> String {
    let width = 760;
    let bar_h = 16;
    let gap = 14;
    let label_w = 330;
    let row_h = 2 * bar_h + gap;
    let height: usize = sections
        .iter()
        .map(|(_, rows)| 30 + rows.len() * row_h)
        .sum::<usize>()
        + 20;
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' font-size='12'>"
    );
    let mut y = 0;
    for (title, rows) in sections {
        let max = rows
            .iter()
            .map(|r| r.1.max(r.2))
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let scale = (width - label_w - 80) as f64 / max;
        svg.push_str(&format!(
            "<text x='10' y='{}' font-weight='bold'>{title}: callfeed (blue) vs ffmpeg (grey)</text>",
            y + 18
        ));
        y += 30;
        for (name, a, b) in rows {
            svg.push_str(&format!("<text x='10' y='{}'>{name}</text>", y + bar_h));
            for (j, (v, color)) in [(a, "#2b6cb0"), (b, "#a0a0a0")].iter().enumerate() {
                let yy = y + j * bar_h;
                let w = (*v * scale).max(1.0);
                svg.push_str(&format!(
                    "<rect x='{label_w}' y='{yy}' width='{w:.1}' height='{}' fill='{color}'/><text x='{:.1}' y='{}'>{v:.3}</text>",
                    bar_h - 2,
                    label_w as f64 + w + 4.0,
                    yy + bar_h - 4
                ));
            }
            y += row_h;
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Runs a figure unless `CALLFEED_BENCH_ONLY` (comma-separated keys) leaves it out.
fn wanted(key: &str) -> bool {
    std::env::var("CALLFEED_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|k| k.trim() == key))
}

/// Milliseconds from spawning `cmd` to the first FLV media tag a reader gets from the URL the
/// command prints (callfeed) or listens on (ffmpeg `-listen 1`).
fn startup_ms(mut cmd: Command, url: Option<&str>) -> f64 {
    use std::io::{BufRead, BufReader};
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = match url {
        Some(u) => u.to_owned(),
        None => {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            line.trim().to_owned()
        }
    };
    // Connect as soon as anything listens, like an impatient player, and read until the
    // first video tag that carries a picture (not the sequence header).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let elapsed = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut response = loop {
            match client.get(&url).send().await {
                Ok(r) => break r,
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(2)).await
                }
                Err(e) => panic!("{url}: {e}"),
            }
        };
        let mut data: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
                .await
                .expect("media within 10 s")
                .unwrap()
                .expect("the stream goes on");
            data.extend_from_slice(&chunk);
            let Some(start) = data.windows(3).position(|w| w == b"FLV") else {
                continue;
            };
            let flv = &data[start..];
            let mut at = 13;
            while at + 13 <= flv.len() {
                let size = u32::from_be_bytes([0, flv[at + 1], flv[at + 2], flv[at + 3]]) as usize;
                if flv[at] & 0x1f == 9 && flv[at + 12] == 1 {
                    return started.elapsed();
                }
                at += 11 + size + 4;
            }
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    (elapsed.as_secs_f64() * 1000.0).round()
}

/// Milliseconds from spawning the command made for a URL to the first picture at an RTMP
/// player that was already waiting at nginx for that stream.
fn rtmp_startup_ms(nginx: &Nginx, command_for: impl FnOnce(&str) -> Command) -> f64 {
    let url = nginx.url(&format!("u{}", rand::random::<u32>()));
    let reader = RtmpReader::start(&url);
    assert!(
        reader.wait_connected(Duration::from_secs(5)),
        "the RTMP player did not reach nginx"
    );
    let mut cmd = command_for(&url);
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = reader.wait_first_picture(Duration::from_secs(15));
    let _ = child.kill();
    let _ = child.wait();
    let first = first.unwrap_or_else(|| panic!("no picture reached {url} within 15 s"));
    ((first - started).as_secs_f64() * 1000.0).round()
}

/// Counts the fresh pictures a tool reports on stdout as it runs: callfeed's `--stats` lines
/// (frames out less repeated and slate frames), ffmpeg's `-progress` blocks (frames less
/// duplicated ones). A tool short of CPU either falls behind (ffmpeg) or repeats pictures to
/// keep its timeline real-time (callfeed); either way it sends fewer fresh pictures.
#[derive(Clone, Copy)]
enum FreshFrames {
    CallfeedStats,
    FfmpegProgress,
}

type FreshCount = Arc<std::sync::Mutex<Option<(Instant, u64)>>>;

impl FreshFrames {
    fn follow(self, stdout: std::process::ChildStdout) -> FreshCount {
        use std::io::BufRead;
        let latest: FreshCount = Arc::default();
        let out = latest.clone();
        std::thread::spawn(move || {
            let (mut frames, mut dups) = (0u64, 0u64);
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let fresh = match self {
                    FreshFrames::CallfeedStats => {
                        serde_json::from_str::<Value>(&line).ok().and_then(|s| {
                            let n = |k: &str| s[k].as_u64();
                            Some(n("frames_out")? - n("repeated_frames")? - n("slate_frames")?)
                        })
                    }
                    FreshFrames::FfmpegProgress => {
                        match line.split_once('=') {
                            Some(("frame", v)) => frames = v.trim().parse().unwrap_or(frames),
                            Some(("dup_frames", v)) => dups = v.trim().parse().unwrap_or(dups),
                            _ => {}
                        }
                        line.starts_with("progress=")
                            .then(|| frames.saturating_sub(dups))
                    }
                };
                if let Some(fresh) = fresh {
                    *out.lock().unwrap() = Some((Instant::now(), fresh));
                }
            }
        });
        latest
    }
}

/// Whether `n` concurrent 30 fps streams, each published by the command made for its URL,
/// all stay real-time. Over a window after a warm-up, every stream must (a) advance its video
/// timeline at an RTMP player of nginx and (b) send fresh pictures, each within
/// `REAL_TIME_SLACK` of the wall clock.
fn sustains(
    n: usize,
    nginx: &Nginx,
    command_for: &dyn Fn(&str) -> Command,
    fresh_frames: FreshFrames,
) -> bool {
    const WARM_UP: Duration = Duration::from_secs(2);
    const WINDOW: Duration = Duration::from_secs(6);
    let urls: Vec<String> = (0..n)
        .map(|i| nginx.url(&format!("n{i}x{}", rand::random::<u32>())))
        .collect();
    let readers: Vec<RtmpReader> = urls.iter().map(|u| RtmpReader::start(u)).collect();
    for r in &readers {
        assert!(
            r.wait_connected(Duration::from_secs(5)),
            "an RTMP player did not reach nginx"
        );
    }
    let mut children: Vec<Child> = Vec::new();
    let mut counts: Vec<FreshCount> = Vec::new();
    for url in &urls {
        let mut child = command_for(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        counts.push(fresh_frames.follow(child.stdout.take().unwrap()));
        children.push(child);
    }
    let all_started = readers
        .iter()
        .all(|r| r.wait_first_picture(Duration::from_secs(20)).is_some());
    // The slowest stream's rate against real time, by timeline and by fresh pictures.
    let (timeline, pictures) = if all_started {
        std::thread::sleep(WARM_UP);
        let timeline_before: Vec<Option<u32>> = readers
            .iter()
            .map(|r| r.latest_video().map(|l| l.1))
            .collect();
        let pictures_before: Vec<Option<(Instant, u64)>> =
            counts.iter().map(|c| *c.lock().unwrap()).collect();
        let window_start = Instant::now();
        std::thread::sleep(WINDOW);
        let wall = window_start.elapsed().as_secs_f64();
        let timeline = readers
            .iter()
            .zip(timeline_before)
            .map(|(r, before)| match (before, r.latest_video()) {
                (Some(m0), Some((_, m1))) => f64::from(m1.saturating_sub(m0)) / 1000.0 / wall,
                _ => 0.0,
            })
            .fold(f64::INFINITY, f64::min);
        let pictures = counts
            .iter()
            .zip(pictures_before)
            .map(|(c, before)| match (before, *c.lock().unwrap()) {
                (Some((t0, f0)), Some((t1, f1))) if t1 > t0 => {
                    (f1.saturating_sub(f0)) as f64 / 30.0 / (t1 - t0).as_secs_f64()
                }
                _ => 0.0,
            })
            .fold(f64::INFINITY, f64::min);
        (timeline, pictures)
    } else {
        (0.0, 0.0)
    };
    for c in &mut children {
        let _ = c.kill();
    }
    for c in &mut children {
        let _ = c.wait();
    }
    let verdict = timeline.min(pictures) * REAL_TIME_SLACK >= 1.0;
    eprintln!(
        "    {n} streams: {} (slowest: timeline {timeline:.3} ×, fresh pictures {pictures:.3} × real time)",
        if verdict { "real-time" } else { "behind" }
    );
    verdict
}

/// The largest n for which `sustains(n)` holds: galloping from `start` (1, 2, 4 ... away)
/// until the answer changes, then halving the gap, so a round costs a handful of trials.
fn max_sustained(start: usize, mut sustains: impl FnMut(usize) -> bool) -> usize {
    const CAP: usize = 64;
    let start = start.clamp(1, CAP);
    let (mut good, mut bad) = if sustains(start) {
        let (mut good, mut step) = (start, 1);
        loop {
            let next = (good + step).min(CAP);
            if next == good {
                return good;
            }
            if !sustains(next) {
                break (good, next);
            }
            good = next;
            step *= 2;
        }
    } else {
        let (mut bad, mut step) = (start, 1);
        loop {
            let next = bad.saturating_sub(step);
            if next == 0 {
                break (0, bad);
            }
            if sustains(next) {
                break (next, bad);
            }
            bad = next;
            step *= 2;
        }
    };
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if sustains(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
}

/// Answer → first decoded frame at the emulator's room observer over 20 sessions, from
/// `callfeed load --emulator` (ffmpeg has no counterpart: it cannot place a call).
fn answer_to_first_frame(cache: &Path) -> Value {
    let output = callfeed_cmd(
        &[
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
        ],
        cache,
    )
    .stderr(Stdio::null())
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

/// One announcement served to `rooms` pullers by callfeed (one process, the MP4 served with
/// Range) against `rooms` ffmpeg pushes of the same file. CPU-s and MB, summed per tool.
fn fanout(rooms: usize, wav: &str, cache: &Path, nginx: &Nginx) -> (f64, f64, f64, f64) {
    // callfeed: the cached transcode is served; each room's puller fetches the whole file.
    let mut child = callfeed_cmd(&["push", wav, "--serve", "--profile", "audio"], cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let url = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_owned()
    };
    let cpu_before = cpu_seconds(pid);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let pulls = (0..rooms).map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                // A puller plays the file through, fetching it in ranges as it goes.
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
    let callfeed_cpu = cpu_seconds(pid) - cpu_before;
    let callfeed_rss = peak_rss_mb(pid);
    let _ = child.kill();
    let _ = child.wait();
    // ffmpeg: one process per room.
    let mut children: Vec<Child> = (0..rooms)
        .map(|i| {
            ffmpeg_cmd(&format!(
                "-re -i {wav} -c:a aac -b:a 128k -f flv {}",
                nginx.url(&format!("fan{i}x{}", rand::random::<u32>()))
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(MEDIA_SECS));
    let ffmpeg_cpu: f64 = children.iter().map(|c| cpu_seconds(c.id())).sum();
    let ffmpeg_rss: f64 = children.iter().map(|c| peak_rss_mb(c.id())).sum();
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    (callfeed_cpu, callfeed_rss, ffmpeg_cpu, ffmpeg_rss)
}

fn main() {
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    std::fs::create_dir_all(&out_dir).unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    let cache = work.path().join("cache");
    eprintln!("preparing inputs");
    gst(&format!(
        "videotestsrc num-buffers=600 pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
         ! x264enc speed-preset=veryfast bframes=0 key-int-max=30 ! video/x-h264,profile=constrained-baseline ! h264parse \
         ! queue ! mp4mux faststart=true name=m ! filesink location={w}/clip720.mp4 \
         audiotestsrc num-buffers=940 samplesperbuffer=1024 freq=440 ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! voaacenc ! aacparse ! queue ! m."
    ));
    // The same picture as H.264 High with B-frames: not passthrough material, so both tools
    // decode and encode it at 720p.
    gst(&format!(
        "videotestsrc num-buffers=600 pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
         ! x264enc speed-preset=veryfast bframes=2 key-int-max=60 ! video/x-h264,profile=high ! h264parse \
         ! queue ! mp4mux faststart=true name=m ! filesink location={w}/clip720high.mp4 \
         audiotestsrc num-buffers=940 samplesperbuffer=1024 freq=440 ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! voaacenc ! aacparse ! queue ! m."
    ));
    gst(&format!(
        "audiotestsrc num-buffers=500 samplesperbuffer=960 freq=440 ! audio/x-raw,rate=48000,channels=2 ! wavenc ! filesink location={w}/announcement.wav"
    ));
    let nginx = Nginx::start();
    let mut comparisons = Vec::new();
    let per_media = |cpu: f64| (cpu / MEDIA_SECS as f64 * 1000.0).round() / 1000.0;
    let secs = MEDIA_SECS + 1;

    // CPU-s per media-s of one run of a command that streams to the URL it is given.
    let cpu = |cmd: Command| per_media(measure(cmd, secs).0);
    let push = |input: &str, extra: &[&str], prefix: &str| {
        let mut args = vec!["push", input];
        args.extend_from_slice(extra);
        let url = nginx.url(&format!("{prefix}{}", rand::random::<u32>()));
        args.extend_from_slice(&["--rtmp", &url]);
        callfeed_cmd(&args, &cache)
    };
    let ffmpeg_to_nginx = |args: &str| {
        ffmpeg_cmd(&format!(
            "{args} {}",
            nginx.url(&format!("f{}", rand::random::<u32>()))
        ))
    };
    let clip = format!("{w}/clip720.mp4");
    let wav = format!("{w}/announcement.wav");
    let test_pattern = format!("-re {FFMPEG_TEST_SOURCE} {FFMPEG_LIVE}");

    if wanted("live") {
        eprintln!("live 720p30 test pattern + tone");
        comparisons.push(compare(
            "live 720p30, each tool's own test pattern + 440 Hz tone",
            "CPU-s per media-s",
            "≤ 0.9 × ffmpeg",
            Some(0.9),
            || cpu(push("test:ball+tone=440", &["--profile", "720p"], "t")),
            || cpu(ffmpeg_to_nginx(&test_pattern)),
        ));
    }
    let high = format!("{w}/clip720high.mp4");
    if wanted("clip") {
        eprintln!("live clip decoded and re-encoded");
        comparisons.push(compare(
            "live 720p30, the same H.264 High clip decoded and re-encoded",
            "CPU-s per media-s",
            "≤ 0.9 × ffmpeg",
            Some(0.9),
            || {
                cpu(push(
                    &high,
                    &["--live", "--loop", "forever", "--profile", "720p"],
                    "c",
                ))
            },
            || {
                cpu(ffmpeg_to_nginx(&format!(
                    "-re -stream_loop -1 -i {high} {FFMPEG_LIVE}"
                )))
            },
        ));
    }
    if wanted("audio") {
        eprintln!("audio profile");
        comparisons.push(compare(
            "audio profile, wav announcement → AAC in FLV",
            "CPU-s per media-s",
            "≤ 0.9 × ffmpeg",
            Some(0.9),
            || {
                cpu(push(
                    &wav,
                    &["--live", "--loop", "forever", "--profile", "audio"],
                    "a",
                ))
            },
            || {
                cpu(ffmpeg_to_nginx(&format!(
                    "-re -stream_loop -1 -i {wav} -c:a aac -b:a 128k -f flv"
                )))
            },
        ));
    }
    if wanted("passthrough") {
        eprintln!("passthrough");
        comparisons.push(compare(
            "passthrough: H.264/AAC MP4 remuxed live",
            "CPU-s per media-s",
            "≤ ffmpeg -c copy",
            Some(1.0),
            || {
                cpu(push(
                    &clip,
                    &["--live", "--loop", "forever", "--profile", "720p"],
                    "p",
                ))
            },
            || {
                cpu(ffmpeg_to_nginx(&format!(
                    "-re -stream_loop -1 -i {clip} -c copy -f flv"
                )))
            },
        ));
    }
    let mut concurrency = Value::Null;
    if wanted("concurrency") {
        eprintln!("concurrent real-time 720p30 streams");
        // Start each search where the same clip's single-stream CPU says the cores run out.
        let estimate = |tool: fn(&Comparison) -> f64| {
            comparisons
                .iter()
                .find(|c| c.name.contains("High clip"))
                .map_or(4, |c| (cores() as f64 / tool(c).max(0.01)) as usize)
        };
        let callfeed_start = estimate(|c| c.callfeed.median);
        let ffmpeg_start = estimate(|c| c.ffmpeg.median);
        let callfeed_stream = |url: &str| {
            callfeed_cmd(
                &[
                    "push",
                    &high,
                    "--live",
                    "--loop",
                    "forever",
                    "--profile",
                    "720p",
                    "--rtmp",
                    url,
                    "--stats",
                ],
                &cache,
            )
        };
        let ffmpeg_stream = |url: &str| {
            ffmpeg_cmd(&format!(
                "-progress pipe:1 -stats_period 0.5 -re -stream_loop -1 -i {high} {FFMPEG_LIVE} {url}"
            ))
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            eprintln!("  concurrency: round {}/{ROUNDS}", round + 1);
            let from = a.last().copied().unwrap_or(callfeed_start as f64) as usize;
            a.push(max_sustained(from, |n| {
                sustains(n, &nginx, &callfeed_stream, FreshFrames::CallfeedStats)
            }) as f64);
            let from = b.last().copied().unwrap_or(ffmpeg_start as f64) as usize;
            b.push(max_sustained(from, |n| {
                sustains(n, &nginx, &ffmpeg_stream, FreshFrames::FfmpegProgress)
            }) as f64);
        }
        let (a, b) = (stat(a), stat(b));
        let ratio = a.median / b.median.max(1.0);
        concurrency = json!({ "callfeed": a.median, "ffmpeg": b.median });
        comparisons.push(Comparison {
            name: format!(
                "concurrent real-time 720p30 streams, the same H.264 High clip decoded and re-encoded (a stream falls behind when wall time exceeds media time by > {:.0} %)",
                (REAL_TIME_SLACK - 1.0) * 100.0
            ),
            unit: "streams".into(),
            ratio: (ratio * 1000.0).round() / 1000.0,
            met: Some(a.median >= b.median),
            target: "≥ ffmpeg".into(),
            callfeed: a,
            ffmpeg: b,
        });
    }
    let mut extra = json!({});
    if wanted("startup") {
        eprintln!("startup to the first picture at a reader");
        comparisons.push(compare(
            "startup: spawn → first picture at an HTTP-FLV reader (720p30 test source)",
            "ms",
            "no later than ffmpeg",
            Some(1.0),
            || {
                startup_ms(
                    callfeed_cmd(&["push", "test:", "--serve", "--profile", "720p"], &cache),
                    None,
                )
            },
            || {
                let url = format!("http://127.0.0.1:{}/live.flv", free_port());
                startup_ms(
                    ffmpeg_cmd(&format!("{test_pattern} -listen 1 {url}")),
                    Some(&url),
                )
            },
        ));
        comparisons.push(compare(
            "startup: spawn → first picture at an RTMP player of nginx (720p30 test source)",
            "ms",
            "no later than ffmpeg",
            Some(1.0),
            || {
                rtmp_startup_ms(&nginx, |url| {
                    callfeed_cmd(
                        &["push", "test:", "--profile", "720p", "--rtmp", url],
                        &cache,
                    )
                })
            },
            || rtmp_startup_ms(&nginx, |url| ffmpeg_cmd(&format!("{test_pattern} {url}"))),
        ));
        eprintln!("answer → first frame at the room observer, 20 sessions");
        extra["answer_to_first_frame"] = answer_to_first_frame(&cache);
    }
    if wanted("fanout") {
        eprintln!("announcement fan-out");
        // Warm the cache: the announcement is transcoded once, before any room pulls it.
        fanout(1, &format!("{w}/announcement.wav"), &cache, &nginx);
        let mut rows = Vec::new();
        for rooms in [1usize, 10, 50] {
            let mut runs = Vec::new();
            for _ in 0..ROUNDS {
                runs.push(fanout(
                    rooms,
                    &format!("{w}/announcement.wav"),
                    &cache,
                    &nginx,
                ));
            }
            let med =
                |f: fn(&(f64, f64, f64, f64)) -> f64| stat(runs.iter().map(f).collect()).median;
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
        extra["announcement_fanout"] = json!({
            "media_seconds": MEDIA_SECS,
            "rows": rows,
            "callfeed_50_rooms_over_1_room": ratio,
            "target": "50-room fan-out ≤ 1.5 × the 1-room cost",
            "met": fifty <= 1.5 * one.max(tick),
        });
    }
    if wanted("rss") {
        eprintln!("peak RSS of one live 720p stream");
        comparisons.push(compare(
            "peak RSS of one live 720p30 stream process",
            "MB",
            "added RSS per extra session ≤ 0.5 × one ffmpeg process (see rss)",
            None,
            || measure(push("test:", &["--profile", "720p"], "r"), 5).1,
            || measure(ffmpeg_to_nginx(&test_pattern), 5).1,
        ));
    }
    let rss = if wanted("rss") {
        eprintln!("RSS per extra session in one process");
        rss_per_session(&nginx)
    } else {
        Value::Null
    };
    let control = if wanted("control") {
        eprintln!("control plane");
        control_plane()
    } else {
        Value::Null
    };
    let report = json!({
        "machine": machine(),
        "rounds": ROUNDS,
        "media_seconds_per_run": MEDIA_SECS,
        "comparisons": comparisons,
        "rss": rss,
        "control_plane": control,
        "concurrent_real_time_streams": concurrency,
        "more": extra,
    });
    std::fs::write(
        out_dir.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    let mut md = format!(
        "# callfeed vs ffmpeg\n\nMachine: {} cores, {}; {}; {}.\n\nEach figure: {ROUNDS} interleaved runs per tool on the same input, {MEDIA_SECS} s of media each; median (min–max).\n\n| figure | unit | callfeed | ffmpeg | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
        report["machine"]["cores"],
        report["machine"]["cpu"].as_str().unwrap_or(""),
        report["machine"]["gstreamer"].as_str().unwrap_or(""),
        report["machine"]["ffmpeg"].as_str().unwrap_or("")
    );
    for c in &comparisons {
        md.push_str(&format!(
            "| {} | {} | {:.3} ({:.3}–{:.3}) | {:.3} ({:.3}–{:.3}) | {:.3} | {} | {} |\n",
            c.name,
            c.unit,
            c.callfeed.median,
            c.callfeed.min,
            c.callfeed.max,
            c.ffmpeg.median,
            c.ffmpeg.min,
            c.ffmpeg.max,
            c.ratio,
            c.target,
            match c.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "—",
            }
        ));
    }
    md.push_str(&format!(
        "\nRSS inside one callfeed process: {} MB with 1, 2, 3 live 720p sessions; {} MB per extra session.\n\nControl plane: {} UserSigs/s and {} TC3 signatures/s on one core; {} call + ingest requests/s against the emulator.\n",
        report["rss"]["rss_mb_with_1_2_3_sessions"], report["rss"]["added_rss_mb_per_extra_session"],
        report["control_plane"]["usersig_per_second_one_core"], report["control_plane"]["tc3_signatures_per_second_one_core"],
        report["control_plane"]["call_and_ingest_requests_per_second_against_the_emulator"],
    ));
    if let Some(f) = report["more"].get("answer_to_first_frame") {
        md.push_str(&format!(
            "\nCallee answered → first decoded frame at the emulator's room observer, over {} sessions ({} succeeded): p50 {} ms, p95 {} ms (`callfeed load --emulator`, 720p test source; ffmpeg cannot place a call).\n",
            f["sessions"],
            f["succeeded"],
            f["answer_to_first_frame_ms"]["p50"],
            f["answer_to_first_frame_ms"]["p95"]
        ));
    }
    if let Some(f) = report["more"].get("announcement_fanout") {
        md.push_str("\nAnnouncement fan-out (one callfeed process serving the MP4 vs one ffmpeg push per room), CPU seconds and MB over the media time:\n\n| rooms | callfeed CPU-s | callfeed MB | ffmpeg CPU-s | ffmpeg MB |\n|---|---|---|---|---|\n");
        for r in f["rows"].as_array().into_iter().flatten() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r["rooms"],
                r["callfeed_cpu_seconds"],
                r["callfeed_rss_mb"],
                r["ffmpeg_cpu_seconds"],
                r["ffmpeg_rss_mb"]
            ));
        }
        md.push_str(&match f["callfeed_50_rooms_over_1_room"].as_f64() {
            Some(r) => format!("\ncallfeed 50 rooms / 1 room: {r} (target ≤ 1.5).\n"),
            None => "\ncallfeed 50 rooms / 1 room: both under one 10 ms tick of /proc CPU accounting, so at most 1 × (target ≤ 1.5).\n".to_owned(),
        });
    }
    std::fs::write(out_dir.join("report.md"), &md).unwrap();
    let rows = |unit: &str| -> Vec<Bar> {
        comparisons
            .iter()
            .filter(|c| c.unit == unit)
            .map(|c| {
                (
                    c.name.chars().take(52).collect(),
                    c.callfeed.median,
                    c.ffmpeg.median,
                )
            })
            .collect()
    };
    let chart = svg_chart(&[
        (
            "CPU seconds per media second, one stream (median)",
            rows("CPU-s per media-s"),
        ),
        (
            "Concurrent real-time 720p30 streams (median)",
            rows("streams"),
        ),
    ]);
    std::fs::write(out_dir.join("chart.svg"), chart).unwrap();
    println!("{md}");
    println!("written to {}", out_dir.display());
}
