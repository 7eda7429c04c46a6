//! A cluster of real `callfeed serve` processes on one real PostgreSQL, with a `callfeed
//! emulator` process as the cloud: what a dead node leaves in the cloud is stopped by the
//! others within seconds.

mod feeds;
mod second_audit;

use std::time::{Duration, Instant};

use crate::common::emulator_list_at;
use crate::common::processes::{self, CALLBACK_KEY, Cloud, TOKEN, account};
use crate::common::serve::{get_json, metrics, until_ended};
use callfeed::store::{SessionStore, Store};
use serde_json::Value;
use tokio::process::{Child, Command};

const CALLFEED: &str = env!("CARGO_BIN_EXE_callfeed");

async fn node(store: &str, emulator: &Value) -> (Child, String) {
    processes::node(CALLFEED, store, emulator, &[]).await
}

async fn node_with(store: &str, emulator: &Value, extra: &[&str]) -> (Child, String) {
    processes::node(CALLFEED, store, emulator, extra).await
}

/// What most of these tests run: a tone `to` hears until the session is stopped (or its
/// limit), in `room`.
fn looping_tone(to: &str, room: &str) -> Value {
    serde_json::json!({
        "to": [to], "media": "test:black+tone=440", "room": room,
        "media_type": "audio", "loop_forever": true,
    })
}

/// The same with a limit of `secs`.
fn looping_tone_for(room: &str, secs: u64) -> Value {
    let mut request = looping_tone("jack", room);
    request["max_duration_secs"] = secs.into();
    request
}

/// The emulator's one call is connected and its ingest task runs.
fn in_call(calls: &[Value]) -> bool {
    calls.len() == 1
        && calls[0]["state"] == "connected"
        && calls[0]["media"][0]["status"] == "InProgress"
}

async fn post(api: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{api}/v1/sessions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (
        code,
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default(),
    )
}

async fn get(api: &str, path: &str) -> Value {
    get_json(api, path, TOKEN).await
}

async fn calls(control: &str) -> Vec<Value> {
    emulator_list_at(control, "calls").await
}

