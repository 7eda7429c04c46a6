//! Latency from a publisher to a room: how long after an encoder takes a picture a callee's
//! decoder has it, for an RTMP feed and a WHIP feed each passed through and re-encoded,
//! against what a user builds without callfeed — nginx-rtmp and an ffmpeg transcode between
//! two of its streams. With it, what each path's processes spend in CPU over the same
//! windows: a feed's cost is `serve`'s alone, as the publisher and reader run here.
//!
//! The publisher (this process, GStreamer: a live 720p30 test picture with a 48 kHz tone,
//! x264 Main without B-frames, AAC, RTMP) writes the wall clock into each picture before
//! the encoder, as two rows of black and white blocks: the time's low 32 bits, then their
//! complement, so a misread block is caught rather than counted. The WHIP publisher
//! (whip.rs) marks the same picture and sends it as a browser does. The reader (this process
//! too, so one clock) pulls what a room pulls — the feed's published HTTP-FLV stream, or the
//! transcode's stream at nginx over RTMP — decodes it with the same elements on both sides
//! and subtracts each picture's mark from the time it was decoded. A picture shown twice
//! (a frame-rate converter's repeat) counts once, when it was first decoded.
//!
//! Each run waits for the first marked picture, lets `WARM_UP` pass (a late reader of a
//! feed is handed the GOP from its last keyframe at once; a transcode drains what it
//! buffered while probing its input) and measures `WINDOW`; the paths run interleaved
//! `ROUNDS` times and their pictures are pooled: `ROUNDS` × `WINDOW` = 30 s per path.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::{Value, json};

use crate::ROUNDS;
use crate::measure::{self, Stdout};
use crate::sharing::{json_of, until_live};
use crate::tools::{Bench, Tool, stream_name};
use crate::whip;

/// Measured per run; pooled over `ROUNDS` runs.
const WINDOW: Duration = Duration::from_secs(10);
/// From the first marked picture to the window's start.
const WARM_UP: Duration = Duration::from_secs(3);
const FPS: u64 = 30;
/// A run that decodes fewer distinct pictures than this share of `FPS` × `WINDOW` fails:
/// a reader that drops pictures would report the latency of those it kept.
const ENOUGH: f64 = 0.8;
/// How many stalled runs (no picture decoded in the window) a path may have in all before
/// the figure fails.
const STALLS_TAKEN: u32 = 8;
/// How long a run may take to its first marked picture (a GOP at most, after the start).
const FIRST_PICTURE_WITHIN: Duration = Duration::from_secs(20);

/// The publisher's picture, which the mark's geometry is laid out on.
const WIDTH: usize = 1280;
const HEIGHT: usize = 720;
/// A mark block's side: 32 of them fill a row, and 40 px survive any 2 Mb/s encode of this
/// picture with its edges blurred but its centres black or white.
const BLOCK: usize = 40;
const BITS: usize = 32;

/// What a user's encoder sends (OBS's x264 defaults for streaming, a 2 s GOP), which
/// callfeed's passthrough contract takes as it comes. `rtmp2sink`'s default chunk size of
/// 128 doubles nginx's CPU (toolchain notes), hence 4096.
const PUBLISHER: &str = "videotestsrc is-live=true pattern=ball \
    ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
    ! x264enc name=enc tune=zerolatency speed-preset=veryfast key-int-max=60 bframes=0 bitrate=2000 \
    ! video/x-h264,profile=main ! h264parse ! queue ! flvmux name=mux streamable=true \
    ! rtmp2sink name=out chunk-size=4096 \
    audiotestsrc is-live=true ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! voaacenc \
    ! aacparse ! queue ! mux.";

/// The reader after its source, the same for both sides. One decoder thread: libav's frame
/// threads hold a picture per extra thread, which would be the reader's latency, not the
/// path's. `sync=false`: a picture counts when decoded, not when a player's clock would show
/// it. flvdemux needs both of its pads linked.
const READER: &str = "flvdemux name=demux demux.video ! queue ! h264parse \
    ! avdec_h264 max-threads=1 ! videoconvert ! video/x-raw,format=I420 \
    ! appsink name=frames sync=false demux.audio ! queue ! fakesink sync=false";

