//! Room monitors on `serve`: where their recordings go (`--record-dir`, checked before the
//! node starts, kept only as long as `--record-keep` says), where their alerts and finished
//! recordings are told (`--event-webhook`), and `[monitor]`, the monitor every session gets
//! unless it says otherwise.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use secrecy::SecretString;

use crate::cloud::InvalidArgument;
use crate::config::MonitorTable;
use crate::serve::outbound::EventWebhook;
use crate::session::driver::RecordSettings;
use crate::session::monitor_spec::MonitorSpec;

/// `[monitor]` read by the rules a request's `monitor` and `record` are read by.
pub(super) fn default_monitor(
    table: Option<&MonitorTable>,
) -> Result<Option<MonitorSpec>, InvalidArgument> {
    let Some(table) = table else {
        return Ok(None);
    };
    let source = table
        .source
        .as_ref()
        .map(|s| serde_json::Value::String(s.clone()))
        .unwrap_or(serde_json::Value::Bool(true));
    let record = table.record.as_ref().map(|r| match r {
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        other => serde_json::Value::String(other.to_string()),
    });
    crate::session::monitor_spec::parse(Some(&source), record.as_ref())
        .map_err(|e| InvalidArgument::new("[monitor]", e.value, e.allowed))
}

#[derive(Args)]
pub(super) struct MonitorArgs {
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
    /// POST room alerts (room_silent, room_frozen, room_lost) and finished recordings
    /// (recording_ready) to this URL as JSON, signed with CALLFEED_EVENT_WEBHOOK_KEY when set.
    #[arg(long, value_name = "URL")]
    event_webhook: Option<String>,
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

/// Recordings into `dir`, once it is known to take files.
pub(super) fn record_settings(
    dir: &Path,
    segment: Duration,
) -> Result<RecordSettings, InvalidArgument> {
    let dir = check_writable(dir).map_err(|why| {
        InvalidArgument::new(
            "--record-dir",
            dir.display(),
            format!("an existing folder this process can write in: {why}"),
        )
    })?;
    Ok(RecordSettings { dir, segment })
}

impl MonitorArgs {
    /// Where events are told, if anywhere: an http(s) URL with a host; `key` signs them.
    pub(super) fn event_webhook(
        &self,
        key: Option<SecretString>,
    ) -> Result<Option<EventWebhook>, InvalidArgument> {
        let Some(raw) = &self.event_webhook else {
            return Ok(None);
        };
        let url = url::Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| {
                InvalidArgument::new(
                    "--event-webhook",
                    crate::redact::redact_url(raw),
                    "an http:// or https:// URL with a host",
                )
            })?;
        Ok(Some(EventWebhook { url, key }))
    }

    /// The recordings' settings, once the folder is known to take files; what a crash left
    /// unfinished and what is older than `--record-keep` are removed now and every so often.
    pub(super) fn start(&self) -> Result<Option<RecordSettings>, InvalidArgument> {
        let Some(dir) = &self.record_dir else {
            return Ok(None);
        };
        let settings = record_settings(dir, self.record_segment)?;
        let (root, keep) = (settings.dir.clone(), self.record_keep);
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
        Ok(Some(settings))
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
