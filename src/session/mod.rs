//! Sessions: the call, the room and the stream as one lifecycle.
//!
//! `state` is the pure state machine; `driver` is the one task per session that talks to
//! the cloud (through [`CloudOps`]) and the media engine, feeds the machine what happened and
//! carries out its actions; `journal` records what we started so nothing is left running;
//! `change` is what a running session may be asked to change (a leaf).

pub mod change;
pub mod driver;
mod media;
pub mod monitor_spec;
mod report;
mod request;
pub mod room_watch;
mod run;
mod settings;
pub mod state;
pub mod teardown;

use std::future::Future;
use std::time::Duration;

use crate::cloud::RoomRef;
use crate::cloud::call::{CallClient, StartCallByRobot};
use crate::cloud::http::CloudError;
use crate::cloud::ingest::{IngestClient, IngestStatus, StartStreamIngest, UpdateStreamIngest};
use crate::cloud::publish_cdn::StartPublishCdnStream;

pub use request::{MAX_DURATION_SECS, RequestError, SessionRequest, SessionSpec, default_profile};

/// Shares the cloud's documented request rates between every session of a process: each
/// session polls less often as more run, so together they never need more than half of a
/// rate limit, and the other half stays for starts, stops and webhook-driven looks.
#[derive(Debug, Default)]
pub struct PollBudget {
    active: std::sync::atomic::AtomicUsize,
}

/// A running session's place in the [`PollBudget`]; leaving frees it.
#[derive(Debug)]
pub struct PollSeat(std::sync::Arc<PollBudget>);

impl Drop for PollSeat {
    fn drop(&mut self) {
        self.0
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PollBudget {
    pub fn join(self: &std::sync::Arc<Self>) -> PollSeat {
        self.active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PollSeat(self.clone())
    }

    /// How often each session may poll an operation limited to `per_second` requests.
    pub fn interval(&self, base: Duration, per_second: u32) -> Duration {
        let sessions = self.active.load(std::sync::atomic::Ordering::Relaxed) as u64;
        let share = Duration::from_millis(sessions * 2000 / u64::from(per_second.max(1)));
        base.max(share)
    }
}

/// What a callee's phone shows, from `get_call_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// Still ringing or in progress; `answered` once any callee is in the call.
    Live { answered: bool },
    /// The call is over.
    Gone,
}

/// The cloud operations a session needs. The real clients implement it; tests may fake it.
pub trait CloudOps: Send + Sync {
    fn start_call(
        &self,
        req: &StartCallByRobot,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn call_status(
        &self,
        call_id: &str,
        robot: &str,
    ) -> impl Future<Output = Result<CallStatus, CloudError>> + Send;
    fn end_call(&self, call_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
    fn start_ingest(
        &self,
        req: &StartStreamIngest,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn task_alive(&self, task_id: &str) -> impl Future<Output = Result<bool, CloudError>> + Send;
    fn stop_ingest(&self, task_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Changes a running task's URL, volume or pause; `false` when the cloud has no such
    /// task (any more).
    fn update_ingest(
        &self,
        req: &UpdateStreamIngest,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;
    /// Has the cloud publish a room to RTMP (the room monitor); the task's id.
    fn start_publish(
        &self,
        req: &StartPublishCdnStream,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Stops a publish; a task the cloud no longer has counts as stopped.
    fn stop_publish(&self, task_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// The real cloud: the call engine and TRTC clients.
#[derive(Debug, Clone)]
pub struct CloudClients {
    pub calls: CallClient,
    pub ingest: IngestClient,
}

impl CloudOps for CloudClients {
    async fn start_call(&self, req: &StartCallByRobot) -> Result<String, CloudError> {
        Ok(self.calls.start_call_by_robot(req).await?.response.call_id)
    }

    async fn call_status(&self, call_id: &str, robot: &str) -> Result<CallStatus, CloudError> {
        match self.calls.get_call_info(call_id).await {
            Ok(r) => {
                let answered = r.response.answered(robot).next().is_some();
                let anyone = r.response.users.iter().any(|u| u.user != robot);
                Ok(if anyone {
                    CallStatus::Live { answered }
                } else {
                    CallStatus::Gone
                })
            }
            Err(CloudError::Im { code: 101004, .. }) => Ok(CallStatus::Gone),
            Err(e) => Err(e),
        }
    }

    async fn end_call(&self, call_id: &str) -> Result<(), CloudError> {
        match self.calls.end_call(call_id).await {
            Ok(_) | Err(CloudError::Im { code: 101004, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn start_ingest(&self, req: &StartStreamIngest) -> Result<String, CloudError> {
        Ok(self.ingest.start(req).await?.response.task_id)
    }

    async fn task_alive(&self, task_id: &str) -> Result<bool, CloudError> {
        match self.ingest.describe(task_id).await?.response.status {
            IngestStatus::InProgress => Ok(true),
            IngestStatus::NotExist => Ok(false),
            // Only the cloud's own word that the task is gone counts as gone.
            IngestStatus::Other(status) => Err(CloudError::Decode {
                endpoint: "DescribeStreamIngest".into(),
                expected: "a task status of InProgress or NotExist",
                reason: format!("status `{status}`"),
            }),
        }
    }

    async fn stop_ingest(&self, task_id: &str) -> Result<(), CloudError> {
        match self.ingest.stop(task_id).await {
            Ok(_) => Ok(()),
            // Already over is what we wanted.
            Err(CloudError::Api { code, .. })
                if code == "FailedOperation.TaskFinished" || code == "InvalidParameter.TaskId" =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn start_publish(&self, req: &StartPublishCdnStream) -> Result<String, CloudError> {
        Ok(self.ingest.start_publish_cdn(req).await?.response.task_id)
    }

    async fn stop_publish(&self, task_id: &str) -> Result<(), CloudError> {
        match self.ingest.stop_publish_cdn(task_id).await {
            Ok(_) => Ok(()),
            Err(CloudError::Api { code, .. })
                if crate::cloud::publish_cdn::already_stopped(&code) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn update_ingest(&self, req: &UpdateStreamIngest) -> Result<bool, CloudError> {
        match self.ingest.update(req).await?.response.status {
            IngestStatus::InProgress => Ok(true),
            IngestStatus::NotExist => Ok(false),
            IngestStatus::Other(status) => Err(CloudError::Decode {
                endpoint: "UpdateStreamIngest".into(),
                expected: "a task status of InProgress or NotExist",
                reason: format!("status `{status}`"),
            }),
        }
    }
}

/// Journal key of a room: its kind and id.
pub fn room_key(room: &RoomRef) -> String {
    format!("{}:{}", room.kind(), room.id())
}
