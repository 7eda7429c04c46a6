//! What a run found and how it is written: report.json, report.md and chart.svg.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::figures::{Measure, Slot, Versus};
use crate::measure::cores;
use crate::tools::CALLFEED;
use crate::{LIGHT_MEDIA_SECS, MEDIA_SECS, ROUNDS, chart};

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

pub(crate) fn stat(mut v: Vec<f64>) -> Stat {
    let samples = v.clone();
    v.sort_by(|a, b| a.total_cmp(b));
    Stat {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
        samples,
    }
}

/// One head-to-head figure's result, as report.json has it.
#[derive(Clone, serde::Serialize)]
pub(crate) struct Comparison {
    /// The row it came from.
    #[serde(skip)]
    pub figure: &'static Versus,
    pub name: String,
    pub unit: String,
    pub callfeed: Stat,
    pub ffmpeg: Stat,
    /// callfeed median / ffmpeg median.
    pub ratio: f64,
    pub target: String,
    pub met: Option<bool>,
}

/// Everything a run found, in the order it was found.
pub(crate) struct Results {
    pub comparisons: Vec<Comparison>,
    rss: Value,
    control_plane: Value,
    more: Value,
}

impl Default for Results {
    fn default() -> Self {
        Self {
            comparisons: Vec::new(),
            rss: Value::Null,
            control_plane: Value::Null,
            more: json!({}),
        }
    }
}

impl Results {
    /// Files a bespoke figure's value where its row says.
    pub(crate) fn put(&mut self, slot: Slot, value: Value) {
        match slot {
            Slot::Rss => self.rss = value,
            Slot::ControlPlane => self.control_plane = value,
            Slot::More(key) => self.more[key] = value,
        }
    }

    /// Writes report.json, report.md and chart.svg to `out_dir`; returns the markdown.
    pub(crate) fn write(self, out_dir: &Path) -> String {
        let concurrency = self
            .comparisons
            .iter()
            .find(|c| matches!(c.figure.measure, Measure::ConcurrentRealTime { .. }))
            .map_or(
                Value::Null,
                |c| json!({ "callfeed": c.callfeed.median, "ffmpeg": c.ffmpeg.median }),
            );
        let report = json!({
            "machine": machine(),
            "rounds": ROUNDS,
            "media_seconds_per_run": MEDIA_SECS,
            "comparisons": self.comparisons,
            "rss": self.rss,
            "control_plane": self.control_plane,
            "concurrent_real_time_streams": concurrency,
            "more": self.more,
        });
        std::fs::write(
            out_dir.join("report.json"),
            serde_json::to_string_pretty(&report).unwrap(),
        )
        .unwrap();
        let mut md = table(&report, &self.comparisons);
        md.push_str(&more(&report));
        std::fs::write(out_dir.join("report.md"), &md).unwrap();
        std::fs::write(out_dir.join("chart.svg"), chart::svg(&self.comparisons)).unwrap();
        md
    }
}