/// The paths measured, in the order each round runs them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// An RTMP feed made with `"mode": "passthrough"`.
    Passthrough,
    /// An RTMP feed made with no mode: the default, decoded and encoded once.
    Encoded,
    /// A whip feed made with `"mode": "passthrough"`: the H.264 as sent, Opus made AAC.
    WhipPassthrough,
    /// A whip feed made with no mode.
    WhipEncoded,
    /// Publisher → nginx-rtmp → `ffmpeg -i` re-encoding → nginx-rtmp.
    Chain,
}

const PATHS: [Path; 5] = [
    Path::Passthrough,
    Path::Encoded,
    Path::WhipPassthrough,
    Path::WhipEncoded,
    Path::Chain,
];

/// How a feed's publisher reaches it.
#[derive(Clone, Copy)]
enum Ingest {
    Rtmp,
    Whip,
}

impl Path {
    fn key(self) -> &'static str {
        match self {
            Path::Passthrough => "callfeed_passthrough",
            Path::Encoded => "callfeed_encoded",
            Path::WhipPassthrough => "callfeed_whip_passthrough",
            Path::WhipEncoded => "callfeed_whip_encoded",
            Path::Chain => "nginx_ffmpeg",
        }
    }

    /// One run: what its window saw, and when that was short, what the server said.
    fn run(self, bench: &Bench) -> (Tally, String) {
        match self {
            Path::Passthrough => callfeed_side(bench, Ingest::Rtmp, Some("passthrough")),
            Path::Encoded => callfeed_side(bench, Ingest::Rtmp, None),
            Path::WhipPassthrough => callfeed_side(bench, Ingest::Whip, Some("passthrough")),
            Path::WhipEncoded => callfeed_side(bench, Ingest::Whip, None),
            Path::Chain => (chain_side(bench), String::new()),
        }
    }
}

pub(crate) fn feed_latency(bench: &Bench) -> Value {
    let mut pooled: Vec<(Tally, Vec<u32>)> = PATHS.iter().map(|_| Default::default()).collect();
    for round in 0..ROUNDS {
        for (i, path) in PATHS.iter().enumerate() {
            eprintln!("  {}: round {}/{ROUNDS}", path.key(), round + 1);
            let mut stalled = 0;
            let mut tally = loop {
                let (tally, server) = path.run(bench);
                if tally.enough() {
                    break tally;
                }
                // A stream that stops after its first pictures is a start gone wrong (WHIP
                // passthrough has such starts): counted and reported, and the run made
                // again, so the latency is of the starts that worked and the bench ends.
                assert!(
                    tally.decoded == 0 && pooled[i].0.stalled + stalled < STALLS_TAKEN,
                    "{}: {}{server}",
                    path.key(),
                    tally.counts()
                );
                stalled += 1;
                eprintln!("  {}: stalled, run again{server}", path.key());
            };
            tally.stalled = stalled;
            pooled[i].1.push(percentile(&tally.latencies, 0.5));
            pooled[i].0.add(tally);
        }
    }
    let mut report = json!({
        "window_seconds": WINDOW.as_secs() * ROUNDS as u64,
        "runs_per_path": ROUNDS,
        "publisher": "GStreamer: live 1280x720 30 fps test picture, x264 veryfast zerolatency Main, no B-frames, 2 s GOP, 2 Mb/s; AAC 48 kHz stereo; RTMP",
        "whip_publisher": "the same picture, x264 veryfast zerolatency constrained baseline, 2 s GOP, 2 Mb/s; Opus; webrtcbin over WebRTC on loopback to a whip feed",
        "reader": "the feed's published HTTP-FLV stream (what a call's ingest pulls), or nginx's RTMP stream of the transcode; flvdemux, avdec_h264 (one thread), decoded pictures timed unsynchronised",
        "chain": "nginx-rtmp, then ffmpeg -i rtmp://…/in with callfeed's encoder settings (libx264 veryfast zerolatency 2 Mb/s, 1 s GOP, AAC 48 kHz) → rtmp://…/out",
        "cpu": "CPU seconds over the measured windows: callfeed's serve process, or the chain's ffmpeg transcode (nginx not counted)",
    });
    let tally = |path: Path| &pooled[PATHS.iter().position(|p| *p == path).unwrap()].0;
    let q = |path: Path, q: f64| f64::from(percentile(&tally(path).latencies, q));
    let (chain50, chain95) = (q(Path::Chain, 0.5), q(Path::Chain, 0.95));
    let ratio = |v: f64, of: f64| (v / of.max(1e-3) * 100.0).round() / 100.0;
    for (path, (tally, p50s)) in PATHS.iter().zip(&pooled) {
        report[path.key()] = tally.summary(p50s);
        if *path != Path::Chain {
            report[format!("{}_over_chain", path.key())] = json!({
                "p50": ratio(q(*path, 0.5), chain50),
                "p95": ratio(q(*path, 0.95), chain95),
            });
        }
    }
    report["target"] =
        "callfeed's p50, an RTMP feed passed through and re-encoded, at or below the nginx-rtmp + ffmpeg chain's"
            .into();
    report["met"] = json!(q(Path::Passthrough, 0.5) <= chain50 && q(Path::Encoded, 0.5) <= chain50);
    let cpu = |path: Path| tally(path).cpu_seconds;
    report["whip_passthrough_over_encoded_cpu"] =
        json!(ratio(cpu(Path::WhipPassthrough), cpu(Path::WhipEncoded)));
    report["whip_target"] =
        "a WHIP feed passed through: p50 at or below an RTMP feed re-encoded".into();
    report["whip_met"] = json!(q(Path::WhipPassthrough, 0.5) <= q(Path::Encoded, 0.5));
    report
}

