//! One conformance suite for every session store: the embedded SQLite journal and the
//! PostgreSQL store a cluster shares (a real server, started by the harness).

use std::sync::Arc;

use crate::common;
use crate::common::postgres::Postgres;
use callfeed::store::{Admission, OpenSession, SessionStore, Store, StoreError, process_identity};

/// What every backend must do, as sessions and recovery rely on it.
async fn conforms(store: Arc<Store>) {
    let node = callfeed::store::NodeInfo {
        api_url: "http://127.0.0.1:1".into(),
        stream_base: "http://127.0.0.1:1".into(),
        capacity: 4,
        token_fingerprint: String::new(),
    };
    let lease = std::time::Duration::from_secs(30);
    store.register_node(&node, lease).await.unwrap();
    let load = callfeed::store::NodeLoad {
        sessions: 1,
        ..Default::default()
    };
    assert!(store.renew_lease(lease, load).await.unwrap());
    let room = "string:lobby";
    assert_eq!(
        store.admit("s1", room, "robot").await.unwrap(),
        Admission::Admitted
    );
    // The room and robot are taken until s1 finishes; another robot or room is not.
    assert_eq!(
        store.admit("s2", room, "robot").await.unwrap(),
        Admission::Busy {
            existing: "s1".into()
        }
    );
    assert_eq!(
        store.admit("s3", room, "robot2").await.unwrap(),
        Admission::Admitted
    );
    assert_eq!(
        store.active_for(room, "robot").await.unwrap().as_deref(),
        Some("s1")
    );
    assert_eq!(
        store.active_for("string:elsewhere", "robot").await.unwrap(),
        None
    );

    store.set_state("s1", "ringing").await.unwrap();
    store.set_call("s1", "call-1").await.unwrap();
    store.set_task("s1", "task-1").await.unwrap();
    assert_eq!(
        store.call_of("s1").await.unwrap().as_deref(),
        Some("call-1")
    );
    assert_eq!(store.call_of("s3").await.unwrap(), None);
    assert_eq!(store.call_of("nobody").await.unwrap(), None);
    let open = store.open_sessions().await.unwrap();
    assert_eq!(
        open.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s1", "s3"],
        "oldest first"
    );
    assert_eq!(
        open[0],
        OpenSession {
            id: "s1".into(),
            call_id: Some("call-1".into()),
            task_id: Some("task-1".into()),
            publish_task_id: None,
            pending: None,
            owner: Some(process_identity()),
            owner_gone: open[0].owner_gone,
            placed: false,
        }
    );
    assert!(!open[0].orphaned(), "this process runs it");
    // A takeover names the owner it read: of two, one wins.
    assert!(!store.claim("s3", Some("someone-else")).await.unwrap());
    let owner = open[1].owner.clone();
    assert!(store.claim("s3", owner.as_deref()).await.unwrap());
    assert!(!store.claim("s3", Some("someone-else")).await.unwrap());

    // A teardown the cloud has not confirmed keeps the room, with the result aside.
    store
        .teardown_pending("s1", "completed", "cloud unreachable")
        .await
        .unwrap();
    assert_eq!(
        store.admit("s4", room, "robot").await.unwrap(),
        Admission::Busy {
            existing: "s1".into()
        }
    );
    let s1 = store.open_session("s1").await.unwrap().unwrap();
    assert_eq!(
        s1.pending,
        Some(("completed".into(), "cloud unreachable".into()))
    );
    assert_eq!(store.result_of("s1").await.unwrap(), None);

    // Confirmed: finished, the room is free, the result kept.
    store
        .finish("s1", "completed", "stopped task task-1")
        .await
        .unwrap();
    assert_eq!(
        store.result_of("s1").await.unwrap(),
        Some(("completed".into(), "stopped task task-1".into()))
    );
    assert_eq!(store.open_session("s1").await.unwrap(), None);
    assert_eq!(
        store.admit("s5", room, "robot").await.unwrap(),
        Admission::Admitted
    );

    // Events are numbered in order; a reader resumes after the last one it saw.
    let first = store
        .append_event("s1", "status", "{\"phase\":\"ringing\"}")
        .await
        .unwrap();
    store.append_event("s3", "status", "{}").await.unwrap();
    let second = store.append_event("s1", "report", "{}").await.unwrap();
    assert!(second > first);
    let all = store.events_after("s1", 0).await.unwrap();
    assert_eq!(
        all.iter().map(|e| (e.0, e.1.as_str())).collect::<Vec<_>>(),
        [(first, "status"), (second, "report")]
    );
    assert_eq!(store.events_after("s1", first).await.unwrap().len(), 1);
    assert!(store.events_after("s1", second).await.unwrap().is_empty());

    // Of many admissions for one room at once, exactly one wins; the rest name it.
    let racers = (0..12).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.admit(&format!("r{i}"), "string:race", "robot").await })
    });
    let answers: Vec<Admission> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let winners: Vec<_> = answers
        .iter()
        .filter(|a| **a == Admission::Admitted)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    let winner = store
        .active_for("string:race", "robot")
        .await
        .unwrap()
        .unwrap();
    for a in &answers {
        if let Admission::Busy { existing } = a {
            assert_eq!(*existing, winner);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_journal_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conforms(Arc::new(Store::open(&dir.path().join("j.sqlite")).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_conforms_and_keeps_what_it_recorded() {
    let pg = Postgres::start();
    let url = pg.database().await;
    conforms(Arc::new(Store::connect(&url).await.unwrap())).await;
    // A second node (or a restart) sees the same sessions; migrating twice changes nothing.
    let again = Store::connect(&url).await.unwrap();
    let open: Vec<String> = again
        .open_sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        open.contains(&"s3".to_owned()) && open.contains(&"s5".to_owned()),
        "{open:?}"
    );
    assert_eq!(
        again.admit("other", "string:lobby", "robot").await.unwrap(),
        Admission::Busy {
            existing: "s5".into()
        }
    );
    // Another node took s5 over: this process is fenced out, and its late writes change
    // nothing of the new owner's record.
    assert!(again.fence("s5").await.unwrap());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "UPDATE sessions SET owner = 'otherhost/1:1', epoch = epoch + 1 WHERE id = 's5'",
        )
        .await
        .unwrap();
    assert!(!again.fence("s5").await.unwrap());
    assert_eq!(again.fence_losses(), 1, "counted for the metrics");
    again.finish("s5", "stopped", "late").await.unwrap();
    again.set_task("s5", "task-late").await.unwrap();
    assert_eq!(again.result_of("s5").await.unwrap(), None);
    let s5 = again.open_session("s5").await.unwrap().unwrap();
    assert_eq!(s5.task_id, None);
    // Its owner has no lease: gone, for the others to reap.
    assert_eq!(s5.owner_gone, Some(true));
}

#[tokio::test]
async fn a_store_that_cannot_be_used_is_named_without_its_password() {
    let pg = Postgres::start();
    // Nothing listens there.
    let port = common::closed_port();
    let err = Store::connect(&format!("postgres://callfeed:hunter2@127.0.0.1:{port}/db"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    // A database that does not exist.
    let err = Store::connect(&pg.url("nosuchdb"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nosuchdb"), "{err}");
    // A schema written by a newer callfeed is refused, with both versions named.
    let url = pg.database().await;
    drop(Store::connect(&url).await.unwrap());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("UPDATE callfeed_schema SET version = 99")
        .await
        .unwrap();
    let err = Store::connect(&url).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                found: 99,
                supported: 4,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_postgres_share_the_room_lock_and_the_record() {
    use callfeed::emulator::Emulator;
    let pg = Postgres::start();
    let url = pg.database().await;
    let emulator = Emulator::start(
        common::test_emulator_config(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let node = |store| common::serve::start_service_on(&emulator, store, |_| {});
    let (_a, a) = node(Arc::new(Store::connect(&url).await.unwrap())).await;
    let (_b, b) = node(Arc::new(Store::connect(&url).await.unwrap())).await;
    let (_c, c) = node(Arc::new(Store::connect(&url).await.unwrap())).await;
    let request = serde_json::json!({
        "to": ["jack"], "media": "test:black+tone=440", "room": "shared-room",
        "media_type": "audio", "max_duration_secs": 2,
    });
    // The same room asked of both nodes at once: one session, the other told which.
    // The same room asked of three nodes at once: one session, the others told which.
    let (first, second, third) = tokio::join!(
        a.post(request.clone()),
        b.post(request.clone()),
        c.post(request.clone())
    );
    let mut answers = [first, second, third];
    answers.sort_by_key(|(code, _)| *code);
    let [(created, session), (conflict, busy), (conflict2, busy2)] = answers;
    assert_eq!(
        (created, conflict, conflict2),
        (201, 409, 409),
        "{session} {busy} {busy2}"
    );
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(busy["existing"], id.as_str());
    assert_eq!(busy2["existing"], id.as_str());
    // It ends, and the shared record says how, for any node to read.
    let node_of = if a.get(&format!("/v1/sessions/{id}")).await["id"] == id.as_str() {
        &a
    } else {
        &b
    };
    node_of
        .until(
            &format!("/v1/sessions/{id}"),
            std::time::Duration::from_secs(30),
            |v| v["report"].is_object(),
        )
        .await;
    let reader = Store::connect(&url).await.unwrap();
    assert_eq!(reader.result_of(&id).await.unwrap().unwrap().0, "completed");
    // The room is free again, on either node.
    let (code, _) = b.post(request).await;
    assert_eq!(code, 201);
}

#[tokio::test]
async fn serve_refuses_a_store_it_cannot_use_before_anything_starts() {
    let port = common::closed_port();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_callfeed"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(format!(
            "postgres://callfeed:hunter2@127.0.0.1:{port}/calls"
        ))
        .env("CALLFEED_SDKAPPID", "1400000000")
        .env("CALLFEED_SDK_SECRET_KEY", "key")
        .env("TENCENTCLOUD_SECRET_ID", "id")
        .env("TENCENTCLOUD_SECRET_KEY", "secret")
        .env_remove("CALLFEED_CONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}/calls")), "{err}");
    assert!(
        err.contains("Connection refused") && err.contains("--store"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
