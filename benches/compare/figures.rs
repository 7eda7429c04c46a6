//! The figures, one row each: how each tool is started, what is measured, the target and how
//! the figure is reported. `main` walks `FIGURES` in order.

use std::time::Duration;

use serde_json::Value;

use crate::chart::Chart;
use crate::concurrency::{max_sustained, sustains};
use crate::measure::{self, Stdout, cores};
use crate::readers::{RtmpReader, http_first_picture};
use crate::report::{Comparison, stat};
use crate::tools::{Bench, Tool, free_port, stream_name};
use crate::{LIGHT_MEDIA_SECS, MEDIA_SECS, REAL_TIME_SLACK, ROUNDS, bespoke};

/// A figure: both tools head to head, or one with code of its own.
pub(crate) enum Figure {
    Versus(Versus),
    Bespoke(Bespoke),
}

impl Figure {
    /// The `CALLFEED_BENCH_ONLY` key that selects it.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Figure::Versus(v) => v.key,
            Figure::Bespoke(b) => b.key,
        }
    }

    /// What stderr says as it starts.
    pub(crate) fn heading(&self) -> &'static str {
        match self {
            Figure::Versus(v) => v.heading,
            Figure::Bespoke(b) => b.heading,
        }
    }
}

/// callfeed and ffmpeg measured the same way, interleaved (A B A B ...) `ROUNDS` times.
pub(crate) struct Versus {
    pub key: &'static str,
    pub heading: &'static str,
    /// `{slack}` stands for `REAL_TIME_SLACK` as a percentage.
    name: &'static str,
    /// How each tool is started: a command-line template (see `Bench::args`).
    callfeed: &'static str,
    ffmpeg: &'static str,
    pub measure: Measure,
    target: &'static str,
    judge: Judge,
    /// The chart section its medians are drawn in, if any.
    pub chart: Option<Chart>,
}

/// A figure with code of its own, and where its value goes in report.json.
pub(crate) struct Bespoke {
    key: &'static str,
    heading: &'static str,
    pub slot: Slot,
    pub run: fn(&Bench) -> Value,
}

/// Where a bespoke figure's value goes in report.json.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    /// `rss`
    Rss,
    /// `control_plane`
    ControlPlane,
    /// A key of `more`.
    More(&'static str),
}