/// One `serve` with one feed (`mode` as asked, or the default), published to by the
/// publisher and read as a room reads it.
fn callfeed_side(bench: &Bench, ingest: Ingest, mode: Option<&str>) -> (Tally, String) {
    let serve = bench.callfeed([
        "serve",
        "--emulator",
        "--listen",
        "127.0.0.1:0",
        "--rtmp-listen",
        "127.0.0.1:0",
        "--webrtc-bind",
        "127.0.0.1",
    ]);
    measure::run([serve], Stdout::Read, |procs| {
        let api = procs.serve_api(0);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (publisher, id, url) = runtime.block_on(live_feed(&api, ingest, mode));
        let reader = Reader::start("souphttpsrc", &url);
        let tally = reader.measure(&publisher, || procs.cpu_seconds());
        if tally.enough() {
            return (tally, String::new());
        }
        let feed = runtime.block_on(json_of(
            reqwest::Client::new().get(format!("{api}/v1/feeds/{id}")),
        ));
        let said = format!(
            "; the feed: {feed}; reader: {}; publisher: {}",
            bus_errors(&reader.pipeline),
            bus_errors(&publisher.pipeline)
        );
        (tally, said)
    })
}

/// Makes the feed, starts the publisher on it, waits until it is live and checks it runs in
/// the mode meant: the publisher, the feed's id and a URL a room pulls.
async fn live_feed(api: &str, ingest: Ingest, mode: Option<&str>) -> (Publisher, String, String) {
    let http = reqwest::Client::new();
    let mut request = match ingest {
        Ingest::Rtmp => json!({ "kind": "rtmp" }),
        Ingest::Whip => json!({ "kind": "whip" }),
    };
    if let Some(mode) = mode {
        request["mode"] = mode.into();
    }
    let made = json_of(
        http.post(format!("{api}/v1/feeds"))
            .header("content-type", "application/json")
            .body(request.to_string()),
    )
    .await;
    let id = made["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no feed made: {made}"))
        .to_owned();
    let url = made["publish"]["url"].as_str().expect("publish settings");
    let publisher = match ingest {
        Ingest::Rtmp => Publisher::start(url),
        Ingest::Whip => {
            let bearer = made["publish"]["bearer"].as_str().expect("a bearer token");
            whip::publish(url, bearer).await
        }
    };
    until_live(&http, api, 1).await;
    let feed = json_of(http.get(format!("{api}/v1/feeds/{id}"))).await;
    let meant = mode.unwrap_or("encoded");
    assert_eq!(
        feed["mode"], meant,
        "the feed runs {} ({}), not {meant}",
        feed["mode"], feed["mode_reason"]
    );
    let preview = json_of(http.post(format!("{api}/v1/feeds/{id}/preview"))).await;
    let url = preview["url"].as_str().expect("a preview URL").to_owned();
    (publisher, id, url)
}

