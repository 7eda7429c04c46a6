//! A running session changed without ending (PATCH): each change carried out where it can
//! be — inside the session's own live pipeline, on its one timeline (same URL, same task),
//! or by the cloud's `UpdateStreamIngest` on the same task (a new URL for a file the cloud
//! plays itself or a feed, its volume, its pause). Refused, with why, where neither can.

use std::time::Duration;

use super::SessionRun;
use crate::cloud::ingest::UpdateStreamIngest;
use crate::media::input::InputSpec;
use crate::media::live::MediaEvent;
use crate::media::stream::control::{LiveControl, Queued, Switch};
use crate::media::topology::Topologies;
use crate::session::CloudOps;
use crate::session::change::{Change, ChangeError, MAX_QUEUE_WAITING, NewMedia, QueueChange};
use crate::session::media::{Media, Prepared, prepare, probe, words_spoken};
use crate::session::report::{ItemState, QueuedItem};
use crate::session::state::Phase;

type MediaEvents = Option<tokio::sync::broadcast::Receiver<MediaEvent>>;

impl<C: CloudOps> SessionRun<'_, C> {
    /// Carries out `change`, all of it or (when refused before anything was done) none.
    pub(super) async fn change(
        &mut self,
        prepared: &mut Prepared,
        relayed: bool,
        media_events: &mut MediaEvents,
        topologies: &Topologies,
        change: Change,
    ) -> Result<(), ChangeError> {
        match &self.machine.phase {
            Phase::Ingesting => {}
            Phase::Ending { .. } | Phase::Ended { .. } => return Err(ChangeError::Ended),
            other => return Err(ChangeError::NotBound(format!("{other:?}").to_lowercase())),
        }
        let in_place = prepared.changes_in_place();
        if let Some(seek) = change.seek {
            check_seek(prepared, in_place, seek)?;
        }
        if change.media.is_some() && !in_place && relayed {
            return Err(ChangeError::Unsupported {
                field: "media",
                reason: "a session pushed through a relay switches only within its own stream, and this one is a file passed through as it is".into(),
            });
        }
        if let Some(new) = change.media {
            let named = new.named.clone();
            match (&prepared.media, &new.input) {
                (Media::Live(stream), input)
                    if in_place && !matches!(input, InputSpec::Feed(_)) =>
                {
                    let now = new.clone();
                    let switch = self.switch_in_place(new).await?;
                    prepared.duration = switch
                        .report
                        .as_ref()
                        .and_then(|r| r.duration_ms)
                        .map(Duration::from_millis);
                    stream
                        .control(LiveControl::Switch(Box::new(switch)))
                        .map_err(|e| ChangeError::Media(e.to_string()))?;
                    self.playing_now(&now);
                }
                _ => {
                    self.switch_by_cloud(prepared, media_events, topologies, new, None)
                        .await?
                }
            }
            // The new input replaces the queue too.
            self.drop_waiting();
            self.controls.status.send_modify(|st| {
                st.switched_to = Some(named);
                st.paused = false;
            });
        }
        if let Some(seek) = change.seek {
            match &prepared.media {
                Media::Live(stream) if in_place => stream
                    .control(LiveControl::Seek(seek))
                    .map_err(|e| ChangeError::Media(e.to_string()))?,
                // A file the cloud plays cannot be moved within: the session moves to a
                // stream of its own that starts there, on the same task.
                _ => {
                    let here = NewMedia {
                        named: self.spec.media.clone(),
                        input: self.spec.input.clone(),
                        guard: self.spec.source_guard.clone(),
                    };
                    self.switch_by_cloud(prepared, media_events, topologies, here, Some(seek))
                        .await?;
                }
            }
        }
        if let Some(queue) = change.queue {
            self.queue(prepared, media_events, topologies, queue)
                .await?;
        }
        self.level(prepared, in_place, change.volume, change.paused)
            .await
    }

    /// Queues items (or clears the queue) in the session's own live stream; a session whose
    /// media the cloud plays moves to one first (the slate, silent, then the queue).
    async fn queue(
        &mut self,
        prepared: &mut Prepared,
        media_events: &mut MediaEvents,
        topologies: &Topologies,
        queue: QueueChange,
    ) -> Result<(), ChangeError> {
        let (items, replace) = match queue {
            QueueChange::Clear => {
                if let Media::Live(stream) = &prepared.media
                    && stream.takes_changes()
                {
                    stream
                        .control(LiveControl::ClearQueue)
                        .map_err(|e| ChangeError::Media(e.to_string()))?;
                }
                self.drop_waiting();
                return Ok(());
            }
            QueueChange::Add { items, replace } => (items, replace),
        };
        let kept = if replace { 0 } else { self.waiting_items() };
        if kept + items.len() > MAX_QUEUE_WAITING {
            return Err(ChangeError::Unsupported {
                field: "items",
                reason: format!(
                    "a session's queue holds at most {MAX_QUEUE_WAITING} items waiting ({kept} wait now)"
                ),
            });
        }
        if !prepared.changes_in_place() {
            if prepared.relay.is_some() {
                return Err(ChangeError::Unsupported {
                    field: "items",
                    reason: "a file passed through to a relay cannot play a queue".into(),
                });
            }
            let silence = "test:black+silence";
            let input =
                InputSpec::parse_syntax(silence).map_err(|e| ChangeError::Media(e.to_string()))?;
            let moved = NewMedia {
                named: silence.into(),
                input,
                guard: None,
            };
            self.switch_by_cloud(prepared, media_events, topologies, moved, None)
                .await?;
        }
        let first_id = self.controls.status.borrow().queue.len() as u64 + 1;
        let mut queued = Vec::with_capacity(items.len());
        let mut shown = Vec::with_capacity(items.len());
        for (n, item) in items.into_iter().enumerate() {
            let id = first_id + n as u64;
            shown.push(QueuedItem {
                id,
                mark: item.mark.clone(),
                media: item.media.named.clone(),
                state: ItemState::Waiting,
                started_ms: None,
                finished_ms: None,
                heard_ms: None,
            });
            let mut switch = self.switch_in_place(item.media).await?;
            switch.loops = crate::media::live::Loops::Times(1);
            queued.push(Queued {
                id,
                mark: item.mark,
                switch,
            });
        }
        let Media::Live(stream) = &prepared.media else {
            return Err(ChangeError::Media(
                "the session has no stream of its own".into(),
            ));
        };
        stream
            .control(LiveControl::Queue {
                items: queued,
                replace,
            })
            .map_err(|e| ChangeError::Media(e.to_string()))?;
        if replace {
            self.drop_waiting();
        }
        self.controls
            .status
            .send_modify(|st| st.queue.extend(shown));
        Ok(())
    }

    fn waiting_items(&self) -> usize {
        let status = self.controls.status.borrow();
        status
            .queue
            .iter()
            .filter(|i| i.state == ItemState::Waiting)
            .count()
    }

    /// What waits in the queue is dropped.
    fn drop_waiting(&self) {
        self.controls.status.send_modify(|st| {
            for item in st
                .queue
                .iter_mut()
                .filter(|i| i.state == ItemState::Waiting)
            {
                item.state = ItemState::Dropped;
            }
        });
    }

    /// Whether a queued item started and its sound is not heard in the room yet (and there
    /// is an ear in the room to hear it).
    pub(super) fn awaits_hearing(&self) -> bool {
        self.settings.room_witness.is_some()
            && self.call_id.is_some()
            && self
                .controls
                .status
                .borrow()
                .queue
                .iter()
                .any(|i| i.started_ms.is_some() && i.heard_ms.is_none())
    }

    /// Asks the room's ear which items' starts it heard, and notes them heard now.
    pub(super) fn listen_for_items(&self) {
        let (Some(witness), Some(call)) = (&self.settings.room_witness, &self.call_id) else {
            return;
        };
        let Some(room) = witness(call) else {
            return;
        };
        let now = self.ms();
        self.controls.status.send_if_modified(|st| {
            let mut changed = false;
            for id in room
                .cues_heard
                .iter()
                .filter_map(|c| crate::media::flv::cued_item(c))
            {
                if let Some(item) = st
                    .queue
                    .iter_mut()
                    .find(|i| i.id == id && i.heard_ms.is_none())
                {
                    item.heard_ms = Some(now);
                    changed = true;
                }
            }
            changed
        });
    }

    /// A queued item started or finished on the stream: its place in the status.
    pub(super) fn note_queued(&self, event: MediaEvent) {
        let now = self.ms();
        self.controls.status.send_modify(|st| match event {
            MediaEvent::QueuedStarted { id, .. } => {
                if let Some(item) = st.queue.iter_mut().find(|i| i.id == id) {
                    item.state = ItemState::Playing;
                    item.started_ms = Some(now);
                }
            }
            MediaEvent::QueuedFinished { id, cut, .. } => {
                if let Some(item) = st.queue.iter_mut().find(|i| i.id == id) {
                    item.state = if cut {
                        ItemState::Cut
                    } else {
                        ItemState::Played
                    };
                    item.finished_ms = Some(now);
                }
            }
            _ => {}
        });
    }

    /// Volume and pause: in the session's own stream, or the cloud's on its task.
    async fn level(
        &mut self,
        prepared: &Prepared,
        in_place: bool,
        volume: Option<u32>,
        paused: Option<bool>,
    ) -> Result<(), ChangeError> {
        if volume.is_none() && paused.is_none() {
            return Ok(());
        }
        match &prepared.media {
            Media::Live(stream) if in_place => {
                let changes = volume
                    .map(LiveControl::Volume)
                    .into_iter()
                    .chain(paused.map(LiveControl::Pause));
                for change in changes {
                    stream
                        .control(change)
                        .map_err(|e| ChangeError::Media(e.to_string()))?;
                }
            }
            _ => {
                self.update_task(UpdateStreamIngest {
                    volume,
                    is_pause: paused,
                    ..Default::default()
                })
                .await?;
            }
        }
        self.controls.status.send_modify(|st| {
            if let Some(v) = volume {
                st.volume = v;
            }
            if let Some(p) = paused {
                st.paused = p;
            }
        });
        Ok(())
    }

    /// The new input probed, as a new session's is, and what the stream needs to play it.
    async fn switch_in_place(&self, new: NewMedia) -> Result<Switch, ChangeError> {
        let spec = words_spoken(&self.spec_for(&new), &self.settings)
            .await
            .map_err(ChangeError::Media)?;
        let contract = crate::media::contract::Contract::new(spec.profile);
        let report = probe(&spec, &self.settings, contract)
            .await
            .map_err(ChangeError::Media)?;
        Ok(Switch {
            spec: spec.input,
            report,
            loops: match self.spec.repeat {
                Some(n) => crate::media::live::Loops::Times(n.max(1)),
                None => crate::media::live::Loops::Forever,
            },
            guard: spec.source_guard,
        })
    }

    /// The new input made ready as a new session's is, its URL given to the cloud's task in
    /// place of the old one, and the old media let go; the old media stays when the cloud
    /// refuses.
    async fn switch_by_cloud(
        &mut self,
        prepared: &mut Prepared,
        media_events: &mut MediaEvents,
        topologies: &Topologies,
        new: NewMedia,
        start: Option<Duration>,
    ) -> Result<(), ChangeError> {
        let mut spec = self.spec_for(&new);
        spec.start = start;
        let started = self.started;
        let now_ms = move || started.elapsed().as_millis() as u64;
        let next = prepare(
            &spec,
            &self.id,
            &self.settings,
            topologies,
            &|_| {},
            &now_ms,
        )
        .await
        .map_err(|(_, reason)| ChangeError::Media(reason))?;
        if next.relay.is_some() {
            return Err(ChangeError::Unsupported {
                field: "media",
                reason: "the new input would go through a relay: switch within the stream instead"
                    .into(),
            });
        }
        let asked = UpdateStreamIngest {
            stream_url: Some(next.url.clone()),
            ..Default::default()
        };
        if let Err(e) = self.update_task(asked).await {
            self.settings.publisher.withdraw(&next.url);
            if let Media::Live(stream) = next.media {
                let _ = stream.stop().await;
            }
            return Err(e);
        }
        let old = std::mem::replace(prepared, next);
        self.playing_now(&new);
        self.settings.publisher.withdraw(&old.url);
        if let Media::Live(stream) = old.media {
            tokio::spawn(stream.stop());
        }
        *media_events = match &prepared.media {
            Media::Live(s) => Some(s.events()),
            _ => None,
        };
        self.mode_reason = Some(prepared.mode_reason.clone());
        self.controls.status.send_modify(|st| {
            st.mode = Some(prepared.mode);
            st.stream_url = Some(prepared.url.clone());
        });
        Ok(())
    }

    /// `new` is what the session plays from now on: what a later change starts from.
    fn playing_now(&mut self, new: &NewMedia) {
        self.spec.media = new.named.clone();
        self.spec.input = new.input.clone();
        self.spec.source_guard = new.guard.clone();
    }

    /// The session's spec with `new` as its input.
    fn spec_for(&self, new: &NewMedia) -> crate::session::SessionSpec {
        let mut spec = self.spec.clone();
        spec.media = new.named.clone();
        spec.input = new.input.clone();
        spec.source_guard = new.guard.clone();
        spec.ring_when_live = None;
        spec.stays_after_feed = false;
        spec
    }

    /// Asks the cloud to change the session's task.
    async fn update_task(&self, mut asked: UpdateStreamIngest) -> Result<(), ChangeError> {
        let task = self
            .task_id
            .clone()
            .ok_or_else(|| ChangeError::NotBound("no ingest task".into()))?;
        asked.task_id = task;
        match self.cloud.update_ingest(&asked).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ChangeError::Cloud(
                "the cloud has no such task (any more)".into(),
            )),
            Err(e) => Err(ChangeError::Cloud(e.to_string())),
        }
    }
}

