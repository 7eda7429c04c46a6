//! The soak's workload: what each session asks for, what its callee does, the faults, and
//! what was admitted or refused.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::common;
use super::common::processes::TOKEN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Callee {
    Answers,
    HangsUp,
    Rejects,
    NeverAnswers,
}

impl Callee {
    fn behaviour(self) -> Value {
        match self {
            Callee::Answers => json!({"action": "answer", "after_ms": 300}),
            Callee::HangsUp => {
                json!({"action": "answer", "after_ms": 300, "hangup_after_ms": 1500})
            }
            Callee::Rejects => json!({"action": "reject", "after_ms": 300}),
            Callee::NeverAnswers => json!({"action": "never_answer"}),
        }
    }

    /// The results a session to this callee may end with, whatever faults it met.
    pub(crate) fn agrees(self, result: &str) -> bool {
        let faults = ["failed", "recovered", "node_lost", "stopped", "refused"];
        faults.contains(&result)
            || match self {
                Callee::Answers => result == "completed",
                Callee::HangsUp => result == "hung_up" || result == "completed",
                Callee::Rejects => result == "rejected",
                Callee::NeverAnswers => result == "not_answered",
            }
    }
}

/// What one admitted session was asked to do.
pub(crate) struct Issued {
    pub(crate) node: usize,
    pub(crate) room: String,
    pub(crate) callee: Callee,
}

/// The workload of one phase: its media, its relay, and what it asked for.
pub(crate) struct Soak {
    pub(crate) control: String,
    pub(crate) http: reqwest::Client,
    pub(crate) media: tempfile::TempDir,
    pub(crate) site: String,
    pub(crate) issued: HashMap<String, Issued>,
    pub(crate) refused: HashMap<u16, usize>,
    pub(crate) n: usize,
    /// Whether the cloud's answer to a start may be dropped after it took effect.
    pub(crate) lost_answers: bool,
    /// Each refusal's reason, with the first session it came for.
    pub(crate) reasons: HashMap<String, usize>,
    /// Sessions admitted through the relay so far.
    pub(crate) relayed: usize,
    /// The RTMP relay relay sessions push to, and the cloud pulls from.
    pub(crate) relay: common::Nginx,
}

impl Soak {
    pub(crate) async fn new(control: String) -> Self {
        let media = tempfile::tempdir().unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/media-samples/tone-440hz-2s.ogg"
            ),
            media.path().join("tone.ogg"),
        )
        .unwrap();
        common::Clip {
            seconds: 3,
            width: 320,
            height: 240,
            fps: 15,
            tone_hz: 440,
        }
        .write(media.path(), "clip.mp4");
        let site = common::serve_dir(media.path()).await;
        Self {
            control,
            http: reqwest::Client::new(),
            media,
            site,
            issued: HashMap::new(),
            refused: HashMap::new(),
            n: 0,
            lost_answers: false,
            reasons: HashMap::new(),
            relayed: 0,
            relay: common::Nginx::start(),
        }
    }

    /// The n-th session of the mix.
    fn request(&self, n: usize, callee: &str, room: &str) -> Value {
        let file = |name: &str| self.media.path().join(name).display().to_string();
        let relay = format!("rtmp://127.0.0.1:{}/live/{{stream}}", self.relay.port);
        let (media, media_type, extra) = match n % 7 {
            0 => (
                "test:black+tone=440".to_owned(),
                "audio",
                json!({"max_duration_secs": 4}),
            ),
            1 => (
                "test:ball+tone=330".to_owned(),
                "video",
                json!({"profile": "360p", "max_duration_secs": 4}),
            ),
            2 => (file("tone.ogg"), "audio", json!({})),
            3 => (file("clip.mp4"), "video", json!({"profile": "360p"})),
            4 => (
                file("clip.mp4"),
                "video",
                json!({"profile": "360p", "live": true, "max_duration_secs": 4}),
            ),
            5 => (
                format!("{}clip.mp4", self.site),
                "audio",
                json!({"direct": "auto"}),
            ),
            // Through an RTMP relay the cloud pulls from (the emulator's RTMP pulls).
            _ => (
                "test:black+tone=550".to_owned(),
                "audio",
                json!({"max_duration_secs": 4, "relay": {"push": relay, "play": relay}}),
            ),
        };
        let mut request = json!({"to": [callee], "media": media, "room": room,
            "media_type": media_type, "ring_timeout_secs": 10});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        request
    }

    /// Sets a callee's behaviour, and asks `api` (node `node`) for a session to it.
    pub(crate) async fn issue(&mut self, node: usize, api: &str) {
        let n = self.n;
        self.n += 1;
        let callee = match n % 10 {
            0..=5 => Callee::Answers,
            6 | 7 => Callee::HangsUp,
            8 => Callee::Rejects,
            _ => Callee::NeverAnswers,
        };
        let user = format!("u{n}");
        let room = format!("soak-{n}");
        let _ = self
            .http
            .post(format!("{}/users/{user}/behaviour", self.control))
            .header("content-type", "application/json")
            .body(callee.behaviour().to_string())
            .send()
            .await;
        let answer = self
            .http
            .post(format!("{api}/v1/sessions"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(self.request(n, &user, &room).to_string())
            .timeout(Duration::from_secs(40))
            .send()
            .await;
        let Ok(answer) = answer else {
            *self.refused.entry(0).or_default() += 1;
            return;
        };
        let status = answer.status().as_u16();
        let body: Value =
            serde_json::from_slice(&answer.bytes().await.unwrap_or_default()).unwrap_or_default();
        match (status, body["id"].as_str()) {
            (201, Some(id)) => {
                if n % 7 == 6 {
                    self.relayed += 1;
                }
                self.issued
                    .insert(id.to_owned(), Issued { node, room, callee });
            }
            _ => {
                assert!(
                    body["error"].is_string() || status == 0,
                    "a refusal without a reason: {status} {body}"
                );
                *self.refused.entry(status).or_default() += 1;
                let why = body["error"].as_str().unwrap_or_default();
                self.reasons
                    .entry(format!(
                        "{status} {}",
                        why.chars().take(120).collect::<String>()
                    ))
                    .or_insert(n);
            }
        }
    }

    /// A fault on one cloud request now and then: the kinds the soak of issue 23 used. A
    /// start carried out whose answer is dropped only where the webhooks reach the node
    /// that lost the answer (`lost_answers`): one node.
    pub(crate) async fn fault(&self, k: usize) {
        let faults = [
            json!({"target": "get_call_info", "error": 60004, "count": 2}),
            json!({"target": "DescribeStreamIngest", "error": "InternalError.DBError", "count": 2}),
            json!({"target": "start_call_by_robot", "error": 60019, "count": 1}),
            json!({"target": "StartStreamIngest", "drop": true, "count": 1}),
            json!({"target": "end_call", "delay_ms": 3000, "count": 1}),
            json!({"target": "StopStreamIngest", "http_status": 502, "count": 1}),
            json!({"target": "start_call_by_robot", "effect_then_drop": true, "count": 1}),
            json!({"target": "StartStreamIngest", "effect_then_drop": true, "count": 1}),
        ];
        let kinds = if self.lost_answers {
            faults.len()
        } else {
            faults.len() - 2
        };
        let _ = self
            .http
            .post(format!("{}/faults", self.control))
            .header("content-type", "application/json")
            .body(faults[k % kinds].to_string())
            .send()
            .await;
    }

    pub(crate) async fn list(&self, what: &str) -> Vec<Value> {
        common::emulator_list_at(&self.control, what).await
    }
}