/// What one run of a tool yields.
#[derive(Clone, Copy)]
pub(crate) enum Measure {
    /// CPU seconds per media second over `MEDIA_SECS` + 1 s of wall time.
    CpuPerMediaSecond,
    /// The same over `LIGHT_MEDIA_SECS`, for streams that cost a few hundredths of a core:
    /// over 8 s they spend some 15 of /proc's 10 ms ticks, so one tick was a 7 % swing.
    CpuPerLongerMediaSecond,
    /// Peak RSS after 5 s.
    PeakRssMb,
    /// Milliseconds from spawn to the first picture at an HTTP-FLV reader, of the URL in the
    /// template or, without `{url}`, of the one the tool prints.
    HttpFirstPicture,
    /// Milliseconds from spawn to the first picture at an RTMP player already waiting at nginx.
    RtmpFirstPicture,
    /// The most concurrent streams that all stay real-time; each round's search starts from
    /// the tool's previous round, the first from where the single-stream CPU of the figure
    /// `seed` says the cores run out.
    ConcurrentRealTime { seed: &'static str },
}

/// How the medians are judged against the target.
#[derive(Clone, Copy)]
pub(crate) enum Judge {
    /// The ratio of the medians is at most this.
    AtMost(f64),
    /// callfeed's median is at least ffmpeg's (ratio against at least 1).
    AtLeastFfmpeg,
    /// Reported, not judged here.
    Shown,
}

pub(crate) static FIGURES: &[Figure] = &[
    Figure::Versus(Versus {
        key: "live",
        heading: "live 720p30 test pattern + tone",
        name: "live 720p30, each tool's own test pattern + 440 Hz tone",
        callfeed: "push test:ball+tone=440 --profile 720p --rtmp {url}",
        ffmpeg: "-re {ffmpeg_test_source} {ffmpeg_live} {url}",
        measure: Measure::CpuPerMediaSecond,
        target: "≤ 0.9 × ffmpeg",
        judge: Judge::AtMost(0.9),
        chart: Some(Chart::CpuPerStream),
    }),
    Figure::Versus(Versus {
        key: "clip",
        heading: "live 1080p High clip decoded and re-encoded at 720p",
        name: "live 720p30 from a 1080p H.264 High clip with B-frames (a detailed moving picture), decoded and re-encoded; ffmpeg with the same preset, bitrate, GOP and one x264 thread",
        callfeed: "push {real} --live --loop forever --profile 720p --rtmp {url}",
        ffmpeg: "-re -stream_loop -1 -i {real} {ffmpeg_live} {url}",
        measure: Measure::CpuPerMediaSecond,
        target: "≤ 0.9 × ffmpeg",
        judge: Judge::AtMost(0.9),
        chart: Some(Chart::CpuPerStream),
    }),
    Figure::Versus(Versus {
        key: "audio",
        heading: "audio profile",
        name: "audio profile, wav announcement → AAC in FLV",
        callfeed: "push {wav} --live --loop forever --profile audio --rtmp {url}",
        ffmpeg: "-re -stream_loop -1 -i {wav} -c:a aac -b:a 128k -f flv {url}",
        measure: Measure::CpuPerLongerMediaSecond,
        target: "≤ 0.9 × ffmpeg",
        judge: Judge::AtMost(0.9),
        chart: Some(Chart::CpuPerStream),
    }),
    Figure::Versus(Versus {
        key: "audio",
        heading: "audio profile from an mp3",
        name: "audio profile, mp3 announcement (44.1 kHz mono) → AAC 48 kHz stereo in FLV",
        callfeed: "push {mp3} --live --loop forever --profile audio --rtmp {url}",
        ffmpeg: "-re -stream_loop -1 -i {mp3} -c:a aac -ar 48000 -ac 2 -b:a 128k -f flv {url}",
        measure: Measure::CpuPerLongerMediaSecond,
        target: "≤ ffmpeg",
        judge: Judge::AtMost(1.0),
        chart: Some(Chart::CpuPerStream),
    }),
    Figure::Bespoke(Bespoke {
        key: "audio",
        heading: "audio streams in one process at N = 1, 10, 50",
        slot: Slot::More("audio_streams"),
        run: bespoke::audio_streams,
    }),
    Figure::Versus(Versus {
        key: "passthrough",
        heading: "passthrough of a Main-profile file",
        name: "passthrough: 720p H.264 Main without B-frames + AAC MP4 remuxed live",
        callfeed: "push {main} --live --loop forever --profile 720p --rtmp {url}",
        ffmpeg: "-re -stream_loop -1 -i {main} -c copy -f flv {url}",
        measure: Measure::CpuPerLongerMediaSecond,
        target: "≤ ffmpeg -c copy",
        judge: Judge::AtMost(1.0),
        chart: Some(Chart::CpuPerStream),
    }),
    Figure::Versus(Versus {
        key: "passthrough",
        heading: "passthrough",
        name: "passthrough: H.264/AAC MP4 remuxed live",
        callfeed: "push {clip} --live --loop forever --profile 720p --rtmp {url}",
        ffmpeg: "-re -stream_loop -1 -i {clip} -c copy -f flv {url}",
        measure: Measure::CpuPerLongerMediaSecond,
        target: "≤ ffmpeg -c copy",
        judge: Judge::AtMost(1.0),
        chart: Some(Chart::CpuPerStream),
    }),
    Figure::Versus(Versus {
        key: "concurrency",
        heading: "concurrent real-time 720p30 streams",
        name: "concurrent real-time 720p30 streams, the 1080p High clip decoded and re-encoded (a stream falls behind when wall time exceeds media time by > {slack} %)",
        callfeed: "push {real} --live --loop forever --profile 720p --rtmp {url} --stats",
        ffmpeg: "-progress pipe:1 -stats_period 0.5 -re -stream_loop -1 -i {real} {ffmpeg_live} {url}",
        measure: Measure::ConcurrentRealTime { seed: "clip" },
        target: "≥ ffmpeg",
        judge: Judge::AtLeastFfmpeg,
        chart: Some(Chart::Streams),
    }),
    Figure::Versus(Versus {
        key: "startup",
        heading: "startup to the first picture at an HTTP-FLV reader",
        name: "startup: spawn → first picture at an HTTP-FLV reader (720p30 test source)",
        callfeed: "push test: --serve --profile 720p",
        ffmpeg: "-re {ffmpeg_test_source} {ffmpeg_live} -listen 1 {url}",
        measure: Measure::HttpFirstPicture,
        target: "no later than ffmpeg",
        judge: Judge::AtMost(1.0),
        chart: None,
    }),
    Figure::Versus(Versus {
        key: "startup",
        heading: "startup to the first picture at an RTMP player",
        name: "startup: spawn → first picture at an RTMP player of nginx (720p30 test source)",
        callfeed: "push test: --profile 720p --rtmp {url}",
        ffmpeg: "-re {ffmpeg_test_source} {ffmpeg_live} {url}",
        measure: Measure::RtmpFirstPicture,
        target: "no later than ffmpeg",
        judge: Judge::AtMost(1.0),
        chart: None,
    }),
    Figure::Bespoke(Bespoke {
        key: "startup",
        heading: "answer → first frame at the room observer, 20 sessions",
        slot: Slot::More("answer_to_first_frame"),
        run: bespoke::answer_to_first_frame,
    }),
    Figure::Bespoke(Bespoke {
        key: "cluster",
        heading: "cluster: sessions admitted per second through 1 vs 3 nodes; failover after kill -9",
        slot: Slot::More("cluster"),
        run: crate::cluster::cluster,
    }),
    Figure::Bespoke(Bespoke {
        key: "sharing",
        heading: "one live RTMP feed in 1, 10 and 50 calls",
        slot: Slot::More("feed_sharing"),
        run: crate::sharing::feed_sharing,
    }),
    Figure::Bespoke(Bespoke {
        key: "density",
        heading: "passed-through RTMP feeds one process keeps in real time",
        slot: Slot::More("feed_density"),
        run: crate::density::passthrough_density,
    }),
    Figure::Bespoke(Bespoke {
        key: "latency",
        heading: "latency publisher → room: RTMP and WHIP feeds passed through and re-encoded vs nginx-rtmp + ffmpeg",
        slot: Slot::More("feed_latency"),
        run: crate::latency::feed_latency,
    }),
    Figure::Bespoke(Bespoke {
        key: "fanout",
        heading: "announcement fan-out",
        slot: Slot::More("announcement_fanout"),
        run: bespoke::announcement_fanout,
    }),
    Figure::Versus(Versus {
        key: "rss",
        heading: "peak RSS of one live 720p stream",
        name: "peak RSS of one live 720p30 stream process",
        callfeed: "push test: --profile 720p --rtmp {url}",
        ffmpeg: "-re {ffmpeg_test_source} {ffmpeg_live} {url}",
        measure: Measure::PeakRssMb,
        target: "added RSS per extra session ≤ 0.5 × one ffmpeg process (see rss)",
        judge: Judge::Shown,
        chart: None,
    }),
    Figure::Versus(Versus {
        key: "rss",
        heading: "peak RSS of one live push of the 1080p High clip",
        name: "peak RSS of one live push of the 1080p High clip, re-encoded at 720p30",
        callfeed: "push {real} --live --loop forever --profile 720p --rtmp {url}",
        ffmpeg: "-re -stream_loop -1 -i {real} {ffmpeg_live} {url}",
        measure: Measure::PeakRssMb,
        target: "≤ ffmpeg",
        judge: Judge::AtMost(1.0),
        chart: None,
    }),
    Figure::Bespoke(Bespoke {
        key: "rss",
        heading: "RSS per extra session in one process",
        slot: Slot::Rss,
        run: bespoke::rss_per_session,
    }),
    Figure::Bespoke(Bespoke {
        key: "control",
        heading: "control plane",
        slot: Slot::ControlPlane,
        run: crate::control::control_plane,
    }),
];

impl Versus {
    pub(crate) fn name(&self) -> String {
        let slack = format!("{:.0}", (REAL_TIME_SLACK - 1.0) * 100.0);
        self.name.replace("{slack}", &slack)
    }