/// The markdown's heading, one table row per comparison, and the RSS and control-plane line.
fn table(report: &Value, comparisons: &[Comparison]) -> String {
    let mut md = format!(
        "# callfeed vs ffmpeg\n\nMachine: {} cores, {}; {}; {}.\n\nEach figure: {ROUNDS} interleaved runs per tool on the same input, {MEDIA_SECS} s of media each ({LIGHT_MEDIA_SECS} s for passthrough and audio); median (min–max).\n\n| figure | unit | callfeed | ffmpeg | ratio | target | met |\n|---|---|---|---|---|---|---|\n",
        report["machine"]["cores"],
        report["machine"]["cpu"].as_str().unwrap_or(""),
        report["machine"]["gstreamer"].as_str().unwrap_or(""),
        report["machine"]["ffmpeg"].as_str().unwrap_or("")
    );
    for c in comparisons {
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
    let real = &report["rss"]["real_clip"];
    md.push_str(&format!(
        "\nRSS inside one callfeed process (sessions as `serve` runs them, each pushed to nginx): the 1080p High clip re-encoded at 720p, {} MB with 1, 2, 3 sessions, {} MB per extra session, {} × one ffmpeg process of it ({} MB; target ≤ 0.5: {}); the test source, {} MB with 1, 2, 3 sessions, {} MB per extra session.\n\nControl plane: {} UserSigs/s and {} TC3 signatures/s on one core; {} call + ingest requests/s against the emulator.\n",
        real["rss_mb_with_1_2_3_sessions"], real["added_rss_mb_per_extra_session"], real["ratio"],
        real["one_ffmpeg_process_mb"], if real["met"] == true { "met" } else { "not met" },
        report["rss"]["rss_mb_with_1_2_3_sessions"], report["rss"]["added_rss_mb_per_extra_session"],
        report["control_plane"]["usersig_per_second_one_core"], report["control_plane"]["tc3_signatures_per_second_one_core"],
        report["control_plane"]["call_and_ingest_requests_per_second_against_the_emulator"],
    ));
    md
}

/// The markdown for the figures under `more`: answer to first frame, announcement fan-out.
fn more(report: &Value) -> String {
    let mut md = String::new();
    if let Some(f) = report["more"].get("answer_to_first_frame") {
        md.push_str(&format!(
            "\nCallee answered → first decoded frame at the emulator's room observer, over {} sessions ({} succeeded): p50 {} ms, p95 {} ms (`callfeed load --emulator`, 720p test source; ffmpeg cannot place a call).\n",
            f["sessions"],
            f["succeeded"],
            f["answer_to_first_frame_ms"]["p50"],
            f["answer_to_first_frame_ms"]["p95"]
        ));
    }
    if let Some(f) = report["more"].get("audio_streams") {
        md.push_str("\nAudio streams of the mp3 (44.1 kHz mono → AAC 48 kHz stereo, pushed to nginx): N in one callfeed process (the library `serve` runs) vs N ffmpeg processes; CPU-s per stream per media second, MB per stream:\n\n| streams | callfeed CPU | ffmpeg CPU | ratio | callfeed MB | ffmpeg MB |\n|---|---|---|---|---|---|\n");
        for r in f["rows"].as_array().into_iter().flatten() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r["streams"],
                r["callfeed_cpu_per_stream"],
                r["ffmpeg_cpu_per_stream"],
                r["cpu_ratio"],
                r["callfeed_mb_per_stream"],
                r["ffmpeg_mb_per_stream"]
            ));
        }
    }
    if let Some(f) = report["more"].get("cluster") {
        md.push_str(&format!(
            "\nCluster on one PostgreSQL (real `serve` processes, the emulator, audio test source): sessions admitted per second (POST → 201, then DELETE; {} clients) through 1 node: {}, through 3 nodes: {}. Failover with a {} s lease, from `kill -9` of a session's node to its call ended and ingest task stopped by another node, over {} kills: p50 {} ms, p95 {} ms.\n",
            8,
            f["admitted_per_second"]["one_node"],
            f["admitted_per_second"]["three_nodes"],
            f["lease_secs"],
            f["failover_ms"]["kills"],
            f["failover_ms"]["p50"],
            f["failover_ms"]["p95"]
        ));
    }
    if let Some(f) = report["more"].get("announcement_fanout") {
        md.push_str("\nAnnouncement fan-out — not like for like: one callfeed process serving one cached MP4 (transcoded once) to N pullers, against N live ffmpeg encodes and pushes, one per room. CPU seconds and MB over the media time:\n\n| rooms | callfeed CPU-s | callfeed MB | ffmpeg CPU-s | ffmpeg MB |\n|---|---|---|---|---|\n");
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
    if let Some(f) = report["more"].get("feed_sharing") {
        md.push_str(&format!(
            "\nOne live feed in N calls ({}): one callfeed process encoding the feed once and serving it to N calls' pulls, against N ffmpeg processes each pulling the stream from nginx-rtmp and re-encoding it for its room. CPU seconds over the media time (the publisher on both sides is not counted):\n\n| calls | callfeed CPU-s | callfeed MB | ffmpeg CPU-s |\n|---|---|---|---|\n",
            f["input"].as_str().unwrap_or("")
        ));
        for r in f["rows"].as_array().into_iter().flatten() {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r["calls"],
                r["callfeed_cpu_seconds"],
                r["callfeed_rss_mb"],
                r["ffmpeg_cpu_seconds"]
            ));
        }
        md.push_str(&format!(
            "\ncallfeed 10 calls / 1 call: {} (target ≤ 1.3); 50 / 1: {} (target ≤ 2); ffmpeg's 10 / callfeed's 10: {}.\n",
            f["callfeed_10_over_1"], f["callfeed_50_over_1"], f["ffmpeg_10_over_callfeed_10"]
        ));
    }
    if let Some(f) = report["more"].get("feed_density") {
        md.push_str(&format!(
            "\nPassed-through RTMP feeds in one process (the 720p Main clip at {} kbit/s per feed, pushed in real time by the bench's own publishers, one pull per feed; no ffmpeg counterpart):\n\n| feeds | callfeed CPU-s over {} s | callfeed MB | slowest pull / clip | real time |\n|---|---|---|---|---|\n",
            f["clip_kbps"], f["window_seconds"]
        ));
        for r in f["rows"].as_array().into_iter().flatten() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                r["feeds"],
                r["callfeed_cpu_seconds"],
                r["callfeed_rss_mb"],
                r["slowest_pull_share"],
                r["real_time"]
            ));
        }
        md.push_str(&format!(
            "\nMost feeds in real time: {} (target ≥ 100).\n",
            f["most_feeds_in_real_time"]
        ));
    }
    if let Some(f) = report["more"].get("feed_latency") {
        md.push_str(&feed_latency(f));
    }
    md
}

