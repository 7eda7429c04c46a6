//! The emulator's shared state: calls, ingest tasks, callbacks, behaviours and faults.
//!
//! One std `Mutex` guards it; no lock is held across an `.await` or a GStreamer call. A
//! mutation returns the webhooks it caused, and the caller sends them after unlocking.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use super::webhooks::Outbox;
use super::{Behaviour, EmulatorConfig, TrtcCallback};
use crate::cloud::room::{RoomKind, RoomRef};
use crate::media::observer::{MediaTally, ObservedMedia};

pub(crate) fn unix_now() -> u64 {
    crate::clock::unix_secs()
}

pub(crate) fn unix_now_ms() -> u64 {
    crate::clock::unix_ms().max(0) as u64
}

/// A member's place in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MemberState {
    Waiting,
    Calling,
    Rejected,
    Busy,
    NotAnswered,
    HungUp,
    /// Still ringing when the caller ended the call.
    Cancelled,
    /// In the call when the caller ended it.
    Ended,
}

impl MemberState {
    pub(crate) fn present(self) -> bool {
        matches!(self, MemberState::Waiting | MemberState::Calling)
    }

    /// The `Status` the call engine reports for a present member.
    pub(crate) fn wire_status(self) -> &'static str {
        match self {
            MemberState::Calling => "Calling",
            _ => "Waiting",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Member {
    pub user: String,
    pub state: MemberState,
    /// Media was flowing in the room when the member left the call: it saw some.
    #[serde(skip)]
    pub saw_media: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Call {
    pub id: String,
    pub robot: String,
    pub media_type: String,
    pub room: Option<RoomRef>,
    pub callees: Vec<Member>,
    pub start_time: u64,
    pub accept_time: u64,
    pub end_time: u64,
    /// `None` while the call lives; the record's `CallResult` after.
    pub result: Option<String>,
    #[serde(skip)]
    pub ended_at: Option<Instant>,
}

impl Call {
    pub(crate) fn call_type(&self) -> &'static str {
        if self.callees.len() > 1 {
            "MultiCall"
        } else {
            "SingleCall"
        }
    }

    /// `UserList` as the call engine reports it: robot first, then present callees.
    pub(crate) fn user_list(&self) -> Vec<serde_json::Value> {
        let mut users = vec![serde_json::json!({"User_Account": self.robot, "Status": "Calling"})];
        users.extend(
            self.callees.iter().filter(|m| m.state.present()).map(
                |m| serde_json::json!({"User_Account": m.user, "Status": m.state.wire_status()}),
            ),
        );
        users
    }

    pub(crate) fn record(&self) -> serde_json::Value {
        let mut members = vec![self.robot.clone()];
        members.extend(self.callees.iter().map(|m| m.user.clone()));
        serde_json::json!({
            "CallId": self.id,
            "Caller_Account": self.robot,
            "MediaType": self.media_type,
            "CallType": self.call_type(),
            "StartTime": self.start_time,
            "EndTime": self.end_time,
            "AcceptTime": self.accept_time,
            "CallResult": self.result.clone().unwrap_or_default(),
            "CalleeList_Account": members,
            "RoomId": self.room.as_ref().map(|r| r.id().to_owned()).unwrap_or_default(),
            "RoomIdType": self.room.as_ref().map_or(0, |r| r.call_room_id_type()),
        })
    }
}

/// Commands to a task's runner.
#[derive(Debug)]
pub(crate) enum TaskCommand {
    Stop,
    /// Ended by the cloud, not by the client.
    Kill,
    Update {
        url: Option<String>,
        pause: Option<bool>,
        /// Percent of the source's own level.
        volume: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskPhase {
    Connecting,
    Playing,
    Reconnecting,
    Paused,
    Stopped,
    Completed,
    Killed,
    Failed,
    TimedOut,
}

impl TaskPhase {
    pub(crate) fn ended(self) -> bool {
        matches!(
            self,
            TaskPhase::Stopped
                | TaskPhase::Completed
                | TaskPhase::Killed
                | TaskPhase::Failed
                | TaskPhase::TimedOut
        )
    }
}

pub(crate) struct Task {
    pub id: String,
    pub room: RoomRef,
    pub user_id: String,
    pub url: String,
    pub repeat_num: i64,
    /// MaxDuration, in minutes, when the request set it.
    pub max_duration: Option<i64>,
    pub volume: Option<u64>,
    pub phase: TaskPhase,
    pub reconnects: u32,
    pub tally: MediaTally,
    pub commands: mpsc::UnboundedSender<TaskCommand>,
    pub runner: Option<tokio::task::JoinHandle<()>>,
    /// What its observer decodes, for a publish of its room.
    pub tap: crate::media::tap::RoomTap,
}

/// Whose media a publish carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "user_id")]
pub(crate) enum PublishFrom {
    /// One user's stream (`WithTranscoding` 0).
    User(String),
    /// Every user's, mixed (`WithTranscoding` 1).
    Mix,
}

/// A StartPublishCdnStream task.
pub(crate) struct PublishTask {
    pub id: String,
    pub room: RoomRef,
    pub agent_user: String,
    pub from: PublishFrom,
    /// The URLs' scheme, host and path (their stream keys are kept out of views).
    pub shown_urls: Vec<String>,
    pub with_video: bool,
    pub sequence: i64,
    /// `None` once it stopped (asked to, or killed as a fault).
    pub publisher: Option<crate::media::room_publish::RoomPublisher>,
    pub ended: Option<&'static str>,
}

/// What the control API and tests see of a publish.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PublishView {
    pub task_id: String,
    pub room_id: String,
    pub room_kind: RoomKind,
    pub agent_user: String,
    pub from: PublishFrom,
    pub urls: Vec<String>,
    pub with_video: bool,
    /// connecting, publishing, retrying, or how it ended (stopped, killed).
    pub state: String,
}

impl PublishTask {
    pub(crate) fn view(&self) -> PublishView {
        let state = match (&self.publisher, self.ended) {
            (_, Some(ended)) => ended.to_owned(),
            (Some(p), None) => serde_json::to_value(p.state())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            (None, None) => "stopped".to_owned(),
        };
        PublishView {
            task_id: self.id.clone(),
            room_id: self.room.id().to_owned(),
            room_kind: self.room.kind(),
            agent_user: self.agent_user.clone(),
            from: self.from.clone(),
            urls: self.shown_urls.clone(),
            with_video: self.with_video,
            state,
        }
    }
}

/// What the control API and tests see of a task.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TaskView {
    pub task_id: String,
    pub user_id: String,
    pub room_id: String,
    pub room_kind: RoomKind,
    /// `InProgress` or `NotExist`, as DescribeStreamIngest says.
    pub status: &'static str,
    pub phase: String,
    pub stream_url: String,
    pub repeat_num: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration_minutes: Option<i64>,
    pub reconnects: u32,
    #[serde(flatten)]
    pub media: ObservedMedia,
}

impl Task {
    pub(crate) fn view(&self) -> TaskView {
        TaskView {
            task_id: self.id.clone(),
            user_id: self.user_id.clone(),
            room_id: self.room.id().to_owned(),
            room_kind: self.room.kind(),
            status: if self.phase.ended() {
                "NotExist"
            } else {
                "InProgress"
            },
            phase: serde_json::to_value(self.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            stream_url: self.url.split('?').next().unwrap_or_default().to_owned(),
            repeat_num: self.repeat_num,
            max_duration_minutes: self.max_duration,
            reconnects: self.reconnects,
            media: self.tally.snapshot(),
        }
    }
}

/// A scripted failure for the next requests of a command or action.
#[derive(Debug, Clone, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// A call-engine command (`start_call_by_robot`), an API action (`StartStreamIngest`),
    /// or `*` for any.
    pub target: String,
    #[serde(default = "one")]
    pub count: u32,
    /// An IM error code (number) or an API 3.0 error code (string).
    #[serde(default)]
    pub error: Option<serde_json::Value>,
    #[serde(default)]
    pub message: Option<String>,
    /// Answer with this HTTP status and a non-JSON body instead.
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub delay_ms: u64,
    /// Break the connection instead of answering.
    #[serde(default)]
    pub drop: bool,
    /// Carry the request out, then break the connection instead of answering: the start
    /// took effect, and the client never hears of it (the riskiest failure for leaks).
    #[serde(default)]
    pub effect_then_drop: bool,
}

fn one() -> u32 {
    1
}

/// What a fault makes the emulator do with the request it hit.
pub(crate) enum Injected {
    /// Answer this instead of handling the request (a broken connection or a bare status).
    Answer(axum::response::Response),
    /// Refuse with this code (IM number or API string) in the API's own envelope.
    Code(serde_json::Value, String),
    /// Only a delay: handle the request as usual.
    Nothing,
    /// Handle the request as usual, then answer with [`dropped_answer`] instead.
    EffectThenDrop,
}

/// An answer whose body breaks off: the client sees the connection drop mid-answer.
pub(crate) fn dropped_answer() -> axum::response::Response {
    let stream = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("connection dropped"))
    });
    axum::response::Response::new(axum::body::Body::from_stream(stream))
}

