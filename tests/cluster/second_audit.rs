//! The cluster cases the second audit and its soak found: a store password in the query
//! form, a session placed on a node that froze, a result reached while the store was away,
//! nodes that take another token.

use std::time::{Duration, Instant};

use super::{
    CALLFEED, calls, get, in_call, looping_tone, looping_tone_for, node, node_with, post, signal,
    until_calls,
};
use crate::common::{
    self,
    processes::{self, Cloud, TOKEN},
    serve::until_ended,
};
use callfeed::store::{SessionStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_password_given_in_the_query_shows_in_no_answer_and_no_log() {
    let cloud = Cloud::start(CALLFEED).await;
    // tokio-postgres takes the password as a query parameter too (trust auth ignores it).
    let store = format!("{}?password=hunter2&sslmode=disable", cloud.store);
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut env = processes::node_env(&cloud.endpoints, TOKEN);
    env.push(("CALLFEED_LOG_FORMAT", "json".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
        "--lease-secs",
        "2",
        "--max-cpu",
        "100",
        "--log",
        "debug",
        "--allow-url-host",
        "127.0.0.1",
    ];
    let (_node, ready) =
        processes::start_logging(CALLFEED, &args, &env, log.reopen().unwrap()).await;
    let api = ready["api"].as_str().unwrap();
    // A media URL's credentials are masked in the log at every level too.
    let media = format!(
        "http://bob:s3cretpw@127.0.0.1:{}/x.flv?token=tok123",
        common::closed_port()
    );
    let (code, failing) = post(
        api,
        serde_json::json!({"to": ["jack"], "media": media, "room": "creds", "live": true, "direct": "never"}),
    )
    .await;
    assert_eq!(code, 201, "{failing}");
    let failing_id = failing["id"].as_str().unwrap();
    until_ended(api, TOKEN, failing_id, Duration::from_secs(30)).await;
    let (code, created) = post(api, looping_tone("jack", "before")).await;
    assert_eq!(code, 201, "{created}");
    cloud.pg.kill();
    let (code, refused) = post(api, looping_tone("jack", "during")).await;
    assert_eq!(code, 503, "{refused}");
    let answer = refused.to_string();
    assert!(answer.contains("reference"), "{answer}");
    let store_host = cloud
        .store
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    assert!(
        !answer.contains("hunter2") && !answer.contains(store_host),
        "the store shows in an answer: {answer}"
    );
    let (_, one) = get_answer(
        api,
        &format!("/v1/sessions/{}", created["id"].as_str().unwrap()),
    )
    .await;
    assert!(
        !one.contains("hunter2") && !one.contains(store_host),
        "{one}"
    );
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        logged.contains("session store"),
        "the outage is logged: {logged}"
    );
    assert!(!logged.contains("hunter2"), "the password is in the log");
    assert!(
        logged.contains("127.0.0.1"),
        "the media URL is logged: {logged}"
    );
    let leaks: Vec<_> = logged
        .lines()
        .filter(|l| l.contains("s3cretpw") || l.contains("tok123"))
        .collect();
    assert!(
        leaks.is_empty(),
        "a media URL's credentials are in the log: {leaks:#?}"
    );
}

async fn get_answer(api: &str, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{api}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_placed_on_a_node_that_freezes_before_picking_it_up_is_placed_again() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints, control) = (&cloud.store, &cloud.endpoints, &cloud.control);
    let (_a, api_a) = node_with(store, endpoints, &["--max-sessions", "4"]).await;
    // B has the most room, so the next session goes there.
    let (b, api_b) = node_with(store, endpoints, &["--max-sessions", "100"]).await;
    // Both hold their leases a full lease, as a running cluster's nodes do.
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&b, "STOP");
    let (code, created) = post(&api_a, looping_tone_for("stranded", 60)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["node"], api_b.as_str(), "placed on B: {created}");
    let id = created["id"].as_str().unwrap().to_owned();
    // B never picks it up: once B's lease runs out, A places it again (on itself) and it rings.
    until_calls(control, Duration::from_secs(20), in_call).await;
    let status = get(&api_a, &format!("/v1/sessions/{id}")).await;
    assert_eq!(status["id"], id.as_str(), "{status:#}");
    assert!(status["report"].is_null(), "it runs: {status:#}");
    // B comes back and starts nothing for it.
    signal(&b, "CONT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = calls(control).await;
    assert_eq!(all.len(), 1, "one call for the session: {all:#?}");
    assert!(in_call(&all), "{all:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_reached_while_the_store_is_down_is_recorded_when_it_is_back() {
    let cloud = Cloud::start(CALLFEED).await;
    let (pg, store, endpoints, control) =
        (&cloud.pg, &cloud.store, &cloud.endpoints, &cloud.control);
    let (_a, api_a) = node(store, endpoints).await;
    // jill hangs up 4 s into the call.
    let behaviour = reqwest::Client::new()
        .post(format!("{control}/users/jill/behaviour"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"action": "answer", "after_ms": 200, "hangup_after_ms": 4000})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(behaviour.status().is_success());
    let (code, created) = post(&api_a, looping_tone("jill", "outage-result")).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    until_calls(control, Duration::from_secs(30), in_call).await;
    // The store goes away; meanwhile she hangs up and the session ends.
    pg.kill();
    let report = until_ended(&api_a, TOKEN, &id, Duration::from_secs(30)).await["report"].clone();
    assert_eq!(report["result"], "hung_up", "{report:#}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.restart();
    // The store has its real result once it is back, not a crash's `recovered`.
    let reader = Store::connect(store).await.unwrap();
    let started = Instant::now();
    let recorded = loop {
        if let Some(result) = reader.result_of(&id).await.unwrap() {
            break result;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "never recorded"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(recorded.0, "hung_up", "{recorded:?}");
    // And its last event, for followers on any node. The report is retried apart from the
    // result (with its own backoff), so it may be written a few seconds after it.
    let started = Instant::now();
    loop {
        let events = reader.events_after(&id, 0).await.unwrap();
        if events
            .iter()
            .any(|(_, kind, data)| kind == "report" && data.contains("hung_up"))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "{events:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_takes_another_token_runs_none_of_this_tokens_sessions() {
    let cloud = Cloud::start(CALLFEED).await;
    let (store, endpoints) = (&cloud.store, &cloud.endpoints);
    let (_a, api_a) = node_with(store, endpoints, &["--max-sessions", "1"]).await;
    // Same store, another token: far more room, so placement would pick it first.
    let another = "another-clusters-token";
    let (_b, api_b) = processes::node_as(
        CALLFEED,
        store,
        endpoints,
        another,
        &["--max-sessions", "100"],
    )
    .await;
    let (code, created) = post(&api_a, looping_tone("jack", "mine")).await;
    assert_eq!(code, 201, "{created}");
    assert!(
        created["node"].is_null() || created["node"] == api_a.as_str(),
        "placed on the node with another token: {created}"
    );
    assert_ne!(created["node"], api_b.as_str());
    // A is full now, and B is not a node of this token's cluster.
    let (code, refused) = post(&api_a, looping_tone("jack", "also-mine")).await;
    assert_eq!(code, 429, "{refused}");
}