/// A seek is for a file the session's own stream plays, within its length.
fn check_seek(prepared: &Prepared, in_place: bool, seek: Duration) -> Result<(), ChangeError> {
    let unsupported = |reason: &str| ChangeError::Unsupported {
        field: "seek_secs",
        reason: reason.to_owned(),
    };
    let announced =
        matches!(prepared.media, Media::Announcement { .. }) && prepared.relay.is_none();
    if !in_place && !announced {
        return Err(unsupported(
            "this session's media is a feed, a URL the cloud pulls, or a file passed through as it is, and cannot be moved within",
        ));
    }
    match prepared.duration {
        Some(length) if seek >= length => Err(unsupported(&format!(
            "past the end of the file ({:.1} s long)",
            length.as_secs_f64()
        ))),
        Some(_) => Ok(()),
        None => Err(unsupported("the input is not a file of known length")),
    }
}

/// The queue as the session ended: what was on air cut, what waited dropped.
pub(super) fn ended_queue(queue: &[QueuedItem]) -> Vec<QueuedItem> {
    queue
        .iter()
        .cloned()
        .map(|mut item| {
            item.state = match item.state {
                ItemState::Playing => ItemState::Cut,
                ItemState::Waiting => ItemState::Dropped,
                done => done,
            };
            item
        })
        .collect()
}
