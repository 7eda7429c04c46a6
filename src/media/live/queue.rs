//! A live stream's play queue: inputs played one after another on the stream's one
//! timeline, each told when it starts (its first media reaches the pump) and when it ends
//! (played out, or cut by a replace or a clear). The session's own input is what plays
//! until a queue begins; once the queue runs out the stream carries the slate until it is
//! given more.

use std::collections::VecDeque;

use crate::media::stream::control::Queued;

/// The queue and the item of it that plays, if one does.
#[derive(Default)]
pub(super) struct PlayQueue {
    waiting: VecDeque<Queued>,
    playing: Option<Playing>,
}

/// The queued item on air.
pub(super) struct Playing {
    pub(super) id: u64,
    pub(super) mark: Option<String>,
    /// Its start was told.
    pub(super) started: bool,
}

impl PlayQueue {
    /// Adds `items`; `replace` drops what waits first. Whether the next of them should play
    /// at once: a replace cuts what plays, and an append starts at once when no queued item
    /// plays (it then cuts the session's own input, or ends the idle slate).
    pub(super) fn add(&mut self, items: Vec<Queued>, replace: bool) -> bool {
        if replace {
            self.waiting.clear();
        }
        self.waiting.extend(items);
        replace || self.playing.is_none()
    }

    /// Drops what waits; whether a queued item plays (which the clear cuts).
    pub(super) fn clear(&mut self) -> bool {
        self.waiting.clear();
        self.playing.is_some()
    }

    /// The next item, now on air; `None` when the queue ran out.
    pub(super) fn advance(&mut self) -> Option<Queued> {
        let next = self.waiting.pop_front();
        self.playing = next.as_ref().map(|q| Playing {
            id: q.id,
            mark: q.mark.clone(),
            started: false,
        });
        next
    }

    /// The item on air, taken off it (it ended or was cut).
    pub(super) fn finish(&mut self) -> Option<Playing> {
        self.playing.take()
    }

    /// The item on air whose start is not told yet, now told.
    pub(super) fn starting(&mut self) -> Option<(u64, Option<String>)> {
        let playing = self.playing.as_mut().filter(|p| !p.started)?;
        playing.started = true;
        Some((playing.id, playing.mark.clone()))
    }

    pub(super) fn plays_queued(&self) -> bool {
        self.playing.is_some()
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::input::InputSpec;

    fn item(id: u64) -> Queued {
        Queued {
            id,
            mark: Some(format!("m{id}")),
            switch: crate::media::stream::control::Switch {
                spec: InputSpec::Test {
                    video: None,
                    audio: None,
                },
                report: None,
                loops: crate::media::live::Loops::Times(1),
                guard: None,
            },
        }
    }

    #[test]
    fn items_play_in_order_a_replace_cuts_and_the_end_is_idle() {
        let mut queue = PlayQueue::default();
        assert!(
            queue.add(vec![item(1), item(2)], false),
            "nothing queued plays: at once"
        );
        assert_eq!(queue.advance().map(|q| q.id), Some(1));
        assert_eq!(queue.starting(), Some((1, Some("m1".into()))));
        assert_eq!(queue.starting(), None, "told once");
        assert!(
            !queue.add(vec![item(3)], false),
            "an append waits behind what plays"
        );
        assert_eq!(queue.finish().map(|p| p.id), Some(1));
        assert_eq!(queue.advance().map(|q| q.id), Some(2));
        assert!(queue.add(vec![item(4)], true), "a replace cuts");
        assert_eq!(queue.waiting(), 1);
        queue.finish();
        assert_eq!(queue.advance().map(|q| q.id), Some(4));
        assert!(queue.clear());
        queue.finish();
        assert!(queue.advance().is_none(), "ran out");
    }
}