    pub(crate) fn unit(&self) -> &'static str {
        match self.measure {
            Measure::CpuPerMediaSecond | Measure::CpuPerLongerMediaSecond => "CPU-s per media-s",
            Measure::PeakRssMb => "MB",
            Measure::HttpFirstPicture | Measure::RtmpFirstPicture => "ms",
            Measure::ConcurrentRealTime { .. } => "streams",
        }
    }

    /// Both tools, interleaved, `ROUNDS` times; `earlier` are the figures run before it.
    pub(crate) fn compare(&'static self, bench: &Bench, earlier: &[Comparison]) -> Comparison {
        let name = self.name();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            eprintln!("  {name}: round {}/{ROUNDS}", round + 1);
            a.push(self.sample(bench, Tool::Callfeed, &a, earlier));
            b.push(self.sample(bench, Tool::Ffmpeg, &b, earlier));
        }
        let (a, b) = (stat(a), stat(b));
        let of_medians = if b.median > 0.0 {
            a.median / b.median
        } else {
            f64::NAN
        };
        let (ratio, met) = match self.judge {
            Judge::AtMost(t) => (of_medians, Some(of_medians <= t)),
            Judge::Shown => (of_medians, None),
            Judge::AtLeastFfmpeg => (a.median / b.median.max(1.0), Some(a.median >= b.median)),
        };
        Comparison {
            figure: self,
            name,
            unit: self.unit().into(),
            ratio: (ratio * 1000.0).round() / 1000.0,
            target: self.target.into(),
            met,
            callfeed: a,
            ffmpeg: b,
        }
    }

    /// One run of `tool`; `previous` are its earlier rounds of this figure.
    fn sample(&self, bench: &Bench, tool: Tool, previous: &[f64], earlier: &[Comparison]) -> f64 {
        let template = match tool {
            Tool::Callfeed => self.callfeed,
            Tool::Ffmpeg => self.ffmpeg,
        };
        let rtmp_url = || bench.nginx.url(&stream_name(self.key));
        match self.measure {
            Measure::CpuPerMediaSecond | Measure::CpuPerLongerMediaSecond => {
                let secs = match self.measure {
                    Measure::CpuPerLongerMediaSecond => LIGHT_MEDIA_SECS,
                    _ => MEDIA_SECS,
                };
                let cmd = bench.command(tool, template, &rtmp_url());
                let cpu = measure::run([cmd], Stdout::Discard, |procs| {
                    std::thread::sleep(Duration::from_secs(secs + 1));
                    procs.cpu_seconds()
                });
                (cpu / secs as f64 * 1000.0).round() / 1000.0
            }
            Measure::PeakRssMb => {
                let cmd = bench.command(tool, template, &rtmp_url());
                measure::run([cmd], Stdout::Discard, |procs| {
                    std::thread::sleep(Duration::from_secs(5));
                    procs.peak_rss_mb()
                })
            }
            Measure::HttpFirstPicture => {
                let listen = template
                    .split_whitespace()
                    .any(|w| w == "{url}")
                    .then(|| format!("http://127.0.0.1:{}/live.flv", free_port()));
                let cmd = bench.command(tool, template, listen.as_deref().unwrap_or(""));
                let took = measure::run([cmd], Stdout::Read, |procs| {
                    let url = listen.clone().unwrap_or_else(|| procs.first_line(0));
                    http_first_picture(&url, procs.started())
                });
                (took.as_secs_f64() * 1000.0).round()
            }
            Measure::RtmpFirstPicture => {
                let url = rtmp_url();
                let reader = RtmpReader::start(&url);
                assert!(
                    reader.wait_connected(Duration::from_secs(5)),
                    "the RTMP player did not reach nginx"
                );
                let cmd = bench.command(tool, template, &url);
                let took = measure::run([cmd], Stdout::Discard, |procs| {
                    let first = reader.wait_first_picture(Duration::from_secs(15));
                    first.map(|first| first - procs.started())
                });
                let took = took.unwrap_or_else(|| panic!("no picture reached {url} within 15 s"));
                (took.as_secs_f64() * 1000.0).round()
            }
            Measure::ConcurrentRealTime { seed } => {
                let median = |c: &Comparison| match tool {
                    Tool::Callfeed => c.callfeed.median,
                    Tool::Ffmpeg => c.ffmpeg.median,
                };
                let seeded = || {
                    earlier
                        .iter()
                        .find(|c| c.figure.key == seed)
                        .map_or(4, |c| (cores() as f64 / median(c).max(0.01)) as usize)
                };
                let from = previous.last().map_or_else(seeded, |&n| n as usize);
                max_sustained(from, |n| sustains(n, bench, tool, template)) as f64
            }
        }
    }
}
