//! The emulator as a cloud: callfeed's own client against it for every command and action,
//! the documented error paths, webhooks, callee scripts, fault injection, and what the room
//! observer saw in each room. This file is the harness; `end_to_end` drives every command and
//! action, `rooms` keeps rooms apart, `faults` holds callee scripts and injected faults.

use std::time::Duration;

use crate::common::*;
use callfeed::cloud::call::{
    CallClient, GetRecordByFilter, MediaType, SetCallback, StartCallByRobot,
};
use callfeed::cloud::http::{CloudError, HttpSettings};
use callfeed::cloud::ingest::{IngestClient, IngestStatus, StartStreamIngest, UpdateStreamIngest};
use callfeed::cloud::webhook::{
    CallWebhook, IngestEvent, MemberAction, TrtcWebhook, verify_trtc_sign,
};
use callfeed::cloud::{RoomRef, UserId};
use callfeed::emulator::{Behaviour, Emulator, EmulatorConfig, Pace, TrtcCallback};
use serde_json::{Value, json};

const CALLBACK_KEY: &str = "123654";

fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        pace: Pace::Fast,
        default_behaviour: Behaviour::Answer {
            after_ms: 100,
            hangup_after_ms: None,
        },
        record_delay: Duration::from_millis(300),
        ..test_emulator_config()
    }
}

struct Cloud {
    emulator: Emulator,
    calls: CallClient,
    ingest: IngestClient,
    control: String,
    http: reqwest::Client,
}

fn settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        rate_limits: true,
    }
}

async fn cloud_with(config: EmulatorConfig, http: HttpSettings) -> Cloud {
    let emulator = Emulator::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("{}/", emulator.endpoints().im_endpoint);
    let callfeed::session::CloudClients { calls, ingest } = test_clients(&base, APP_KEY, http);
    let control = emulator.endpoints().control;
    Cloud {
        emulator,
        calls,
        ingest,
        control,
        http: reqwest::Client::new(),
    }
}

async fn cloud() -> Cloud {
    cloud_with(emulator_config(), settings()).await
}

impl Cloud {
    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.control))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::StatusCode {
        self.http
            .post(format!("{}{path}", self.control))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Polls the control API until `done` holds, or panics at the deadline.
    async fn until(
        &self,
        path: &str,
        what: &str,
        deadline: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = std::time::Instant::now();
        loop {
            let v = self.get(path).await;
            if done(&v) {
                return v;
            }
            assert!(
                started.elapsed() < deadline,
                "timed out waiting for {what}: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn user(s: &str) -> UserId {
    UserId::new("test", s).unwrap()
}

fn start_call(to: &str, room: RoomRef) -> StartCallByRobot {
    StartCallByRobot {
        robot: user("robot"),
        callees: vec![user(to)],
        timeout_ms: 10_000,
        media_type: MediaType::Video,
        room: Some(room),
        user_data: None,
        offline_push: None,
    }
}

fn task_path(task_id: &str) -> String {
    format!("/tasks/{}", task_id.replace('+', "%2B"))
}

fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= expected * tolerance
}

mod end_to_end;
mod faults;
mod publish;
mod rooms;
