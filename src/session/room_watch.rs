//! A session's room monitor while it runs: the door the cloud publishes to, the monitor that
//! decodes it, what the status shows, the alerts (`room_silent`, `room_frozen`, `room_lost`)
//! and the verdict from the room. A leaf the session's run holds; the cloud requests are the
//! run's.

use std::time::Duration;

use serde::Serialize;

use super::monitor_spec::{MonitorSource, MonitorSpec};
use crate::feed::MonitorDoor;
use crate::media::monitor::{MonitorLink, RoomMonitor};
use crate::media::observer::ObservedMedia;
use crate::media::recording::{Recording, RecordingView};

/// How long the room may carry no sound (or no new picture) before it is said.
const QUIET_FOR: Duration = Duration::from_secs(3);
/// How long the cloud may take to publish the room before its silence is said.
const FIRST_MEDIA_WITHIN: Duration = Duration::from_secs(10);
/// Sound quieter than this is silence.
const SILENT_BELOW_DB: f64 = -60.0;
/// The share of what the room should have carried that it must carry.
const CARRIED_AT_LEAST: f64 = 0.9;

/// Something the room did that a person would notice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomAlert {
    /// `room_silent`, `room_frozen` or `room_lost`.
    pub kind: &'static str,
    /// On the session's clock.
    pub at_ms: u64,
    pub detail: String,
}

/// The monitor as the status, the events and the report show it: the emulator room view's
/// figures, and how the monitor stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorView {
    /// `starting`, `waiting` (for the cloud's push), `receiving`, `lost`, `refused` or
    /// `stopped`.
    pub state: &'static str,
    pub source: MonitorSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Connections the cloud made to publish the room.
    pub connections: u32,
    #[serde(flatten)]
    pub figures: ObservedMedia,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<RoomAlert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was recorded so far, when the session asked for a recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingView>,
    /// On the session's clock: when these figures were read.
    pub at_ms: u64,
}

/// What the run knows of the room's quiet: since when its sound has been below the floor
/// (on the session's clock), and whether the current silence and stillness were said.
#[derive(Debug, Default)]
struct Quiet {
    faint_since: Option<u64>,
    silence_said: bool,
    stillness_said: bool,
}

/// A running room monitor.
pub struct RoomWatch {
    pub spec: MonitorSpec,
    expects_video: bool,
    /// Held while the session runs: dropping it closes the door.
    _door: Option<MonitorDoor>,
    monitor: Option<RoomMonitor>,
    recording: Option<Recording>,
    task_id: Option<String>,
    /// On the session's clock: when the publish was asked for.
    asked_ms: u64,
    error: Option<String>,
    alerts: Vec<RoomAlert>,
    quiet: Quiet,
    /// Figures at the end.
    last: ObservedMedia,
    stopped: bool,
    lost_at_end: bool,
}

impl RoomWatch {
    /// A monitor on `door` (recording into `recording`, when given), observing from now;
    /// the publish is asked for next.
    pub fn open(
        spec: MonitorSpec,
        door: MonitorDoor,
        recording: Option<Recording>,
        expects_video: bool,
        now_ms: u64,
    ) -> Self {
        let monitor = RoomMonitor::start(door.inlet.clone(), recording.clone());
        let (monitor, error) = match monitor {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self {
            expects_video,
            _door: Some(door),
            monitor,
            recording,
            error,
            ..Self::refused(spec, String::new(), now_ms)
        }
    }

    /// A monitor that could not be had (no RTMP server, the cloud refused): why.
    pub fn refused(spec: MonitorSpec, why: String, now_ms: u64) -> Self {
        Self {
            spec,
            expects_video: false,
            _door: None,
            monitor: None,
            recording: None,
            task_id: None,
            asked_ms: now_ms,
            error: Some(why),
            alerts: Vec::new(),
            quiet: Quiet::default(),
            last: ObservedMedia::default(),
            stopped: false,
            lost_at_end: false,
        }
    }

    pub fn publish_started(&mut self, task_id: String) {
        self.task_id = Some(task_id);
    }

    pub fn publish_refused(&mut self, why: String) {
        self.error = Some(why);
        self.monitor = None;
        self._door = None;
    }

    fn link(&self) -> (MonitorLink, u32) {
        self.monitor
            .as_ref()
            .map_or((MonitorLink::Waiting, 0), RoomMonitor::link)
    }

    fn state(&self) -> &'static str {
        if self.error.is_some() {
            return "refused";
        }
        if self.stopped {
            return "stopped";
        }
        match self.link().0 {
            _ if self.task_id.is_none() => "starting",
            MonitorLink::Waiting => "waiting",
            MonitorLink::Receiving => "receiving",
            MonitorLink::Lost => "lost",
        }
    }

