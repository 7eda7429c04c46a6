//! `serve --record-dir`: where room monitors' recordings go, checked before the node starts,
//! and kept only as long as `--record-keep` says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::cloud::InvalidArgument;
use crate::session::driver::RecordSettings;

#[derive(Args)]
pub(super) struct RecordArgs {
    /// Sessions may record what their room monitor receives (`record: true` or "audio") into
    /// this folder, one folder per session; it must exist and be writable.
    #[arg(long, value_name = "DIR")]
    record_dir: Option<PathBuf>,
    /// Recordings older than this are removed: a number and s, m, h or d (e.g. 7d).
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = age)]
    record_keep: Duration,
    /// A recording is cut into a new file after this long (e.g. 1h).
    #[arg(long, value_name = "AGE", default_value = "1h", value_parser = age)]
    record_segment: Duration,
}

/// `90s`, `30m`, `12h`, `7d`.
fn age(value: &str) -> Result<Duration, String> {
    let wrong = || format!("`{value}`: a number and s, m, h or d, e.g. 7d");
    let unit = value.chars().last().ok_or_else(wrong)?;
    let secs: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(wrong()),
    };
    let n: u64 = value[..value.len() - 1].parse().map_err(|_| wrong())?;
    match n.checked_mul(secs) {
        Some(total) if total > 0 => Ok(Duration::from_secs(total)),
        _ => Err(wrong()),
    }
}

/// Whether `dir` takes files: made and removed again.
fn check_writable(dir: &Path) -> Result<PathBuf, String> {
    let canonical = dir
        .canonicalize()
        .map_err(|e| format!("it cannot be opened ({e}): make it first"))?;
    if !canonical.is_dir() {
        return Err("it is not a folder".into());
    }
    let probe = canonical.join(format!(".callfeed-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("this process cannot write in it ({e})"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(canonical)
}

impl RecordArgs {
    /// The recordings' settings, once the folder is known to take files; what a crash left
    /// unfinished and what is older than `--record-keep` are removed now and every so often.
    pub(super) fn start(&self) -> Result<Option<RecordSettings>, InvalidArgument> {
        let Some(dir) = &self.record_dir else {
            return Ok(None);
        };
        let dir = check_writable(dir).map_err(|why| {
            InvalidArgument::new(
                "--record-dir",
                dir.display(),
                format!("an existing folder this process can write in: {why}"),
            )
        })?;
        let (root, keep) = (dir.clone(), self.record_keep);
        tokio::spawn(async move {
            let every = (keep / 4).clamp(Duration::from_secs(60), Duration::from_secs(3600));
            loop {
                let root = root.clone();
                let swept = tokio::task::spawn_blocking(move || {
                    crate::media::recording::sweep(&root, keep)
                })
                .await
                .unwrap_or_default();
                if swept.unfinished + swept.expired > 0 {
                    tracing::info!(
                        unfinished = swept.unfinished,
                        expired = swept.expired,
                        "recordings swept"
                    );
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok(Some(RecordSettings {
            dir,
            segment: self.record_segment,
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_as_a_person_writes_them() {
        assert_eq!(super::age("90s").unwrap().as_secs(), 90);
        assert_eq!(super::age("7d").unwrap().as_secs(), 7 * 86_400);
        assert!(super::age("7").is_err());
        assert!(super::age("0h").is_err());
        assert!(super::age("d").is_err());
    }
}
