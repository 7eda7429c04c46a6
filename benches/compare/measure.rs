//! The one shape of every measurement: spawn a tool's processes, watch them, kill and reap
//! them; and what can be read of a process while it runs. CPU is read from /proc (user +
//! system time of the process), RSS from VmHWM.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// /proc's CPU accounting ticks per second.
pub(crate) fn clk_tck() -> f64 {
    100.0
}

/// user + system CPU seconds of a process and its threads, from /proc.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
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

pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What becomes of the processes' stdout (stderr is always discarded).
#[derive(Clone, Copy)]
pub(crate) enum Stdout {
    Discard,
    /// For the watcher to read: a URL the tool prints, or its progress lines.
    Read,
}

/// The processes of one measurement, killed and reaped when dropped (also on a panic).
pub(crate) struct Procs {
    children: Vec<Child>,
    started: Instant,
}

impl Procs {
    /// Just before the first process was spawned.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// CPU seconds so far, summed over the processes.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.children.iter().map(|c| cpu_seconds(c.id())).sum()
    }

    /// Peak RSS in MB so far, summed over the processes.
    pub(crate) fn peak_rss_mb(&self) -> f64 {
        self.children.iter().map(|c| peak_rss_mb(c.id())).sum()
    }

    /// Process `i`'s stdout (with `Stdout::Read`), once.
    pub(crate) fn stdout(&mut self, i: usize) -> ChildStdout {
        self.children[i].stdout.take().expect("stdout is read once")
    }

    /// The first line process `i` prints (the URL it serves at); its stdout is closed after.
    pub(crate) fn first_line(&mut self, i: usize) -> String {
        let mut line = String::new();
        BufReader::new(self.stdout(i)).read_line(&mut line).unwrap();
        line.trim().to_owned()
    }

    /// The API address `callfeed serve` (process `i`) prints on its first line when ready.
    pub(crate) fn serve_api(&mut self, i: usize) -> String {
        let ready: serde_json::Value =
            serde_json::from_str(&self.first_line(i)).expect("serve's address");
        ready["api"].as_str().expect("api").to_owned()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

/// Spawns `commands`, hands them to `watch` (which waits for and measures what it wants),
/// then kills and reaps them.
pub(crate) fn run<T>(
    commands: impl IntoIterator<Item = Command>,
    stdout: Stdout,
    watch: impl FnOnce(&mut Procs) -> T,
) -> T {
    let mut procs = Procs {
        children: Vec::new(),
        started: Instant::now(),
    };
    for mut cmd in commands {
        let out = match stdout {
            Stdout::Discard => Stdio::null(),
            Stdout::Read => Stdio::piped(),
        };
        procs
            .children
            .push(cmd.stdout(out).stderr(Stdio::null()).spawn().unwrap());
    }
    watch(&mut procs)
}
