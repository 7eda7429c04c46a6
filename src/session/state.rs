//! The session lifecycle as a pure state machine: events in, state and actions out. No I/O,
//! no clock: the driver feeds it what happened and carries out what it asks for.

use std::time::Duration;

/// When the stream is bound into the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestAt {
    /// When the first callee answers: an announcement is heard from its start.
    Answer,
    /// While it rings: a live feed is already there when the callee picks up.
    Ring,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Rejected,
    NotAnswered,
    HungUp,
    Stopped,
    /// The feed the session carried ended (deleted, timed out, failed).
    FeedEnded,
    Failed {
        stage: Stage,
        reason: String,
    },
}

impl Outcome {
    /// The process exit code `callfeed call` returns for it.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Completed => 0,
            Outcome::Failed { .. } => 1,
            Outcome::Rejected => 3,
            Outcome::NotAnswered => 4,
            Outcome::HungUp => 5,
            Outcome::Stopped => 6,
            Outcome::FeedEnded => 7,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Rejected => "rejected",
            Outcome::NotAnswered => "not_answered",
            Outcome::HungUp => "hung_up",
            Outcome::Stopped => "stopped",
            Outcome::FeedEnded => "feed_ended",
            Outcome::Failed { .. } => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Prepare,
    /// The RTMP push to a relay the cloud pulls from.
    Relay,
    Ring,
    Ingest,
    Media,
    /// The room monitor found that the room did not carry the media.
    Room,
    Teardown,
}

impl Stage {
    /// Its name as reports and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::Relay => "relay",
            Self::Ring => "ring",
            Self::Ingest => "ingest",
            Self::Media => "media",
            Self::Room => "room",
            Self::Teardown => "teardown",
        }
    }
}

/// Where a session is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Phase {
    Preparing,
    Ringing,
    /// A callee answered; the ingest task is being started.
    Answered,
    Ingesting,
    Ending {
        outcome: Outcome,
    },
    Ended {
        outcome: Outcome,
    },
}

/// What happened, as the driver learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The media is ready and its URL live.
    Prepared,
    CallStarted,
    /// A callee is in the call.
    Answered,
    /// The call is over on the cloud's side; `ever_answered` tells a hang-up from a refusal.
    CallGone {
        ever_answered: bool,
        rang_for: Duration,
    },
    IngestStarted,
    /// The cloud no longer runs our task.
    TaskGone,
    /// The media has played to its end (announcement done, live input finished).
    MediaFinished,
    /// The feed the session carries has ended.
    FeedEnded,
    StopRequested,
    Failed {
        stage: Stage,
        reason: String,
    },
    /// Everything we started has been stopped.
    TornDown,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    StartCall,
    StartIngest,
    /// Start the ingest task again (the cloud ended it while the call is live).
    RestartIngest {
        attempt: u32,
    },
    /// Stop the ingest task, end the call, stop the media: then report `TornDown`.
    TearDown,
}

/// A session's state and the facts the transitions need.
#[derive(Debug, Clone)]
pub struct Session {
    pub phase: Phase,
    ingest_at: IngestAt,
    ring_timeout: Duration,
    task_restarts: u32,
    max_task_restarts: u32,
    call_live: bool,
    task_live: bool,
}

