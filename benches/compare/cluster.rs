//! The cluster: sessions admitted per second through one node against three, and how long a
//! `kill -9` of a node takes to have its call and ingest task stopped by another node. Real
//! `callfeed serve` processes, a `callfeed emulator` process and a throwaway PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Child;

use crate::processes::{self, Cloud, TOKEN};
use crate::tools::{Bench, CALLFEED};

/// Sessions asked for in the admission figure, and by how many clients at once.
const ADMISSIONS: usize = 120;
const CLIENTS: usize = 8;
const KILLS: usize = 10;

pub(crate) fn cluster(_: &Bench) -> Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let one = admitted_per_second(1).await;
        let three = admitted_per_second(3).await;
        let failover = failover_ms().await;
        json!({
            "admitted_per_second": {"one_node": one, "three_nodes": three},
            "failover_ms": failover,
            "lease_secs": 2,
        })
    })
}

async fn node(store: &str, emulator: &Value) -> (Child, String) {
    processes::node(CALLFEED, store, emulator, &["--max-sessions", "1000"]).await
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client.request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    match r.send().await {
        Ok(a) => {
            let code = a.status().as_u16();
            let body = a.bytes().await.unwrap_or_default();
            (code, serde_json::from_slice(&body).unwrap_or_default())
        }
        Err(_) => (0, Value::Null),
    }
}

/// Sessions admitted (answered 201) per second through `nodes` nodes, round robin, by
/// `CLIENTS` clients at once; each is ended right after it is admitted, so admission,
/// placement and the start of preparing are what is measured.
async fn admitted_per_second(nodes: usize) -> f64 {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let mut children = Vec::new();
    let mut apis = Vec::new();
    for _ in 0..nodes {
        let (c, api) = node(store, endpoints).await;
        children.push(c);
        apis.push(api);
    }
    let client = reqwest::Client::new();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let workers = (0..CLIENTS).map(|_| {
        let (client, apis, next) = (client.clone(), apis.clone(), next.clone());
        async move {
            let mut admitted = 0usize;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ADMISSIONS {
                    return admitted;
                }
                let api = &apis[i % apis.len()];
                let body = json!({"to": [format!("c{i}")], "media": "test:tone", "room": format!("r{i}"),
                    "media_type": "audio", "ring_timeout_secs": 10});
                let (code, created) = call(&client, reqwest::Method::POST, format!("{api}/v1/sessions"), Some(body)).await;
                if code == 201 {
                    admitted += 1;
                    let id = created["id"].as_str().unwrap_or_default();
                    call(&client, reqwest::Method::DELETE, format!("{api}/v1/sessions/{id}"), None).await;
                }
            }
        }
    });
    let admitted: usize = futures::future::join_all(workers).await.into_iter().sum();
    let rate = admitted as f64 / started.elapsed().as_secs_f64();
    drop(children);
    (rate * 10.0).round() / 10.0
}

/// From `kill -9` of the node running a session to the emulator showing its call ended and
/// its ingest task gone, over `KILLS` kills: p50 and p95 in ms.
async fn failover_ms() -> Value {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints, control) = (&cloud.store, &cloud.endpoints, &cloud.control);
    let client = reqwest::Client::new();
    let (_survivor, _) = node(store, endpoints).await;
    let mut took = Vec::new();
    for k in 0..KILLS {
        let (mut victim, api) = node(store, endpoints).await;
        let body = json!({"to": [format!("k{k}")], "media": "test:black+tone=440", "room": format!("kill{k}"),
            "media_type": "audio", "loop_forever": true});
        // Both nodes are as free; the node asked takes it on a tie.
        let (code, created) = call(
            &client,
            reqwest::Method::POST,
            format!("{api}/v1/sessions"),
            Some(body),
        )
        .await;
        assert_eq!(code, 201, "{created}");
        let room = format!("kill{k}");
        let view = |calls: &Value| -> Option<Value> {
            calls["calls"]
                .as_array()?
                .iter()
                .find(|c| c["room_id"] == room.as_str())
                .cloned()
        };
        let calls = || async {
            let (_, v) = call(
                &client,
                reqwest::Method::GET,
                format!("{control}/calls"),
                None,
            )
            .await;
            v
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = view(&calls().await)
                && c["state"] == "connected"
                && c["media"][0]["status"] == "InProgress"
            {
                break;
            }
            assert!(Instant::now() < deadline, "session {k} never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        victim.start_kill().unwrap();
        let killed = Instant::now();
        victim.wait().await.unwrap();
        loop {
            if let Some(c) = view(&calls().await)
                && c["state"] == "ended"
                && c["media"][0]["status"] == "NotExist"
            {
                break;
            }
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "kill {k} never recovered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        took.push(killed.elapsed().as_millis() as u64);
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1];
    json!({"kills": took.len(), "p50": at(0.5), "p95": at(0.95), "max": took.last()})
}