    /// Reads the figures, and notes what a person would notice; `sending` says whether the
    /// session means the room to carry media now (bound, not paused). New alerts come back.
    pub fn look(&mut self, now_ms: u64, sending: bool) -> Vec<RoomAlert> {
        let monitor_now = self.monitor.as_ref().map(RoomMonitor::now_ms);
        if let Some(m) = &self.monitor {
            self.last = m.figures();
        }
        let mut new = Vec::new();
        if !sending || self.error.is_some() || self.stopped {
            self.quiet = Quiet::default();
            return new;
        }
        let f = self.last.clone();
        let (link, _) = self.link();
        if link == MonitorLink::Lost && !self.raised("room_lost") {
            new.push(self.alert(
                "room_lost",
                now_ms,
                "the cloud stopped publishing the room: what the callee receives is not heard any more".into(),
            ));
        }
        let Some(first) = f.first_media_ms else {
            let waited = now_ms.saturating_sub(self.asked_ms);
            if waited >= FIRST_MEDIA_WITHIN.as_millis() as u64 && !self.raised("room_silent") {
                new.push(self.alert(
                    "room_silent",
                    now_ms,
                    format!("the room carried nothing in {} s", waited / 1000),
                ));
            }
            return new;
        };
        // How long the room has gone without sound (nothing decoded, or all of it below the
        // floor) and without a new picture, on the monitor's own clock where it can.
        let monitor_now = monitor_now.unwrap_or(f.last_media_ms.unwrap_or(first));
        let since = |last: Option<u64>| monitor_now.saturating_sub(last.unwrap_or(first));
        let faint = f.level_now_db.is_none_or(|db| db <= SILENT_BELOW_DB);
        self.quiet.faint_since = match faint {
            true => self.quiet.faint_since.or(Some(now_ms)),
            false => None,
        };
        let silent_for =
            since(f.last_audio_ms).max(self.quiet.faint_since.map_or(0, |t| now_ms - t));
        let still_for = if self.expects_video {
            since(f.last_video_ms)
        } else {
            0
        };
        let quiet_ms = QUIET_FOR.as_millis() as u64;
        if silent_for < quiet_ms {
            self.quiet.silence_said = false;
        } else if !self.quiet.silence_said {
            self.quiet.silence_said = true;
            let detail = format!("no sound in the room for {} s", silent_for / 1000);
            new.push(self.alert("room_silent", now_ms - silent_for, detail));
        }
        if still_for < quiet_ms {
            self.quiet.stillness_said = false;
        } else if !self.quiet.stillness_said {
            self.quiet.stillness_said = true;
            let detail = format!(
                "the room's picture has not moved for {} s",
                still_for / 1000
            );
            new.push(self.alert("room_frozen", now_ms - still_for, detail));
        }
        new
    }

    fn raised(&self, kind: &str) -> bool {
        self.alerts.iter().any(|a| a.kind == kind)
    }

    fn alert(&mut self, kind: &'static str, at_ms: u64, detail: String) -> RoomAlert {
        let alert = RoomAlert {
            kind,
            at_ms,
            detail,
        };
        self.alerts.push(alert.clone());
        alert
    }