impl Fault {
    /// Waits the fault's delay, then says what to answer.
    pub(crate) async fn inject(self) -> Injected {
        use axum::response::IntoResponse;
        if self.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        }
        if self.drop {
            return Injected::Answer(dropped_answer());
        }
        if self.effect_then_drop {
            return Injected::EffectThenDrop;
        }
        if let Some(status) = self.http_status {
            let status = axum::http::StatusCode::from_u16(status)
                .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
            return Injected::Answer((status, "<html>injected fault</html>").into_response());
        }
        match self.error {
            Some(code) => Injected::Code(
                code,
                self.message.unwrap_or_else(|| "injected fault".into()),
            ),
            None => Injected::Nothing,
        }
    }
}

pub(crate) struct Inner {
    pub calls: BTreeMap<String, Call>,
    pub tasks: BTreeMap<String, Task>,
    /// StartPublishCdnStream's tasks (the relay to CDN), by TaskId.
    pub publishes: BTreeMap<String, PublishTask>,
    /// The tone each callee "speaks" in a room's mix, by UserId.
    pub voices: HashMap<String, f64>,
    /// Rooms whose ingest tasks' media reaches no one in them (a fault).
    pub muted_rooms: std::collections::BTreeSet<RoomRef>,
    pub behaviours: HashMap<String, Behaviour>,
    pub default_behaviour: Behaviour,
    pub call_callback: Option<(String, Vec<String>)>,
    pub trtc_callback: Option<TrtcCallback>,
    pub faults: Vec<Fault>,
    pub im_seq: u64,
}