/// The publisher pushes to nginx's `in`; ffmpeg re-encodes it to `out`; the reader plays
/// `out` from nginx.
fn chain_side(bench: &Bench) -> Tally {
    let input = bench.nginx.url(&stream_name("latencyin"));
    let output = bench.nginx.url(&stream_name("latencyout"));
    let publisher = Publisher::start(&input);
    until_published(&input);
    let template = format!("-i {input} {{ffmpeg_live}} {{url}}");
    let transcode = bench.command(Tool::Ffmpeg, &template, &output);
    measure::run([transcode], Stdout::Discard, |procs| {
        Reader::start("rtmp2src", &output).measure(&publisher, || procs.cpu_seconds())
    })
}

/// Waits (at most 20 s) until nginx has a stream at `url`: a player can read its first
/// packets.
fn until_published(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::process::Command::new("ffprobe")
        .args(["-v", "quiet", "-rw_timeout", "2000000", "-i", url])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "nginx never had {url}");
    }
}

/// The wall clock in milliseconds, truncated to the mark's 32 bits: differences wrap
/// correctly (every 49 days), and both ends read the same clock.
fn now_ms() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u32)
}

/// Writes `value` into an I420 picture of `WIDTH` × `HEIGHT` with the default layout: its
/// bits in the first row of blocks, their complement in the second, and no colour under
/// them.
fn stamp(frame: &mut [u8], value: u32) {
    for row in 0..2 {
        for i in 0..BITS {
            let on = ((value >> i) & 1 == 1) != (row == 1);
            let luma = if on { 235 } else { 16 };
            for y in row * BLOCK..(row + 1) * BLOCK {
                frame[y * WIDTH + i * BLOCK..][..BLOCK].fill(luma);
            }
        }
    }
    let (luma_size, chroma_width) = (WIDTH * HEIGHT, WIDTH / 2);
    for plane in 0..2 {
        let start = luma_size + plane * chroma_width * HEIGHT / 2;
        frame[start..start + chroma_width * BLOCK].fill(128);
    }
}

/// The mark in a decoded picture's luma plane, scaled to its size; `None` when a bit and its
/// complement agree (not a marked picture, or a block the encoder smeared).
fn read_mark(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<u32> {
    let bit = |row: usize, i: usize| {
        let cx = (i * BLOCK + BLOCK / 2) * width / WIDTH;
        let cy = (row * BLOCK + BLOCK / 2) * height / HEIGHT;
        let mut sum = 0u32;
        for y in cy - 4..cy + 4 {
            sum += luma[y * stride + cx - 4..][..8]
                .iter()
                .map(|&v| u32::from(v))
                .sum::<u32>();
        }
        sum / 64 > 128
    };
    let (mut value, mut check) = (0u32, 0u32);
    for i in 0..BITS {
        value |= u32::from(bit(0, i)) << i;
        check |= u32::from(bit(1, i)) << i;
    }
    (value == !check).then_some(value)
}

/// The errors a pipeline's bus holds, for a failure's message.
fn bus_errors(pipeline: &gst::Pipeline) -> String {
    let Some(bus) = pipeline.bus() else {
        return String::new();
    };
    let mut errors = Vec::new();
    while let Some(message) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = message.view() {
            errors.push(format!("{}: {:?}", e.error(), e.debug()));
        }
    }
    errors.join("; ")
}

