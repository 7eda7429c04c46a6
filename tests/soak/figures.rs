//! What the soak sees of a process: its figures now, a series of them over the load, and the
//! check that an idle process holds no more after the load than before it.

/// One look at a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    pub(crate) rss_kb: u64,
    pub(crate) threads: u64,
    pub(crate) fds: u64,
}

impl Figures {
    pub(crate) fn of(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        Some(Self {
            rss_kb: field("VmRSS:"),
            threads: field("Threads:"),
            fds,
        })
    }

    fn mb(self) -> f64 {
        self.rss_kb as f64 / 1024.0
    }
}

/// A process's figures under load, every 2 s: (seconds, figures).
#[derive(Default)]
pub(crate) struct Samples(Vec<(f64, Figures)>);

impl Samples {
    pub(crate) fn take(&mut self, at: f64, pid: u32) {
        if let Some(f) = Figures::of(pid) {
            self.0.push((at, f));
        }
    }

    /// The highest of each figure under load.
    pub(crate) fn peak(&self) -> Option<Figures> {
        let all = self.0.iter().map(|(_, f)| *f);
        Some(Figures {
            rss_kb: all.clone().map(|f| f.rss_kb).max()?,
            threads: all.clone().map(|f| f.threads).max()?,
            fds: all.map(|f| f.fds).max()?,
        })
    }
}

/// Checks that `after` (idle, every session over) holds no more than `before` (idle after
/// warm-up) did, beyond what an allocator keeps: what grows with churn is a leak. `memory`
/// false for the emulator, which keeps every call and task record, as the cloud does;
/// `known_fds` descriptors it is known to keep (see `main.rs`, the emulator's RTMP pulls).
pub(crate) fn assert_flat(
    who: &str,
    before: Figures,
    after: Figures,
    memory: bool,
    known_fds: u64,
) {
    println!(
        "{who}: idle after warm-up RSS {:.0} MB, {} threads, {} fds; idle after the load RSS {:.0} MB, {} threads, {} fds",
        before.mb(),
        before.threads,
        before.fds,
        after.mb(),
        after.threads,
        after.fds
    );
    assert!(
        !memory || after.mb() <= before.mb() + (before.mb() * 0.15).max(25.0),
        "{who}: memory grew from {:.0} to {:.0} MB",
        before.mb(),
        after.mb()
    );
    assert!(
        after.threads <= before.threads + 4,
        "{who}: threads grew from {} to {}",
        before.threads,
        after.threads
    );
    assert!(
        after.fds <= before.fds + 8 + known_fds,
        "{who}: descriptors grew from {} to {}",
        before.fds,
        after.fds
    );
}
