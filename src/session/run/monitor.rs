//! The session's room monitor from the run's side: the door opened and the cloud asked to
//! publish the room once the stream is bound, a look every second, and the figures at the
//! end (the publish itself is stopped with the rest of the teardown).

use secrecy::SecretString;

use super::SessionRun;
use crate::cloud::publish_cdn::{PublishSource, PublishVideo, StartPublishCdnStream};
use crate::cloud::{InvalidArgument, UserId};
use crate::session::CloudOps;
use crate::session::monitor_spec::MonitorSource;
use crate::session::room_watch::{MonitorView, RoomWatch};
use crate::session::state::Phase;

/// How long the cloud may go on publishing a room nobody is in (its own backstop).
const PUBLISH_IDLE_SECS: u32 = 30;

impl<C: CloudOps> SessionRun<'_, C> {
    /// Opens the room monitor, once: a door on the RTMP server, and StartPublishCdnStream
    /// to it. A monitor that cannot be had is said in the status and the verdict; the call
    /// goes on.
    pub(super) async fn start_monitor(&mut self) {
        let Some(spec) = self.spec.monitor else {
            return;
        };
        if self.room_watch.is_some() {
            return;
        }
        let now = self.ms();
        let Some(door) = self.settings.feeds.as_ref().and_then(|f| f.open_monitor()) else {
            let why = "this node runs no RTMP server for the cloud to publish the room to (start serve with --rtmp-listen)";
            self.room_watch = Some(RoomWatch::refused(spec, why.into(), now));
            self.show_monitor();
            return;
        };
        let url = door.url.clone();
        let video = self.monitor_video();
        let recording = self.recording(spec.record, video.is_some());
        let mut watch = RoomWatch::open(spec, door, recording, video.is_some(), now);
        let started = match self.fenced_out().await {
            Some(reason) => Err(reason),
            None => match self.publish_request(spec.source, url, video) {
                Ok(req) => self
                    .cloud
                    .start_publish(&req)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        };
        match started {
            Ok(id) => {
                tracing::info!(session = %self.id, task_id = %id, "room monitor publish started");
                if let Some(j) = &self.journal {
                    use crate::store::Journal;
                    self.journal_note(j.set_publish_task(&self.id, &id).await);
                }
                self.remember(|l| l.publish_task_id = Some(id.clone()));
                watch.publish_started(id);
            }
            Err(why) => {
                tracing::warn!(session = %self.id, error = %why, "the room monitor's publish was refused");
                watch.publish_refused(why);
            }
        }
        self.room_watch = Some(watch);
        self.show_monitor();
    }

    /// Where the monitor records, when the session asked (and the node records at all: the
    /// API refuses a recording it cannot make before anything rings).
    fn recording(
        &self,
        kind: Option<crate::session::monitor_spec::RecordKind>,
        video: bool,
    ) -> Option<crate::media::recording::Recording> {
        use crate::session::monitor_spec::RecordKind;
        let kind = kind?;
        let settings = self.settings.record.as_ref()?;
        Some(crate::media::recording::Recording::new(
            crate::media::recording::RecordSpec {
                dir: settings.dir.join(&self.id),
                audio_only: kind == RecordKind::Audio || !video,
                segment: settings.segment,
            },
        ))
    }

    /// The picture the cloud is asked to publish: the session's own size and rate, when the
    /// call carries one.
    fn monitor_video(&self) -> Option<PublishVideo> {
        if self.spec.media_type != crate::cloud::MediaType::Video {
            return None;
        }
        let v = self.spec.profile.video()?;
        Some(PublishVideo {
            width: v.width,
            height: v.height,
            fps: v.fps,
            bitrate_kbps: v.kbps.min(crate::cloud::publish_cdn::MAX_VIDEO_KBPS),
            gop_secs: 2,
        })
    }

    fn publish_request(
        &self,
        source: MonitorSource,
        url: SecretString,
        video: Option<PublishVideo>,
    ) -> Result<StartPublishCdnStream, InvalidArgument> {
        let source = match source {
            MonitorSource::Robot => PublishSource::User(self.spec.ingest_user.clone()),
            MonitorSource::Mix => PublishSource::Mix,
        };
        let mut req =
            StartPublishCdnStream::new(self.spec.room.clone(), self.monitor_agent()?, source, url);
        req.video = video;
        req.max_idle_secs = Some(PUBLISH_IDLE_SECS);
        Ok(req)
    }

    /// The cloud's own user in the room for the monitor: an id no caller or robot has.
    fn monitor_agent(&self) -> Result<UserId, InvalidArgument> {
        let tail: String = self
            .id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect();
        UserId::new("monitor agent", &format!("mon_{tail}"))
    }

    /// Reads the monitor and says what the room did (once a second).
    pub(super) fn look_at_room(&mut self) {
        let sending =
            matches!(self.machine.phase, Phase::Ingesting) && !self.controls.status.borrow().paused;
        let now = self.ms();
        let Some(watch) = self.room_watch.as_mut() else {
            return;
        };
        for alert in watch.look(now, sending) {
            tracing::warn!(session = %self.id, kind = alert.kind, detail = %alert.detail, "room alert");
        }
        self.show_monitor();
    }

    fn show_monitor(&self) {
        let now = self.ms();
        if let Some(watch) = &self.room_watch {
            let view = watch.view(now);
            self.controls.status.send_modify(|s| s.monitor = Some(view));
        }
    }

    /// Stops the monitor: its last figures, and why the room failed the verdict, if it did.
    pub(super) async fn stop_monitor(&mut self) -> Option<(MonitorView, Option<String>)> {
        let mut watch = self.room_watch.take()?;
        let now = self.ms();
        // Stopping reads the last figures.
        watch.stop().await;
        let bound_secs = self.ingest_started.map_or(0, |t| t.elapsed().as_secs());
        let shortfall = watch.shortfall(bound_secs);
        Some((watch.view(now), shortfall))
    }
}