/// The encoder a user points at a feed (or at nginx), marking each picture as it enters
/// x264. Stops when dropped.
pub(crate) struct Publisher {
    pub(crate) pipeline: gst::Pipeline,
}

impl Publisher {
    /// The RTMP publisher, pushing to `url`.
    fn start(url: &str) -> Self {
        gst::init().expect("GStreamer");
        let pipeline = gst::parse::launch(PUBLISHER)
            .expect("x264enc, voaacenc, flvmux and rtmp2sink")
            .downcast::<gst::Pipeline>()
            .unwrap();
        pipeline
            .by_name("out")
            .unwrap()
            .set_property("location", url);
        let publisher = Self::marking(pipeline);
        publisher.pipeline.set_state(gst::State::Playing).unwrap();
        publisher
    }

    /// A publisher of `pipeline`, not yet started, marking what enters its encoder `enc`
    /// (an I420 picture of `WIDTH` × `HEIGHT`).
    pub(crate) fn marking(pipeline: gst::Pipeline) -> Self {
        let encoder_input = pipeline.by_name("enc").unwrap().static_pad("sink").unwrap();
        encoder_input.add_probe(gst::PadProbeType::BUFFER, |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
                let buffer = buffer.make_mut();
                // Another layout goes unmarked, and the reader says so.
                if let Ok(mut map) = buffer.map_writable()
                    && map.len() == WIDTH * HEIGHT * 3 / 2
                {
                    stamp(&mut map, now_ms());
                }
            }
            gst::PadProbeReturn::Ok
        });
        Self { pipeline }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A decoded picture: when it was decoded, and its mark with its latency in ms.
type Decoded = (Instant, Option<(u32, u32)>);

#[derive(Default)]
struct Seen {
    decoded: Vec<Decoded>,
}

/// A room's decoder, timing every picture it decodes. Stops when dropped.
struct Reader {
    pipeline: gst::Pipeline,
    seen: Arc<(Mutex<Seen>, Condvar)>,
}

