//! The most concurrent real-time streams a tool sustains: `n` streams started at once, read by
//! RTMP players of nginx, judged over a window; and the search over `n`.

use std::process::ChildStdout;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::REAL_TIME_SLACK;
use crate::measure::{self, Stdout};
use crate::readers::RtmpReader;
use crate::tools::{Bench, Tool, stream_name};

/// The newest count of fresh pictures a tool has reported, and when.
type FreshCount = Arc<Mutex<Option<(Instant, u64)>>>;

/// Counts the fresh pictures a tool reports on stdout as it runs: callfeed's `--stats` lines
/// (frames out less repeated and slate frames), ffmpeg's `-progress` blocks (frames less
/// duplicated ones). A tool short of CPU either falls behind (ffmpeg) or repeats pictures to
/// keep its timeline real-time (callfeed); either way it sends fewer fresh pictures.
fn follow(tool: Tool, stdout: ChildStdout) -> FreshCount {
    use std::io::BufRead;
    let latest: FreshCount = Arc::default();
    let out = latest.clone();
    std::thread::spawn(move || {
        let (mut frames, mut dups) = (0u64, 0u64);
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let fresh = match tool {
                Tool::Callfeed => serde_json::from_str::<Value>(&line).ok().and_then(|s| {
                    let n = |k: &str| s[k].as_u64();
                    Some(n("frames_out")? - n("repeated_frames")? - n("slate_frames")?)
                }),
                Tool::Ffmpeg => {
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

/// Whether `n` concurrent 30 fps streams, each `tool` started as `template` says for its own
/// URL, all stay real-time. Over a window after a warm-up, every stream must (a) advance its
/// video timeline at an RTMP player of nginx and (b) send fresh pictures, each within
/// `REAL_TIME_SLACK` of the wall clock.
pub(crate) fn sustains(n: usize, bench: &Bench, tool: Tool, template: &str) -> bool {
    let urls: Vec<String> = (0..n)
        .map(|i| bench.nginx.url(&stream_name(&format!("n{i}x"))))
        .collect();
    let readers: Vec<RtmpReader> = urls.iter().map(|u| RtmpReader::start(u)).collect();
    for r in &readers {
        assert!(
            r.wait_connected(Duration::from_secs(5)),
            "an RTMP player did not reach nginx"
        );
    }
    let commands = urls.iter().map(|url| bench.command(tool, template, url));
    let (timeline, pictures) = measure::run(commands, Stdout::Read, |procs| {
        let counts: Vec<FreshCount> = (0..n).map(|i| follow(tool, procs.stdout(i))).collect();
        let all_started = readers
            .iter()
            .all(|r| r.wait_first_picture(Duration::from_secs(20)).is_some());
        if all_started {
            slowest(&readers, &counts)
        } else {
            (0.0, 0.0)
        }
    });
    let verdict = timeline.min(pictures) * REAL_TIME_SLACK >= 1.0;
    eprintln!(
        "    {n} streams: {} (slowest: timeline {timeline:.3} ×, fresh pictures {pictures:.3} × real time)",
        if verdict { "real-time" } else { "behind" }
    );
    verdict
}

/// The slowest stream's rate against real time over the window, by timeline and by fresh
/// pictures.
fn slowest(readers: &[RtmpReader], counts: &[FreshCount]) -> (f64, f64) {
    const WARM_UP: Duration = Duration::from_secs(2);
    const WINDOW: Duration = Duration::from_secs(6);
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
}

/// The largest n for which `sustains(n)` holds: galloping from `start` (1, 2, 4 ... away)
/// until the answer changes, then halving the gap, so a round costs a handful of trials.
pub(crate) fn max_sustained(start: usize, mut sustains: impl FnMut(usize) -> bool) -> usize {
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
