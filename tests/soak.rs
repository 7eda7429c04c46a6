//! `make soak`: a bounded soak of real processes — `callfeed emulator` as the cloud,
//! `callfeed serve` nodes — under a mixed workload with faults on the cloud's answers and
//! `kill -9`s, then a check of everything a user relies on. Not part of `make test`: it runs
//! for `SOAK_SECS` (default 600), half on one node with its SQLite journal, half on a
//! cluster of two nodes sharing a PostgreSQL.
//!
//! The mix: live audio and 360p video from test sources, announcement files (audio and a
//! video clip), a file streamed live, a URL handed to the cloud; callees that answer, hang
//! up, reject or never answer; every few seconds a fault on one cloud request (an error, a
//! delay, a dropped connection, a start carried out whose answer is dropped). It asserts:
//! every admitted session ended with a result, and rang unless it was refused with a reason
//! before ringing; every result agrees with what the callee did in the emulator; nothing is
//! left in the cloud (no call up, no task running); a node's RSS, threads and descriptors are
//! flat after warm-up. It prints those figures.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::processes::{self, CALLBACK_KEY, TOKEN};
use serde_json::{Value, json};
use tokio::process::Child;

const CALLFEED: &str = env!("CARGO_BIN_EXE_callfeed");
/// Sessions issued per second, and at most this many running at once.
const RATE: f64 = 2.0;
const AT_ONCE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callee {
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
    fn agrees(self, result: &str) -> bool {
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
struct Issued {
    node: usize,
    room: String,
    callee: Callee,
}

/// What the soak sees of a process: (seconds into the phase, RSS kB, threads, descriptors).
#[derive(Default)]
struct Samples(Vec<(f64, u64, u64, u64)>);

impl Samples {
    fn take(&mut self, at: f64, pid: u32) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        self.0.push((at, field("VmRSS:"), field("Threads:"), fds));
    }

    /// Averages over the second and the last third of the samples after `warm_up`: (RSS MB,
    /// threads, fds) each, early and late.
    fn trend(&self, warm_up: f64) -> Option<[(f64, f64); 3]> {
        let steady: Vec<_> = self.0.iter().filter(|s| s.0 >= warm_up).collect();
        if steady.len() < 6 {
            return None;
        }
        let third = steady.len() / 3;
        let mean = |part: &[&(f64, u64, u64, u64)], f: fn(&(f64, u64, u64, u64)) -> u64| {
            part.iter().map(|s| f(s) as f64).sum::<f64>() / part.len() as f64
        };
        let (early, late) = (&steady[third..2 * third], &steady[steady.len() - third..]);
        Some([
            (mean(early, |s| s.1) / 1024.0, mean(late, |s| s.1) / 1024.0),
            (mean(early, |s| s.2), mean(late, |s| s.2)),
            (mean(early, |s| s.3), mean(late, |s| s.3)),
        ])
    }
}

struct Soak {
    control: String,
    http: reqwest::Client,
    media: tempfile::TempDir,
    site: String,
    issued: HashMap<String, Issued>,
    refused: HashMap<u16, usize>,
    n: usize,
    /// Whether the cloud's answer to a start may be dropped after it took effect.
    lost_answers: bool,
    /// Each refusal's reason, with the first session it came for.
    reasons: HashMap<String, usize>,
}

impl Soak {
    async fn new(control: String) -> Self {
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
        }
    }

    /// The n-th session of the mix.
    fn request(&self, n: usize, callee: &str, room: &str) -> Value {
        let file = |name: &str| self.media.path().join(name).display().to_string();
        let (media, media_type, extra) = match n % 6 {
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
            _ => (
                format!("{}clip.mp4", self.site),
                "audio",
                json!({"direct": "auto"}),
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
    async fn issue(&mut self, node: usize, api: &str) {
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
    async fn fault(&self, k: usize) {
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

    async fn list(&self, what: &str) -> Vec<Value> {
        let body = self
            .http
            .get(format!("{}/{what}", self.control))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        v[what].as_array().cloned().unwrap_or_default()
    }
}

/// Issues the mix at [`RATE`] through `apis` (round robin) for `length`, with a fault every
/// 5 s; `pids` are sampled every 2 s, timed from `clock`.
async fn drive(
    soak: &mut Soak,
    apis: &[String],
    length: Duration,
    pids: &[u32],
    samples: &mut HashMap<u32, Samples>,
    clock: Instant,
) {
    let started = Instant::now();
    let mut next_fault = Duration::from_secs(5);
    let mut next_sample = Duration::ZERO;
    let mut issued = 0usize;
    while started.elapsed() < length {
        let elapsed = started.elapsed();
        if elapsed >= next_sample {
            next_sample += Duration::from_secs(2);
            for pid in pids {
                samples
                    .entry(*pid)
                    .or_default()
                    .take(clock.elapsed().as_secs_f64(), *pid);
            }
        }
        if elapsed >= next_fault {
            next_fault += Duration::from_secs(5);
            soak.fault(soak.n).await;
        }
        let due = Duration::from_secs_f64(issued as f64 / RATE);
        if elapsed >= due && running(soak, apis).await < AT_ONCE {
            let node = soak.n % apis.len();
            soak.issue(node, &apis[node]).await;
            issued += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sessions running on the nodes now.
async fn running(soak: &Soak, apis: &[String]) -> usize {
    let mut n = 0;
    for api in apis {
        let Ok(r) = soak
            .http
            .get(format!("{api}/v1/sessions"))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        else {
            continue;
        };
        let v: Value =
            serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
        n += v["sessions"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["report"].is_null()).count());
    }
    n
}

/// Waits until the cloud has nothing up, and every admitted session has a result in `store`.
async fn settle(soak: &Soak, store: &callfeed::store::Store) -> HashMap<String, (String, String)> {
    use callfeed::store::SessionStore;
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let mut results = HashMap::new();
        for id in soak.issued.keys() {
            if let Ok(Some(r)) = store.result_of(id).await {
                results.insert(id.clone(), r);
            }
        }
        let calls_up = soak
            .list("calls")
            .await
            .iter()
            .filter(|c| c["state"] != "ended")
            .count();
        let tasks_up = soak
            .list("tasks")
            .await
            .iter()
            .filter(|t| t["status"] != "NotExist")
            .count();
        if results.len() == soak.issued.len() && calls_up == 0 && tasks_up == 0 {
            return results;
        }
        if Instant::now() >= deadline {
            let open: Vec<_> = soak
                .issued
                .iter()
                .filter(|(id, _)| !results.contains_key(*id))
                .map(|(id, i)| format!("{id} room {} node {} {:?}", i.room, i.node, i.callee))
                .collect();
            let up: Vec<_> = soak
                .list("calls")
                .await
                .into_iter()
                .filter(|c| c["state"] != "ended")
                .map(|c| format!("{} {} {}", c["room_id"], c["state"], c["call_id"]))
                .collect();
            panic!(
                "not settled: {} of {} sessions have a result, {calls_up} calls up, {tasks_up} tasks running\nopen: {open:#?}\ncalls up: {up:#?}",
                results.len(),
                soak.issued.len()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The checks, and the figures printed.
async fn verify(
    phase: &str,
    soak: &Soak,
    results: &HashMap<String, (String, String)>,
    samples: &HashMap<u32, Samples>,
    warm_up: f64,
) {
    let calls = soak.list("calls").await;
    let mut by_result: HashMap<&str, usize> = HashMap::new();
    for (id, issued) in &soak.issued {
        let (result, note) = &results[id];
        *by_result.entry(result.as_str()).or_default() += 1;
        let rang = calls.iter().any(|c| c["room_id"] == issued.room.as_str());
        assert!(
            rang || (matches!(
                result.as_str(),
                "failed" | "refused" | "recovered" | "node_lost" | "stopped"
            )),
            "{phase}: session {id} (node {}) is {result} but never rang: {note}",
            issued.node
        );
        assert!(
            rang || !note.is_empty() || result != "failed",
            "{phase}: session {id} failed before ringing without a reason"
        );
        assert!(
            issued.callee.agrees(result),
            "{phase}: session {id} to a callee that {:?} ended {result}: {note}",
            issued.callee
        );
        if result == "completed" {
            let heard = calls
                .iter()
                .filter(|c| c["room_id"] == issued.room.as_str())
                .flat_map(|c| c["media"].as_array().cloned().unwrap_or_default())
                .any(|t| t["audio_ms"].as_u64() > Some(0) || t["video_frames"].as_u64() > Some(0));
            assert!(
                heard,
                "{phase}: session {id} completed but its room got nothing"
            );
        }
    }
    let mut rooms: HashMap<&str, usize> = HashMap::new();
    for c in &calls {
        *rooms
            .entry(c["room_id"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    assert!(
        rooms.values().all(|n| *n == 1),
        "{phase}: a room with two calls: {:?}",
        rooms.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    println!(
        "{phase}: {} sessions admitted, refused {:?}; results {by_result:?}; {} calls, nothing left in the cloud",
        soak.issued.len(),
        soak.refused,
        calls.len()
    );
    for (why, first) in &soak.reasons {
        println!("{phase}: refused (first: session {first}): {why}");
    }
    for (pid, s) in samples {
        let Some([rss, threads, fds]) = s.trend(warm_up) else {
            continue;
        };
        println!(
            "{phase}: process {pid}: RSS {:.0} → {:.0} MB, threads {:.0} → {:.0}, fds {:.0} → {:.0} (after warm-up, early third → last third)",
            rss.0, rss.1, threads.0, threads.1, fds.0, fds.1
        );
        assert!(
            rss.1 <= rss.0 + (rss.0 * 0.15).max(25.0),
            "{phase}: process {pid}'s memory grows: {:.0} → {:.0} MB",
            rss.0,
            rss.1
        );
        assert!(
            threads.1 <= threads.0 + 8.0,
            "{phase}: process {pid}'s threads grow"
        );
        assert!(
            fds.1 <= fds.0 + 20.0,
            "{phase}: process {pid}'s descriptors grow"
        );
    }
}

fn soak_length() -> Duration {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs.max(60))
}

fn kill9(child: &mut Child) {
    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();
}

/// The node's environment: the emulator's endpoints, the token, the webhook key.
fn node_env(endpoints: &Value) -> Vec<(&'static str, String)> {
    vec![
        (
            "CALLFEED_IM_ENDPOINT",
            endpoints["im_endpoint"].as_str().unwrap().to_owned(),
        ),
        (
            "CALLFEED_TRTC_ENDPOINT",
            endpoints["trtc_endpoint"].as_str().unwrap().to_owned(),
        ),
        ("CALLFEED_API_TOKEN", TOKEN.to_owned()),
        ("CALLFEED_CALLBACK_KEY", CALLBACK_KEY.to_owned()),
    ]
}

/// Points the cloud's webhooks (call engine and ingest) at the node at `api`, as an operator
/// configures them once for an account.
async fn point_webhooks(control: &str, endpoints: &Value, api: &str) {
    let mut cmd = tokio::process::Command::new(CALLFEED);
    processes::account(&mut cmd)
        .args([
            "api",
            "set-callback",
            "--url",
            &format!("{api}/webhooks/call"),
        ])
        .env(
            "CALLFEED_IM_ENDPOINT",
            endpoints["im_endpoint"].as_str().unwrap(),
        )
        .env(
            "CALLFEED_TRTC_ENDPOINT",
            endpoints["trtc_endpoint"].as_str().unwrap(),
        );
    let out = cmd
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "set-callback: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let set = reqwest::Client::new()
        .post(format!("{control}/webhooks/trtc"))
        .header("content-type", "application/json")
        .body(json!({"url": format!("{api}/webhooks/trtc"), "key": CALLBACK_KEY}).to_string())
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
}

async fn start_node(args: &[String], endpoints: &Value) -> (Child, String) {
    let env = node_env(endpoints);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (child, ready) = processes::start(CALLFEED, &args, &env).await;
    (child, ready["api"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of minutes: `make soak`"]
async fn soak() {
    let length = soak_length();
    println!(
        "soak: {} s, half on one node, half on a cluster of two",
        length.as_secs()
    );
    one_node(length / 2).await;
    cluster(length / 2).await;
}

async fn one_node(length: Duration) {
    let (_emulator, endpoints) =
        processes::start(CALLFEED, &["emulator", "--listen", "127.0.0.1:0"], &[]).await;
    let control = endpoints["control"]
        .as_str()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let mut soak = Soak::new(control).await;
    soak.lost_answers = true;
    let state = tempfile::tempdir().unwrap();
    let journal = state.path().join("journal.sqlite");
    let args: Vec<String> = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--allow-url-host",
        "127.0.0.1",
        "--keep-ended",
        "10",
        "--media-root",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        soak.media.path().display().to_string(),
        "--journal".into(),
        journal.display().to_string(),
    ])
    .collect();
    let clock = Instant::now();
    let mut samples = HashMap::new();
    let (mut first, api) = start_node(&args, &endpoints).await;
    point_webhooks(&soak.control, &endpoints, &api).await;
    let pid = first.id().unwrap();
    drive(
        &mut soak,
        &[api],
        length.mul_f64(0.4),
        &[pid],
        &mut samples,
        clock,
    )
    .await;
    // kill -9 mid-load; the next start stops what it left in the cloud.
    kill9(&mut first);
    let (mut second, api) = start_node(&args, &endpoints).await;
    point_webhooks(&soak.control, &endpoints, &api).await;
    let pid = second.id().unwrap();
    let mut after = HashMap::new();
    drive(
        &mut soak,
        &[api],
        length.mul_f64(0.6),
        &[pid],
        &mut after,
        clock,
    )
    .await;
    let store = callfeed::store::Store::open(&journal).unwrap();
    let results = settle(&soak, &store).await;
    // The restarted node's own figures, after its warm-up.
    let warm_up = clock.elapsed().as_secs_f64() - length.as_secs_f64() * 0.4;
    verify("one node", &soak, &results, &after, warm_up).await;
    kill9(&mut second);
}

async fn cluster(length: Duration) {
    let cloud = processes::Cloud::start(CALLFEED).await;
    let mut soak = Soak::new(cloud.control.clone()).await;
    let media_root = soak.media.path().display().to_string();
    let extra = [
        "--allow-url-host",
        "127.0.0.1",
        "--keep-ended",
        "10",
        "--no-webhooks",
        "--media-root",
        media_root.as_str(),
    ];
    let node = || processes::node(CALLFEED, &cloud.store, &cloud.endpoints, &extra);
    let clock = Instant::now();
    let (mut a, api_a) = node().await;
    let (b, api_b) = node().await;
    let b_pid = b.id().unwrap();
    let mut samples = HashMap::new();
    let apis = [api_a, api_b.clone()];
    drive(
        &mut soak,
        &apis,
        length.mul_f64(0.4),
        &[b_pid],
        &mut samples,
        clock,
    )
    .await;
    // A is killed: B takes its sessions over; A comes back as a new node.
    kill9(&mut a);
    drive(
        &mut soak,
        std::slice::from_ref(&api_b),
        length.mul_f64(0.2),
        &[b_pid],
        &mut samples,
        clock,
    )
    .await;
    let (mut a, api_a) = node().await;
    drive(
        &mut soak,
        &[api_a, api_b],
        length.mul_f64(0.4),
        &[b_pid],
        &mut samples,
        clock,
    )
    .await;
    let store = callfeed::store::Store::connect(&cloud.store).await.unwrap();
    let results = settle(&soak, &store).await;
    verify(
        "cluster",
        &soak,
        &results,
        &samples,
        length.as_secs_f64() * 0.3,
    )
    .await;
    kill9(&mut a);
    drop(b);
}