impl Reader {
    /// Plays `url` with `source` (`souphttpsrc` or `rtmp2src`) before the common decoder.
    fn start(source: &str, url: &str) -> Self {
        gst::init().expect("GStreamer");
        let pipeline = gst::parse::launch(&format!("{source} name=src ! {READER}"))
            .expect("the reader's elements")
            .downcast::<gst::Pipeline>()
            .unwrap();
        pipeline
            .by_name("src")
            .unwrap()
            .set_property("location", url);
        let seen = Arc::new((Mutex::new(Seen::default()), Condvar::new()));
        let weak = Arc::downgrade(&seen);
        let sink = pipeline
            .by_name("frames")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (at, now) = (Instant::now(), now_ms());
                    let mark = mark_of(&sample).map(|m| (m, now.wrapping_sub(m)));
                    let seen = weak.upgrade().ok_or(gst::FlowError::Flushing)?;
                    seen.0.lock().unwrap().decoded.push((at, mark));
                    seen.1.notify_all();
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).unwrap();
        Self { pipeline, seen }
    }

    /// Waits for the first marked picture, then through `WARM_UP` and `WINDOW`: what the
    /// window saw, and what `cpu` (a running total) grew by over it.
    fn measure(&self, publisher: &Publisher, cpu: impl Fn() -> f64) -> Tally {
        let (lock, decoded) = &*self.seen;
        let marked = |s: &Seen| s.decoded.iter().any(|d| d.1.is_some());
        let guard = lock.lock().unwrap();
        let (guard, _) = decoded
            .wait_timeout_while(guard, FIRST_PICTURE_WITHIN, |s| !marked(s))
            .unwrap();
        let first = guard.decoded.iter().find(|d| d.1.is_some()).map(|d| d.0);
        drop(guard);
        let first = first.unwrap_or_else(|| {
            panic!(
                "no marked picture within {FIRST_PICTURE_WITHIN:?}; reader: {}; publisher: {}",
                bus_errors(&self.pipeline),
                bus_errors(&publisher.pipeline)
            )
        });
        let (from, to) = (first + WARM_UP, first + WARM_UP + WINDOW);
        // The window is measured time, not a wait for something to happen.
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let cpu_from = cpu();
        std::thread::sleep(to.saturating_duration_since(Instant::now()));
        let cpu_seconds = cpu() - cpu_from;
        let seen = lock.lock().unwrap();
        let mut tally = Tally::of(seen.decoded.iter().filter(|d| d.0 >= from && d.0 < to));
        tally.cpu_seconds = cpu_seconds;
        tally
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The mark of a decoded I420 picture, read from its luma plane (default layout: appsink
/// takes no video meta, so the decoder hands it that).
fn mark_of(sample: &gst::Sample) -> Option<u32> {
    let caps = sample.caps()?.structure(0)?;
    let width = usize::try_from(caps.get::<i32>("width").ok()?).ok()?;
    let height = usize::try_from(caps.get::<i32>("height").ok()?).ok()?;
    let stride = width.next_multiple_of(4);
    let map = sample.buffer()?.map_readable().ok()?;
    if map.len() < stride * height || height < HEIGHT / 8 {
        return None;
    }
    read_mark(&map, stride, width, height)
}

/// What one path's window (or pooled windows) saw.
#[derive(Default)]
struct Tally {
    /// Of each distinct marked picture, when first decoded.
    latencies: Vec<u32>,
    decoded: u64,
    /// Decoded again with the mark of the one before (a repeated picture).
    repeated: u64,
    unreadable: u64,
    /// The path's processes' CPU over the window.
    cpu_seconds: f64,
    /// Runs before this one that stalled and were made again.
    stalled: u32,
}

impl Tally {
    fn of<'a>(decoded: impl Iterator<Item = &'a Decoded>) -> Self {
        let mut tally = Tally::default();
        let mut last = None;
        for (_, mark) in decoded {
            tally.decoded += 1;
            match mark {
                None => tally.unreadable += 1,
                Some((m, _)) if last == Some(*m) => tally.repeated += 1,
                Some((m, latency)) => {
                    last = Some(*m);
                    tally.latencies.push(*latency);
                }
            }
        }
        tally
    }

    /// Whether one window decoded enough distinct pictures to be counted.
    fn enough(&self) -> bool {
        self.latencies.len() as f64 >= ENOUGH * (FPS * WINDOW.as_secs()) as f64
    }

    /// What one window decoded, for a failure's message.
    fn counts(&self) -> String {
        format!(
            "{} distinct marked pictures of {} in {} s ({} decoded, {} unreadable)",
            self.latencies.len(),
            FPS * WINDOW.as_secs(),
            WINDOW.as_secs(),
            self.decoded,
            self.unreadable
        )
    }

    fn add(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.decoded += other.decoded;
        self.repeated += other.repeated;
        self.unreadable += other.unreadable;
        self.cpu_seconds += other.cpu_seconds;
        self.stalled += other.stalled;
    }

    /// report.json's view; `p50s` are the runs' own medians, for their spread.
    fn summary(&self, p50s: &[u32]) -> Value {
        json!({
            "p50_ms": percentile(&self.latencies, 0.5),
            "p95_ms": percentile(&self.latencies, 0.95),
            "max_ms": self.latencies.iter().max(),
            "p50_ms_per_run": p50s,
            "pictures": self.latencies.len(),
            "expected_pictures": FPS * WINDOW.as_secs() * ROUNDS as u64,
            "decoded": self.decoded,
            "repeated": self.repeated,
            "unreadable": self.unreadable,
            "cpu_seconds": (self.cpu_seconds * 100.0).round() / 100.0,
            "stalled_runs": self.stalled,
        })
    }
}

/// The nearest-rank percentile `q` (0..=1) of `values`.
fn percentile(values: &[u32], q: f64) -> u32 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0)
}
