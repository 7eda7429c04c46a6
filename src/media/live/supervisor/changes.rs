//! The owner's changes carried out on a running live stream: volume and pause in the slot
//! the pump reads, a seek and a pause on a file's pipeline, another input, and the play
//! queue's turns (each item told when it is cut or played out).

use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{Attempt, Supervision};
use crate::media::input::InputItem;
use crate::media::stream::control::{LiveControl, Switch, gain};
use crate::media::stream::handle::MediaEvent;

impl Supervision {
    /// Carries out one change; `running` is the attempt's pipeline and item, when one runs
    /// (not while idle). `Some` ends the attempt.
    pub(super) fn apply(
        &mut self,
        change: LiveControl,
        running: Option<(&gst::Pipeline, usize)>,
    ) -> Option<Attempt> {
        // A file keeps its place while paused; a live source runs on unseen and unheard.
        let file = running
            .filter(|(_, item)| matches!(&self.items[*item], InputItem::Uri(u) if u.starts_with("file:")))
            .map(|(pipeline, _)| pipeline);
        match change {
            LiveControl::Volume(percent) => {
                self.feed.slot.lock().expect("slot lock").gain =
                    (percent != 100).then(|| gain(percent));
            }
            LiveControl::Pause(paused) => {
                {
                    let mut slot = self.feed.slot.lock().expect("slot lock");
                    slot.paused = paused;
                    // The stall clock starts again from the resume, not from the pause.
                    slot.progress_at = Some(Instant::now());
                }
                if let Some(pipeline) = file {
                    let state = if paused {
                        gst::State::Paused
                    } else {
                        gst::State::Playing
                    };
                    let _ = pipeline.set_state(state);
                }
            }
            LiveControl::Seek(at) => {
                if let Some(pipeline) = file {
                    let _ = pipeline.seek_simple(
                        gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                        gst::ClockTime::from_nseconds(at.as_nanos() as u64),
                    );
                }
            }
            LiveControl::Switch(switch) => {
                // The session's own new input replaces the queue too.
                self.queue.clear();
                self.cut_queued();
                self.drop_unsent();
                self.load(*switch);
                return Some(Attempt::Switched);
            }
            LiveControl::Queue { items, replace } => {
                if self.queue.add(items, replace) {
                    self.cut_queued();
                    self.drop_unsent();
                    return Some(self.next_queued());
                }
            }
            LiveControl::ClearQueue => {
                if self.queue.clear() {
                    self.cut_queued();
                    self.drop_unsent();
                    return Some(self.next_queued());
                }
            }
        }
        None
    }

    /// Plays `switch`'s input from its start next.
    fn load(&mut self, switch: Switch) {
        self.items = switch.spec.items();
        self.replayable = switch.spec.is_replayable();
        self.settings.loops = switch.loops;
        self.settings.start = None;
        self.settings.source_guard = switch.guard;
        self.settings.follow(switch.report.as_ref(), None);
        self.feed.slot.lock().expect("slot lock").paused = false;
    }

    /// What the cut input handed the pump and it has not sent yet goes unsent: a cut is
    /// heard at once, not after up to half a second of queued sound.
    fn drop_unsent(&self) {
        let mut slot = self.feed.slot.lock().expect("slot lock");
        slot.audio.clear();
        slot.video = None;
    }

    /// The queued item on air was cut: told so.
    fn cut_queued(&mut self) {
        if let Some(p) = self.queue.finish() {
            self.emit(MediaEvent::QueuedFinished {
                id: p.id,
                mark: p.mark,
                cut: true,
            });
        }
    }

    /// The queued item on air played out: told so.
    pub(super) fn queued_played_out(&mut self) {
        if let Some(p) = self.queue.finish() {
            self.emit(MediaEvent::QueuedFinished {
                id: p.id,
                mark: p.mark,
                cut: false,
            });
        }
    }

    /// The queue's next item loaded, or idle when it ran out.
    pub(super) fn next_queued(&mut self) -> Attempt {
        match self.queue.advance() {
            Some(next) => {
                self.load(next.switch);
                Attempt::Switched
            }
            None => Attempt::Idle,
        }
    }

    /// The queue ran out: the slate and silence until a change comes.
    pub(super) async fn idle(&mut self) -> Attempt {
        self.set_slate(true);
        self.emit(MediaEvent::QueueEmpty);
        loop {
            let change = tokio::select! {
                _ = self.stop.changed() => return Attempt::Stopped,
                change = async {
                    match self.controls.as_mut() {
                        Some(controls) => controls.recv().await,
                        None => std::future::pending().await,
                    }
                } => change,
            };
            match change {
                Some(change) => {
                    if let Some(next) = self.apply(change, None) {
                        return next;
                    }
                }
                None => self.controls = None,
            }
        }
    }
}