    pub fn view(&self, now_ms: u64) -> MonitorView {
        MonitorView {
            state: self.state(),
            source: self.spec.source,
            task_id: self.task_id.clone(),
            connections: self.link().1,
            figures: self.last.clone(),
            alerts: self.alerts.clone(),
            error: self.error.clone(),
            recording: self.recording.as_ref().map(Recording::view),
            at_ms: now_ms,
        }
    }

    /// Stops observing, with the figures at the end; the door closes with the watch.
    pub async fn stop(&mut self) {
        if let Some(m) = self.monitor.take() {
            // A push the cloud gave up and did not make again: the rest went unheard.
            self.lost_at_end = m.link().0 == MonitorLink::Lost;
            self.last = m.stop().await;
        }
        self.stopped = true;
    }

    /// Why the room did not carry the media, if it did not: the verdict a completed session
    /// must pass. `bound_secs`: how long the stream was bound into the room.
    pub fn shortfall(&self, bound_secs: u64) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(format!("the room could not be monitored: {e}"));
        }
        if self.lost_at_end {
            return Some(
                "the cloud stopped publishing the room mid-call: what the callee received after that is unknown".into(),
            );
        }
        let f = &self.last;
        if f.audio_ms == 0 {
            return Some(format!("the room received 0 ms of audio in {bound_secs} s"));
        }
        let span = f
            .last_media_ms
            .zip(f.first_media_ms)
            .map_or(0, |(last, first)| last.saturating_sub(first));
        if (f.audio_ms as f64) < span as f64 * CARRIED_AT_LEAST {
            return Some(format!(
                "the room carried {} ms of audio of the {span} ms it was sent (under {:.0} %)",
                f.audio_ms,
                CARRIED_AT_LEAST * 100.0
            ));
        }
        if self.expects_video && f.video_frames == 0 {
            return Some(format!(
                "the room carried no picture ({} ms of audio)",
                f.audio_ms
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> RoomWatch {
        let spec = MonitorSpec {
            source: MonitorSource::Robot,
            record: None,
        };
        let mut w = RoomWatch::refused(spec, String::new(), 0);
        w.error = None;
        w.task_id = Some("t".into());
        w.expects_video = true;
        w
    }

    #[test]
    fn silence_and_a_still_picture_are_said_once_each_after_three_seconds() {
        let mut w = watch();
        w.last = ObservedMedia {
            audio_ms: 1000,
            video_frames: 25,
            first_media_ms: Some(100),
            last_media_ms: Some(1000),
            last_audio_ms: Some(1000),
            last_video_ms: Some(1000),
            level_now_db: Some(-20.0),
            ..Default::default()
        };
        // No monitor runs here: the figures stay as set, and the monitor's clock stands
        // at their latest media.
        assert!(w.look(1000, true).is_empty());
        w.last.level_now_db = None;
        assert!(w.look(2000, true).is_empty());
        assert!(w.look(4000, true).is_empty());
        let said = w.look(5000, true);
        assert_eq!(said.len(), 1, "{said:?}");
        assert_eq!(said[0].kind, "room_silent");
        assert_eq!(said[0].at_ms, 2000, "silent since the sound went faint");
        assert!(w.look(6000, true).is_empty(), "said once");
        // A picture that stops is said once it has been still for three seconds.
        w.last.last_media_ms = Some(4500);
        w.last.last_audio_ms = Some(4500);
        assert_eq!(w.look(7000, true)[0].kind, "room_frozen");
    }

    #[test]
    fn a_room_that_carried_nothing_or_too_little_fails_the_verdict() {
        let mut w = watch();
        assert_eq!(
            w.shortfall(30).unwrap(),
            "the room received 0 ms of audio in 30 s"
        );
        w.last = ObservedMedia {
            audio_ms: 4000,
            video_frames: 100,
            first_media_ms: Some(1000),
            last_media_ms: Some(11_000),
            ..Default::default()
        };
        assert!(
            w.shortfall(12)
                .unwrap()
                .contains("4000 ms of audio of the 10000 ms")
        );
        w.last.audio_ms = 9500;
        assert!(w.shortfall(12).is_none());
        w.last.video_frames = 0;
        assert!(w.shortfall(12).unwrap().contains("no picture"));
    }
}
