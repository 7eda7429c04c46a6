//! callfeed against the ffmpeg CLI on the same input, in the same run, on this machine.
//!
//! `make bench` runs it and writes `target/bench-report/report.{json,md}` and `chart.svg`.
//! Every comparison runs the two tools interleaved (A B A B ...) `ROUNDS` times on the same
//! input and reports the median with min and max, and the ratio of the medians.
//!
//! The figures are rows of `figures::FIGURES`: how each tool is started, what is measured
//! (`measure::run` is the one spawn → watch → kill shape), the target and how it is reported.
//! `CALLFEED_BENCH_ONLY=startup,fanout` runs only the rows with those keys.

use std::path::PathBuf;

mod bespoke;
mod chart;
mod cluster;
mod concurrency;
mod control;
mod density;
mod figures;
mod latency;
mod measure;
mod readers;
mod report;
mod sharing;
mod tools;
mod whip;

/// The tests' throwaway PostgreSQL, for the cluster figure.
#[path = "../../tests/common/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

/// The cluster tests' way of starting nodes and the emulator, for the same figure.
#[path = "../../tests/common/processes.rs"]
#[allow(dead_code, unreachable_pub)]
mod processes;

/// The tests' WHIP sender: the offer and the answer of the WHIP publisher.
#[path = "../../tests/common/webrtc_sender.rs"]
#[allow(dead_code, unreachable_pub)]
mod webrtc_sender;

/// A free loopback port (what the PostgreSQL harness listens on).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

use figures::{FIGURES, Figure};
use report::Results;
use tools::Bench;

const ROUNDS: usize = 3;
const MEDIA_SECS: u64 = 8;
/// The media time of the light figures (passthrough, audio): a stream's start, which both
/// tools pay once, weighs less, and so does one tick of /proc's CPU accounting.
const LIGHT_MEDIA_SECS: u64 = 20;
/// A stream is real-time while its wall time stays within this factor of its media time.
const REAL_TIME_SLACK: f64 = 1.05;

/// Runs a figure unless `CALLFEED_BENCH_ONLY` (comma-separated keys) leaves it out.
fn wanted(key: &str) -> bool {
    std::env::var("CALLFEED_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|k| k.trim() == key))
}

fn main() {
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-report");
    std::fs::create_dir_all(&out_dir).unwrap();
    let bench = Bench::prepare();
    let mut results = Results::default();
    for figure in FIGURES.iter().filter(|f| wanted(f.key())) {
        eprintln!("{}", figure.heading());
        match figure {
            Figure::Versus(v) => {
                let c = v.compare(&bench, &results.comparisons);
                results.comparisons.push(c);
            }
            Figure::Bespoke(b) => results.put(b.slot, (b.run)(&bench)),
        }
    }
    let md = results.write(&out_dir);
    println!("{md}");
    println!("written to {}", out_dir.display());
}