impl Session {
    pub fn new(ingest_at: IngestAt, ring_timeout: Duration) -> Self {
        Self {
            phase: Phase::Preparing,
            ingest_at,
            ring_timeout,
            task_restarts: 0,
            max_task_restarts: 3,
            call_live: false,
            task_live: false,
        }
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended { .. })
    }

    fn end(&mut self, outcome: Outcome) -> Vec<Action> {
        match &self.phase {
            Phase::Ending { .. } | Phase::Ended { .. } => vec![],
            _ => {
                self.phase = Phase::Ending { outcome };
                vec![Action::TearDown]
            }
        }
    }

    /// Applies one event; returns what to do.
    pub fn on(&mut self, event: Event) -> Vec<Action> {
        use Event as E;
        use Phase as P;
        match (self.phase.clone(), event) {
            (P::Ending { outcome }, E::TornDown) => {
                self.phase = P::Ended { outcome };
                vec![]
            }
            (P::Ended { .. } | P::Ending { .. }, _) => vec![],
            (_, E::StopRequested) => self.end(Outcome::Stopped),
            (_, E::Failed { stage, reason }) => self.end(Outcome::Failed { stage, reason }),
            (P::Preparing, E::Prepared) => {
                self.phase = P::Ringing;
                vec![Action::StartCall]
            }
            (P::Ringing, E::CallStarted) => {
                self.call_live = true;
                if self.ingest_at == IngestAt::Ring {
                    vec![Action::StartIngest]
                } else {
                    vec![]
                }
            }
            (P::Ringing, E::IngestStarted) => {
                self.task_live = true;
                vec![]
            }
            (P::Ringing, E::Answered) => {
                if self.task_live {
                    self.phase = P::Ingesting;
                    vec![]
                } else {
                    self.phase = P::Answered;
                    vec![Action::StartIngest]
                }
            }
            (P::Answered, E::IngestStarted) => {
                self.task_live = true;
                self.phase = P::Ingesting;
                vec![]
            }
            (
                _,
                E::CallGone {
                    ever_answered,
                    rang_for,
                },
            ) => {
                self.call_live = false;
                let outcome = if ever_answered {
                    Outcome::HungUp
                } else if rang_for + Duration::from_millis(500) >= self.ring_timeout {
                    Outcome::NotAnswered
                } else {
                    Outcome::Rejected
                };
                self.end(outcome)
            }
            (P::Ingesting, E::MediaFinished) => self.end(Outcome::Completed),
            (P::Ringing | P::Answered | P::Ingesting, E::FeedEnded) => self.end(Outcome::FeedEnded),
            (P::Ringing | P::Answered, E::MediaFinished) => self.end(Outcome::Failed {
                stage: Stage::Media,
                reason: "the media ended before anyone heard it".into(),
            }),
            (P::Ingesting | P::Ringing, E::TaskGone) if self.call_live => {
                self.task_live = false;
                if self.task_restarts >= self.max_task_restarts {
                    return self.end(Outcome::Failed {
                        stage: Stage::Ingest,
                        reason: format!(
                            "the cloud ended the ingest task {} times",
                            self.task_restarts + 1
                        ),
                    });
                }
                self.task_restarts += 1;
                vec![Action::RestartIngest {
                    attempt: self.task_restarts,
                }]
            }
            (_, E::IngestStarted) => {
                self.task_live = true;
                vec![]
            }
            _ => vec![],
        }
    }
}

/// What reached a session's room, as a witness there saw it (the emulator's room observer;
/// against the real cloud there is none).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RoomSeen {
    pub audio_ms: u64,
    pub video_frames: u64,
    /// The cue points whose sound the room heard, in order (queued items' starts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cues_heard: Vec<String>,
}

/// A `Completed` outcome stands only if the figures bear it out: the live stream was
/// pulled and its input gave media into it, and a witness in the room (when there is one)
/// saw media arrive. Otherwise the session failed at the media stage, with what went wrong.
pub fn confirmed(
    outcome: Outcome,
    live: Option<&crate::media::live::StreamStats>,
    room: Option<&RoomSeen>,
) -> Outcome {
    if outcome != Outcome::Completed {
        return outcome;
    }
    let reason = if room.is_some_and(|r| r.audio_ms == 0 && r.video_frames == 0) {
        Some("nothing arrived in the room (its observer saw no audio and no video)")
    } else {
        live.and_then(live_shortfall)
    };
    match reason {
        Some(reason) => Outcome::Failed {
            stage: Stage::Media,
            reason: reason.into(),
        },
        None => outcome,
    }
}

