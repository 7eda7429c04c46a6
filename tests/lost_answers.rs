//! A start the cloud carried out whose answer never arrived: the session fails and says so,
//! and the service stops the call or ingest task it never heard about once the cloud's
//! webhook reports it. The emulator's `effect_then_drop` fault applies the start and breaks
//! the connection before the answer.

use std::time::{Duration, Instant};

use crate::common::serve::*;
use crate::common::*;
use callfeed::cloud::call::SetCallback;
use callfeed::cloud::webhook::CallWebhook;
use callfeed::emulator::{Emulator, Fault, TrtcCallback};
use serde_json::{Value, json};

/// Waits until `done` holds for the emulator's `what` (calls or tasks).
async fn until(emulator: &Emulator, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = emulator_list(emulator, what).await;
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "timed out: {now:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A service whose webhooks the emulator sends, as the cloud does in production.
async fn service_with_webhooks(
    emulator: &Emulator,
    dir: &std::path::Path,
    configure: impl FnOnce(&mut callfeed::serve::api::ServiceConfig),
) -> Api {
    let (_service, api) = start_service(emulator, &dir.join("j.sqlite"), configure).await;
    std::mem::forget(_service);
    emulator.set_trtc_callback(Some(TrtcCallback {
        url: format!("{}/webhooks/trtc", api.base),
        key: "callbackkey".into(),
    }));
    let cloud = test_clients(
        &format!("{}/", emulator.endpoints().im_endpoint),
        APP_KEY,
        Default::default(),
    );
    cloud
        .calls
        .set_callback(&SetCallback {
            url: format!("{}/webhooks/call", api.base),
            commands: CallWebhook::ALL_COMMANDS.map(str::to_owned).to_vec(),
        })
        .await
        .unwrap();
    api
}

fn fault(target: &str) -> Fault {
    serde_json::from_value(json!({"target": target, "effect_then_drop": true})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_started_whose_answer_was_lost_is_ended() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api = service_with_webhooks(&emulator, dir.path(), |_| {}).await;
    emulator.add_fault(fault("start_call_by_robot"));
    let (status, created) = api
        .post(json!({"to":["jack"],"media":"test:black+tone=440","room":"lost-call","media_type":"audio","loop_forever":true}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let ended = api.ended(id, Duration::from_secs(30)).await;
    let report = &ended["report"];
    assert_eq!(report["result"], "failed", "{report:#}");
    assert_eq!(report["stage"], "ring", "{report:#}");
    assert_eq!(report["unconfirmed_start"], "call", "{report:#}");
    // The call the cloud did start, which the session never heard of, is ended by the
    // service (jack had answered it: it would have stayed up with nobody in it).
    let calls = until(&emulator, "calls", |c| {
        c.len() == 1 && c[0]["state"] == "ended"
    })
    .await;
    assert_eq!(calls[0]["room_id"], "lost-call", "{calls:#?}");
    let metrics = metrics(&api.base).await;
    assert!(
        metrics.contains("callfeed_strays_stopped_total 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_task_started_whose_answer_was_lost_is_stopped() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A URL handed to the cloud as it is: the task would pull it for as long as it loops.
    Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 15,
        tone_hz: 440,
    }
    .write(dir.path(), "clip.flv");
    let site = serve_dir(dir.path()).await;
    let api = service_with_webhooks(&emulator, dir.path(), |c| {
        c.policy = callfeed::media::policy::InputPolicy::Restricted(
            callfeed::media::policy::Restrictions::new(&[], false, &["127.0.0.1".into()]).unwrap(),
        );
    })
    .await;
    emulator.add_fault(fault("StartStreamIngest"));
    let (status, created) = api
        .post(
            json!({"to":["jack"],"media":format!("{site}clip.flv"),"room":"lost-task",
            "media_type":"video","direct":"always","loop_forever":true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let ended = api.ended(id, Duration::from_secs(30)).await;
    let report = &ended["report"];
    assert_eq!(report["result"], "failed", "{report:#}");
    assert_eq!(report["stage"], "ingest", "{report:#}");
    assert_eq!(report["unconfirmed_start"], "ingest_task", "{report:#}");
    assert!(report["task_id"].is_null(), "{report:#}");
    // The task the cloud did start is stopped by the service.
    let tasks = until(&emulator, "tasks", |t| {
        t.len() == 1 && t[0]["status"] == "NotExist"
    })
    .await;
    assert_eq!(
        tasks[0]["stream_url"],
        format!("{site}clip.flv"),
        "{tasks:#?}"
    );
    let metrics = metrics(&api.base).await;
    assert!(
        metrics.contains("callfeed_strays_stopped_total 1"),
        "stopped by the service, not by itself: {metrics}"
    );
    // And the call, which the session knew, was ended by its own teardown.
    until(&emulator, "calls", |c| {
        c.len() == 1 && c[0]["state"] == "ended"
    })
    .await;
}