pub(crate) struct State {
    pub config: EmulatorConfig,
    inner: Mutex<Inner>,
    pub outbox: Outbox,
    pub api_limiter: governor::DefaultKeyedRateLimiter<String>,
    pub im_limiter: governor::DefaultKeyedRateLimiter<String>,
}

impl State {
    pub(crate) fn new(config: EmulatorConfig) -> Arc<Self> {
        use crate::cloud::http::RateClass;
        Arc::new(Self {
            inner: Mutex::new(Inner {
                calls: BTreeMap::new(),
                tasks: BTreeMap::new(),
                publishes: BTreeMap::new(),
                voices: HashMap::new(),
                muted_rooms: Default::default(),
                behaviours: config.behaviours.clone(),
                default_behaviour: config.default_behaviour.clone(),
                call_callback: None,
                trtc_callback: config.trtc_callback.clone(),
                faults: Vec::new(),
                im_seq: 0,
            }),
            outbox: Outbox::new(config.sdkappid),
            api_limiter: governor::RateLimiter::keyed(RateClass::IngestAction.quota()),
            im_limiter: governor::RateLimiter::keyed(RateClass::CallCommand.quota()),
            config,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("emulator state lock")
    }

    pub(crate) fn set_behaviour(&self, user: &str, behaviour: Behaviour) {
        self.lock().behaviours.insert(user.to_owned(), behaviour);
    }

    pub(crate) fn set_voice(&self, user: &str, tone_hz: Option<f64>) {
        let mut inner = self.lock();
        match tone_hz {
            Some(hz) => inner.voices.insert(user.to_owned(), hz),
            None => inner.voices.remove(user),
        };
    }

    pub(crate) fn set_room_muted(&self, room: &RoomRef, muted: bool) {
        let mut inner = self.lock();
        if muted {
            inner.muted_rooms.insert(room.clone());
        } else {
            inner.muted_rooms.remove(room);
        }
    }

    pub(crate) fn set_trtc_callback(&self, callback: Option<TrtcCallback>) {
        self.lock().trtc_callback = callback;
    }

    /// Takes the first fault that applies to `target`, if any.
    pub(crate) fn take_fault(&self, target: &str) -> Option<Fault> {
        let mut inner = self.lock();
        let index = inner
            .faults
            .iter()
            .position(|f| f.count > 0 && (f.target == target || f.target == "*"))?;
        let fault = inner.faults[index].clone();
        inner.faults[index].count -= 1;
        if inner.faults[index].count == 0 {
            inner.faults.remove(index);
        }
        Some(fault)
    }

    pub(crate) fn next_im_request_id(&self) -> String {
        let seq = {
            let mut inner = self.lock();
            inner.im_seq += 1;
            inner.im_seq
        };
        format!("Id-{}-O-Seq-{seq}", uuid::Uuid::new_v4().simple())
    }

    /// Ends a publish (`stopped` by the API, `killed` by a fault); false when it had ended.
    pub(crate) fn end_publish(&self, id: &str, how: &'static str) -> Option<bool> {
        let publisher = {
            let mut inner = self.lock();
            let task = inner.publishes.get_mut(id)?;
            let by_itself = task.publisher.as_ref().is_some_and(|p| p.state().ended());
            if task.ended.is_some() || by_itself {
                return Some(false);
            }
            task.ended = Some(how);
            task.publisher.take()
        };
        if let Some(p) = publisher {
            tokio::spawn(p.stop());
        }
        tracing::info!(task_id = %id, how, "emulated CDN publish ended");
        Some(true)
    }

    pub(crate) async fn stop_all_tasks(&self) {
        let publishers: Vec<_> = {
            let mut inner = self.lock();
            inner
                .publishes
                .values_mut()
                .filter_map(|p| p.publisher.take())
                .collect()
        };
        for publisher in publishers {
            publisher.stop().await;
        }
        let runners: Vec<_> = {
            let mut inner = self.lock();
            inner
                .tasks
                .values_mut()
                .filter_map(|t| {
                    let _ = t.commands.send(TaskCommand::Stop);
                    t.runner.take()
                })
                .collect()
        };
        for runner in runners {
            let _ = tokio::time::timeout(Duration::from_secs(5), runner).await;
        }
    }

    pub(crate) fn abort_all_tasks(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            for task in inner.tasks.values_mut() {
                let _ = task.commands.send(TaskCommand::Stop);
            }
            for publish in inner.publishes.values_mut() {
                publish.publisher.take();
            }
        }
    }

    /// Callees who answered and are still in a live call in `room`.
    pub(crate) fn callees_in_room(inner: &Inner, room: &RoomRef) -> Vec<String> {
        inner
            .calls
            .values()
            .filter(|c| c.result.is_none() && c.room.as_ref() == Some(room))
            .flat_map(|c| {
                c.callees
                    .iter()
                    .filter(|m| m.state == MemberState::Calling)
                    .map(|m| m.user.clone())
            })
            .collect()
    }
}