/// Why a live stream carried nothing to the room, if it did not.
fn live_shortfall(stats: &crate::media::live::StreamStats) -> Option<&'static str> {
    Some(if !stats.pulled {
        "the cloud never pulled the stream: the room got nothing (is the stream URL reachable from the cloud? see --public-url)"
    } else if stats.frames_out == 0 && stats.audio_ms_out == 0 {
        "the stream produced no media"
    } else if stats.frames_in == 0 && stats.position_ms == 0 {
        "the input gave no media: the room saw only the slate"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Session {
        let mut s = Session::new(IngestAt::Answer, Duration::from_secs(30));
        assert_eq!(s.on(Event::Prepared), [Action::StartCall]);
        assert_eq!(s.on(Event::CallStarted), []);
        s
    }

    #[test]
    fn an_announcement_plays_after_the_answer_and_completes() {
        let mut s = ring();
        assert_eq!(s.on(Event::Answered), [Action::StartIngest]);
        assert_eq!(s.phase, Phase::Answered);
        assert_eq!(s.on(Event::IngestStarted), []);
        assert_eq!(s.phase, Phase::Ingesting);
        assert_eq!(s.on(Event::MediaFinished), [Action::TearDown]);
        assert_eq!(s.on(Event::TornDown), []);
        assert_eq!(
            s.phase,
            Phase::Ended {
                outcome: Outcome::Completed
            }
        );
    }

    #[test]
    fn a_live_feed_is_bound_while_it_rings() {
        let mut s = Session::new(IngestAt::Ring, Duration::from_secs(30));
        s.on(Event::Prepared);
        assert_eq!(s.on(Event::CallStarted), [Action::StartIngest]);
        s.on(Event::IngestStarted);
        assert_eq!(s.on(Event::Answered), []);
        assert_eq!(s.phase, Phase::Ingesting);
    }

    #[test]
    fn refusals_timeouts_and_hang_ups_are_told_apart() {
        let mut s = ring();
        s.on(Event::CallGone {
            ever_answered: false,
            rang_for: Duration::from_secs(2),
        });
        s.on(Event::TornDown);
        assert_eq!(
            s.phase,
            Phase::Ended {
                outcome: Outcome::Rejected
            }
        );
        let mut s = ring();
        s.on(Event::CallGone {
            ever_answered: false,
            rang_for: Duration::from_secs(30),
        });
        s.on(Event::TornDown);
        assert_eq!(
            s.phase,
            Phase::Ended {
                outcome: Outcome::NotAnswered
            }
        );
        let mut s = ring();
        s.on(Event::Answered);
        s.on(Event::IngestStarted);
        assert_eq!(
            s.on(Event::CallGone {
                ever_answered: true,
                rang_for: Duration::from_secs(3)
            }),
            [Action::TearDown]
        );
        s.on(Event::TornDown);
        assert_eq!(
            s.phase,
            Phase::Ended {
                outcome: Outcome::HungUp
            }
        );
        assert_eq!(Outcome::HungUp.exit_code(), 5);
    }

    #[test]
    fn a_task_the_cloud_ends_is_restarted_then_given_up() {
        let mut s = ring();
        s.on(Event::Answered);
        s.on(Event::IngestStarted);
        for attempt in 1..=3 {
            assert_eq!(s.on(Event::TaskGone), [Action::RestartIngest { attempt }]);
            s.on(Event::IngestStarted);
        }
        assert_eq!(s.on(Event::TaskGone), [Action::TearDown]);
        s.on(Event::TornDown);
        assert!(matches!(
            s.phase,
            Phase::Ended {
                outcome: Outcome::Failed {
                    stage: Stage::Ingest,
                    ..
                }
            }
        ));
    }

    #[test]
    fn stop_tears_down_once_from_anywhere() {
        let mut s = ring();
        assert_eq!(s.on(Event::StopRequested), [Action::TearDown]);
        assert_eq!(s.on(Event::StopRequested), []);
        assert_eq!(s.on(Event::Answered), []);
        s.on(Event::TornDown);
        assert!(s.is_ended());
        assert_eq!(s.on(Event::Prepared), []);
    }

    #[test]
    fn completed_stands_only_when_the_stream_was_pulled_and_carried_media() {
        use crate::media::live::{StreamState, StreamStats};
        let flowing = StreamStats {
            state: StreamState::Ended,
            passthrough: false,
            frames_in: 90,
            frames_out: 90,
            audio_ms_out: 3000,
            slate_frames: 0,
            slate_ms: 0,
            repeated_frames: 0,
            dropped_frames: 0,
            dropped_audio_ms: 0,
            restarts: 0,
            item: 0,
            iteration: 0,
            position_ms: 3000,
            bytes_out: 100_000,
            readers: 0,
            pulled: true,
        };
        let heard = RoomSeen {
            audio_ms: 3000,
            ..Default::default()
        };
        assert_eq!(
            confirmed(Outcome::Completed, Some(&flowing), Some(&heard)),
            Outcome::Completed
        );
        // An announcement has no live figures; other outcomes are left as they are.
        assert_eq!(
            confirmed(Outcome::Completed, None, None),
            Outcome::Completed
        );
        assert_eq!(
            confirmed(Outcome::HungUp, Some(&flowing), None),
            Outcome::HungUp
        );
        // The room's witness saw nothing: whatever the stream's own figures say.
        let empty_room = confirmed(
            Outcome::Completed,
            Some(&flowing),
            Some(&RoomSeen::default()),
        );
        assert!(
            matches!(&empty_room, Outcome::Failed { stage: Stage::Media, reason } if reason.contains("nothing arrived in the room")),
            "{empty_room:?}"
        );
        let failed = |stats: &StreamStats| match confirmed(Outcome::Completed, Some(stats), None) {
            Outcome::Failed {
                stage: Stage::Media,
                reason,
            } => reason,
            other => panic!("{other:?}"),
        };
        let never_pulled = StreamStats {
            pulled: false,
            ..flowing.clone()
        };
        assert!(failed(&never_pulled).contains("never pulled"));
        let silent = StreamStats {
            frames_out: 0,
            audio_ms_out: 0,
            ..flowing.clone()
        };
        assert!(failed(&silent).contains("no media"));
        let slate_only = StreamStats {
            frames_in: 0,
            position_ms: 0,
            slate_frames: 90,
            ..flowing
        };
        assert!(failed(&slate_only).contains("only the slate"));
    }
}