/// Polls `done` on the emulator's calls every 100 ms until it holds; how long it took.
async fn until_calls(control: &str, within: Duration, done: impl Fn(&[Value]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let now = calls(control).await;
        if done(&now) {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "timed out: {now:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_call_and_ingest_task_are_stopped_by_another_node_within_seconds() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints, control) = (&cloud.store, &cloud.endpoints, &cloud.control);
    // Each node takes room monitors' pushes: the lost session's publish is stopped too.
    let rtmp = ["--rtmp-listen", "127.0.0.1:0"];
    let (mut a, api_a) = node_with(store, endpoints, &rtmp).await;
    let (_b, api_b) = node_with(store, endpoints, &rtmp).await;
    let mut request = looping_tone("jack", "failover");
    request["monitor"] = true.into();
    let (code, created) = post(&api_a, request.clone()).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // Both nodes are listed, with live leases, from either node.
    let nodes = get(&api_b, "/v1/nodes").await;
    let listed = nodes["nodes"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{nodes:#}");
    assert!(
        listed
            .iter()
            .all(|n| n["live"] == true && n["capacity"].as_u64().unwrap() > 0)
    );
    // Each with where the cloud reaches its streams (its own address here, no --public-url).
    assert!(
        listed.iter().any(|n| n["stream_base"] == api_a.as_str()),
        "{nodes:#}"
    );
    // The room is the cluster's: node B refuses it while A runs it.
    let (code, busy) = post(&api_b, request.clone()).await;
    assert_eq!(code, 409, "{busy}");
    assert_eq!(busy["existing"], id.as_str());
    until_calls(control, Duration::from_secs(30), in_call).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while emulator_list_at(control, "publishes").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the room monitor's publish never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Node A dies at once.
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    let stopped =
        |c: &[Value]| c[0]["state"] == "ended" && c[0]["media"][0]["status"] == "NotExist";
    let took = until_calls(control, Duration::from_secs(8), stopped).await;
    eprintln!("failover: the dead node's call and task stopped {took:?} after the kill");
    let publishes = emulator_list_at(control, "publishes").await;
    assert_eq!(publishes.len(), 1, "{publishes:?}");
    assert_eq!(publishes[0]["state"], "stopped", "{publishes:?}");

    // The record says why, and the room is free again: B takes it.
    let reader = Store::connect(store).await.unwrap();
    let (result, note) = reader.result_of(&id).await.unwrap().expect("finished");
    assert_eq!(result, "node_lost", "{note}");
    // Its last recorded event says so too.
    let events = reader.events_after(&id, 0).await.unwrap();
    let (_, kind, data) = events.last().expect("events");
    assert_eq!(kind, "report");
    assert!(data.contains("node_lost"), "{data}");
    let (code, again) = post(&api_b, request).await;
    assert_eq!(code, 201, "{again}");
    let metrics = metrics(&api_b).await;
    assert!(
        metrics.contains("callfeed_sessions_reaped_total 1"),
        "{metrics}"
    );
    // B rings for its own session; the lost one never got a second call or ingest task.
    until_calls(control, Duration::from_secs(30), |c| c.len() == 2).await;
    let all = calls(control).await;
    let lost: Vec<_> = all.iter().filter(|c| c["state"] == "ended").collect();
    assert_eq!(lost.len(), 1, "{all:#?}");
    assert_eq!(lost[0]["media"].as_array().unwrap().len(), 1, "{all:#?}");
}

fn signal(child: &Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_that_comes_back_after_being_reaped_starts_nothing_again() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints, control) = (&cloud.store, &cloud.endpoints, &cloud.control);
    let (a, api_a) = node(store, endpoints).await;
    let (_b, _api_b) = node(store, endpoints).await;
    let (code, created) = post(&api_a, looping_tone_for("paused", 600)).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    until_calls(control, Duration::from_secs(30), in_call).await;
    // Its task carries a backstop: the cloud ends it a little after the session's own limit
    // even if every record of it were lost.
    assert_eq!(
        calls(control).await[0]["media"][0]["max_duration_minutes"],
        12
    );

    // A freezes (a long GC pause, a stopped VM): B takes the session over.
    signal(&a, "STOP");
    let stopped =
        |c: &[Value]| c[0]["state"] == "ended" && c[0]["media"][0]["status"] == "NotExist";
    until_calls(control, Duration::from_secs(8), stopped).await;
    // A wakes up believing its session runs. Its call and task are gone; whichever it
    // notices first (the ended call, its lease found gone, the fence before a restart), it
    // starts nothing again, and its session ends there.
    signal(&a, "CONT");
    until_ended(&api_a, TOKEN, &id, Duration::from_secs(30)).await;
    let all = calls(control).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(
        all[0]["media"].as_array().unwrap().len(),
        1,
        "no second ingest task: {all:#?}"
    );
    let reader = Store::connect(store).await.unwrap();
    assert_eq!(reader.result_of(&id).await.unwrap().unwrap().0, "node_lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_store_mid_call_reaps_nothing_and_refuses_new_sessions_meanwhile() {
    let cloud = Cloud::start(CALLFEED).await;
    let (pg, store, endpoints, control) =
        (&cloud.pg, &cloud.store, &cloud.endpoints, &cloud.control);
    let (_a, api_a) = node(store, endpoints).await;
    let (_b, api_b) = node(store, endpoints).await;
    let session = |room: &str| looping_tone("jack", room);
    let (code, created) = post(&api_a, session("outage")).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    until_calls(control, Duration::from_secs(30), in_call).await;

    // The store goes away for longer than two leases: every lease in it runs out.
    pg.kill();
    let (code, refused) = post(&api_b, session("during-outage")).await;
    assert_eq!(code, 503, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("session store"),
        "{refused}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.restart();
    // Both nodes find the store again and take sessions again...
    let started = Instant::now();
    loop {
        let (code, _) = post(&api_b, session("after-outage")).await;
        if code == 201 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{code}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and for two more leases nobody takes A's session for a gone node's.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = calls(control).await;
    let outage: Vec<_> = all.iter().filter(|c| c["room_id"] == "outage").collect();
    assert_eq!(outage.len(), 1, "{all:#?}");
    assert_eq!(outage[0]["state"], "connected", "{all:#?}");
    assert_eq!(outage[0]["media"][0]["status"], "InProgress", "{all:#?}");
    let reader = Store::connect(store).await.unwrap();
    assert_eq!(reader.result_of(&id).await.unwrap(), None);
    let open = reader.open_session(&id).await.unwrap().unwrap();
    assert_eq!(open.owner_gone, Some(false), "A renewed its lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_follows_and_stops_a_session_another_node_runs() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let (_a, api_a) = node(store, endpoints).await;
    let (_b, api_b) = node(store, endpoints).await;
    let (_c, api_c) = node(store, endpoints).await;
    let (code, created) = post(&api_a, looping_tone("jack", "anywhere")).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/sessions/{id}");
    // Followed on B, over SSE, until it is bound into the room.
    let events = reqwest::Client::new()
        .get(format!("{api_b}{path}/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    let mut stream = events.bytes_stream();
    let mut seen = String::new();
    let started = Instant::now();
    while !seen.contains("\"phase\":\"ingesting\"") {
        let chunk = tokio::time::timeout(
            Duration::from_secs(30),
            futures::StreamExt::next(&mut stream),
        )
        .await
        .expect("events within 30 s")
        .expect("the stream goes on")
        .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
        assert!(started.elapsed() < Duration::from_secs(30), "{seen}");
    }
    assert!(seen.contains("event: status"), "{seen}");
    // Every event has its number; a client that reconnects (to another node, even) with the
    // last one it saw gets only what came after.
    let ids: Vec<i64> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert!(
        ids.len() >= 3 && ids.windows(2).all(|w| w[0] < w[1]),
        "{seen}"
    );
    let resumed = reqwest::Client::new()
        .get(format!("{api_c}{path}/events"))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", ids[0].to_string())
        .send()
        .await
        .unwrap();
    let mut resumed = resumed.bytes_stream();
    let mut again = String::new();
    while again.lines().filter(|l| l.starts_with("id:")).count() < ids.len() - 1 {
        let chunk = tokio::time::timeout(
            Duration::from_secs(10),
            futures::StreamExt::next(&mut resumed),
        )
        .await
        .expect("replayed events")
        .expect("the stream goes on")
        .unwrap();
        again.push_str(&String::from_utf8_lossy(&chunk));
    }
    let replayed: Vec<i64> = again
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(replayed, ids[1..], "{again}");
    // Read on B as on A.
    let on_b = get(&api_b, &path).await;
    assert_eq!(on_b["id"], id.as_str(), "{on_b:#}");
    assert_eq!(on_b["status"]["phase"], "ingesting", "{on_b:#}");
    // A webhook about it reaching B makes A, which runs it, look at the cloud at once.
    let task_id = on_b["status"]["task_id"].as_str().unwrap().to_owned();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let body = format!(
        r#"{{"EventGroupId":7,"EventType":701,"CallbackMsTs":{now_ms},"EventInfo":{{"EventMsTs":{now_ms},"TaskId":"{task_id}","Status":0}}}}"#
    );
    let hook = reqwest::Client::new()
        .post(format!("{api_b}/webhooks/trtc"))
        .header("SdkAppId", "1400000042")
        .header(
            "Sign",
            callfeed::cloud::webhook::trtc_sign(CALLBACK_KEY, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status().as_u16(), 200);
    let started = Instant::now();
    loop {
        let metrics = metrics(&api_a).await;
        if metrics.contains("callfeed_webhooks_total{kind=\"forwarded\",verdict=\"accepted\"} 1") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopped from C.
    let stop = reqwest::Client::new()
        .delete(format!("{api_c}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status().as_u16(), 202);
    let v = until_ended(&api_c, TOKEN, &id, Duration::from_secs(30)).await;
    assert_eq!(v["report"]["result"], "stopped", "{v:#}");
    // A wrong token is refused by the node asked, and by the one it would ask.
    let denied = reqwest::Client::new()
        .get(format!("{api_b}{path}"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_asked_of_a_full_node_run_on_the_nodes_with_room() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints, control) = (&cloud.store, &cloud.endpoints, &cloud.control);
    let (_a, api_a) = node_with(store, endpoints, &["--max-sessions", "1"]).await;
    let (_b, api_b) = node_with(store, endpoints, &["--max-sessions", "2"]).await;
    let (_c, api_c) = node_with(store, endpoints, &["--max-sessions", "2"]).await;
    // Five sessions asked of A, which runs one at most: the cluster has room for five.
    let mut ids = Vec::new();
    let mut placed_on = Vec::new();
    for i in 0..5 {
        let request = looping_tone(&format!("callee{i}"), &format!("placed{i}"));
        let (code, created) = post(&api_a, request).await;
        assert_eq!(code, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
        placed_on.push(created["node"].as_str().unwrap_or(&api_a).to_owned());
    }
    let count = |api: &str| placed_on.iter().filter(|n| n.as_str() == api).count();
    assert_eq!(
        (count(&api_a), count(&api_b), count(&api_c)),
        (1, 2, 2),
        "{placed_on:?}"
    );
    // A sixth finds no room anywhere.
    let (code, full) = post(
        &api_a,
        serde_json::json!({"to": ["late"], "media": "test:tone", "room": "late", "media_type": "audio"}),
    )
    .await;
    assert_eq!(code, 429, "{full}");
    // The nodes they were placed on are woken at once (a notification), not at their next
    // look (every 5 s).
    let posted = Instant::now();
    for id in &ids {
        loop {
            let v = get(&api_a, &format!("/v1/sessions/{id}")).await;
            if v["status"]["phase"] != "placed" {
                break;
            }
            assert!(
                posted.elapsed() < Duration::from_secs(2),
                "still waiting: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Each runs where it was placed, and A answers for all of them.
    for id in &ids {
        let started = Instant::now();
        loop {
            let v = get(&api_a, &format!("/v1/sessions/{id}")).await;
            if v["status"]["phase"] == "ingesting" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(40), "{v:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let in_calls = calls(control).await;
    assert_eq!(in_calls.len(), 5, "{in_calls:#?}");
    // Any node lists every node's sessions.
    let listed = get(&api_c, "/v1/sessions").await;
    let mut listed: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_drives_sessions_through_the_api_of_every_node() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints, control) = (&cloud.store, &cloud.endpoints, &cloud.control);
    let (_a, api_a) = node(store, endpoints).await;
    let (_b, api_b) = node(store, endpoints).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callfeed"));
    let out = account(&mut cmd)
        .args(["load", "--calls", "4", "--rate", "8", "--duration", "2"])
        .args(["--media", "test:black+tone=440", "--json", "--api"])
        .arg(format!("{api_a},{api_b}"))
        .env("CALLFEED_API_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["succeeded"], 4, "{report:#}");
    assert_eq!(report["ring_ms"]["count"], 4, "{report:#}");
    assert_eq!(report["session_ms"]["count"], 4, "{report:#}");
    let all = calls(control).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(all.iter().all(|c| c["state"] == "ended"), "{all:#?}");

    // A wrong token: every session refused, counted by the answer's status.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callfeed"));
    let out = account(&mut cmd)
        .args([
            "load",
            "--calls",
            "2",
            "--rate",
            "8",
            "--duration",
            "1",
            "--json",
            "--api",
        ])
        .arg(&api_a)
        .env("CALLFEED_API_TOKEN", "wrong")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["failures_by_code"]["http_401"], 2, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_lets_its_sessions_finish_then_leaves_the_cluster() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let (mut a, api_a) = node_with(store, endpoints, &["--drain-grace", "30"]).await;
    let (_b, api_b) = node(store, endpoints).await;
    let (code, created) = post(&api_a, looping_tone_for("drained", 3)).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // Both nodes are empty: the node asked takes it.
    assert!(created["node"].is_null(), "{created}");
    let drain = reqwest::Client::new()
        .post(format!("{api_a}/v1/drain"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(drain.status().as_u16(), 202);
    // New sessions go elsewhere from now on.
    let (code, other) = post(
        &api_b,
        serde_json::json!({"to": ["rita"], "media": "test:tone", "room": "meanwhile",
            "media_type": "audio", "max_duration_secs": 1}),
    )
    .await;
    assert_eq!(code, 201, "{other}");
    assert!(other["node"].is_null(), "placed on B itself: {other}");
    // A's session runs to its end (not stopped), then A leaves and exits.
    let status = tokio::time::timeout(Duration::from_secs(40), a.wait())
        .await
        .expect("the drained node exits")
        .unwrap();
    assert!(status.success());
    let reader = Store::connect(store).await.unwrap();
    let (result, _) = reader.result_of(&id).await.unwrap().expect("finished");
    assert_eq!(result, "completed");
    let nodes = get(&api_b, "/v1/nodes").await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1, "{nodes:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_encode_takes_more_of_a_nodes_room_than_an_announcement() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let costs = ["--live-cost", "4", "--announcement-cost", "1"];
    let (_a, api_a) = node_with(
        store,
        endpoints,
        &[&["--max-sessions", "4"][..], &costs[..]].concat(),
    )
    .await;
    let (_b, api_b) = node_with(
        store,
        endpoints,
        &[&["--max-sessions", "8"][..], &costs[..]].concat(),
    )
    .await;
    // Live test sources cost 4: B (8 free), then A (4 free each, A asked), then B again.
    let mut placed = Vec::new();
    for i in 0..3 {
        let request = looping_tone(&format!("live{i}"), &format!("live{i}"));
        let (code, created) = post(&api_a, request).await;
        assert_eq!(code, 201, "{created}");
        placed.push(created["node"].as_str().unwrap_or(&api_a).to_owned());
    }
    assert_eq!(placed, [api_b.clone(), api_a.clone(), api_b.clone()]);
    // Both nodes' room is taken (4 of 4, 8 of 8): a fourth live session finds none.
    let (code, full) = post(
        &api_a,
        serde_json::json!({"to": ["late"], "media": "test:tone", "room": "late", "media_type": "audio"}),
    )
    .await;
    assert_eq!(code, 429, "{full}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_cpu_is_over_its_limit_is_passed_by() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    // A limit of 0 %: any measured use is over it.
    let (_a, api_a) = node_with(store, endpoints, &["--max-cpu", "0"]).await;
    let (_b, api_b) = node(store, endpoints).await;
    let started = Instant::now();
    loop {
        let nodes = get(&api_b, "/v1/nodes").await;
        let a = nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["api_url"] == api_a.as_str())
            .cloned();
        if a.is_some_and(|a| a["busy"] == true) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{nodes:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, created) = post(
        &api_a,
        serde_json::json!({"to": ["jack"], "media": "test:tone", "room": "busy",
            "media_type": "audio", "max_duration_secs": 1}),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["node"], api_b.as_str(), "{created}");
    // With B full too, the one node with room is over its CPU limit: the 429 says so.
    drop(_b);
    let started = Instant::now();
    let refused = loop {
        let (code, body) = post(
            &api_a,
            serde_json::json!({"to": ["jack"], "media": "test:tone", "room": "busy-too",
                "media_type": "audio", "max_duration_secs": 1}),
        )
        .await;
        if code == 429 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{code} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("CPU") && error.contains("--max-cpu"),
        "{error}"
    );
    let metrics = metrics(&api_a).await;
    assert!(metrics.contains("reason=\"cpu\""), "{metrics}");
}