/// The latency figure: one row per path, then the ratios to the chain, the WHIP feeds' CPU
/// and the targets.
fn feed_latency(f: &Value) -> String {
    let mut md = format!(
        "\nLatency, publisher → room ({}; over WHIP: {}; read as {}), p50 and p95 over {} s per path ({} interleaved runs, pooled), and {}:\n\n| path | p50 ms | p95 ms | p50 per run | pictures / expected | CPU-s |\n|---|---|---|---|---|---|\n",
        f["publisher"].as_str().unwrap_or(""),
        f["whip_publisher"].as_str().unwrap_or(""),
        f["reader"].as_str().unwrap_or(""),
        f["window_seconds"],
        f["runs_per_path"],
        f["cpu"].as_str().unwrap_or(""),
    );
    let keys = [
        ("callfeed_passthrough", "callfeed, feed passed through"),
        ("callfeed_encoded", "callfeed, feed re-encoded"),
        (
            "callfeed_whip_passthrough",
            "callfeed, WHIP feed passed through",
        ),
        ("callfeed_whip_encoded", "callfeed, WHIP feed re-encoded"),
        ("nginx_ffmpeg", "nginx-rtmp + ffmpeg transcode"),
    ];
    for (key, name) in keys {
        let p = &f[key];
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} / {} | {} |\n",
            p["p50_ms"],
            p["p95_ms"],
            p["p50_ms_per_run"],
            p["pictures"],
            p["expected_pictures"],
            p["cpu_seconds"]
        ));
    }
    let over = |key: &str| {
        let o = &f[format!("{key}_over_chain")];
        format!("{} ({})", o["p50"], o["p95"])
    };
    let met = |v: &Value| if v == true { "met" } else { "not met" };
    md.push_str(&format!(
        "\ncallfeed / chain, p50 (p95): passed through {}, re-encoded {}; WHIP passed through {}, re-encoded {}. Target: {}: {}.\n",
        over("callfeed_passthrough"),
        over("callfeed_encoded"),
        over("callfeed_whip_passthrough"),
        over("callfeed_whip_encoded"),
        f["target"].as_str().unwrap_or(""),
        met(&f["met"])
    ));
    let stalled: Vec<String> = keys
        .iter()
        .filter(|(key, _)| f[key]["stalled_runs"].as_u64() > Some(0))
        .map(|(key, name)| format!("{name} {}", f[key]["stalled_runs"]))
        .collect();
    if !stalled.is_empty() {
        md.push_str(&format!(
            "\nRuns whose stream stopped after its first pictures, made again: {}.\n",
            stalled.join(", ")
        ));
    }
    md.push_str(&format!(
        "\nA WHIP feed passed through costs {} × the CPU of one re-encoded. Target: {}: {}.\n",
        f["whip_passthrough_over_encoded_cpu"],
        f["whip_target"].as_str().unwrap_or(""),
        met(&f["whip_met"])
    ));
    md
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
