//! Retry classification against a local server that fails on purpose: what is retried,
//! what fails at once, and what a user is told.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use callfeed::cloud::call::{CallClient, ImCredentials, MediaType, StartCallByRobot};
use callfeed::cloud::http::{CloudError, HttpSettings, Transport};
use callfeed::cloud::ingest::{ApiCredentials, IngestClient, IngestStatus, StartStreamIngest};
use callfeed::cloud::{RoomRef, UserId};
use serde_json::json;

fn settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_millis(500),
        max_attempts: 3,
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        rate_limits: true,
    }
}

fn call_client(base: &str, settings: HttpSettings) -> CallClient {
    CallClient::new(
        Arc::new(Transport::new(settings).unwrap()),
        url::Url::parse(base).unwrap(),
        ImCredentials {
            sdkappid: SDKAPPID,
            secret_key: APP_KEY.into(),
            admin: UserId::new("admin", "administrator").unwrap(),
        },
    )
}

fn ingest_client(base: &str) -> IngestClient {
    IngestClient::new(
        Arc::new(Transport::new(settings()).unwrap()),
        url::Url::parse(base).unwrap(),
        "ap-singapore".into(),
        ApiCredentials {
            secret_id: SECRET_ID.into(),
            secret_key: SECRET_KEY.into(),
        },
        SDKAPPID,
        APP_KEY.into(),
    )
}

fn start_call() -> StartCallByRobot {
    StartCallByRobot {
        robot: UserId::new("robot", "robot").unwrap(),
        callees: vec![UserId::new("callee", "jack").unwrap()],
        timeout_ms: 30_000,
        media_type: MediaType::Video,
        room: Some(RoomRef::string("roomid-test").unwrap()),
        user_data: None,
        offline_push: None,
    }
}

fn started() -> String {
    im_ok(json!({"CallId":"35fd577d-1d10-4201-a40d-6d7316560986",
        "CallResult":[{"Callee_Account":"jack","ResultCode":0}]}))
}

#[tokio::test]
async fn rate_limited_start_call_is_retried_with_a_fresh_request() {
    let server = ScriptedServer::start(vec![
        Answer::json(im_fail(60007, "freq limit")),
        Answer::json(started()),
    ])
    .await;
    let reply = call_client(&server.url(), settings())
        .start_call_by_robot(&start_call())
        .await
        .unwrap();
    assert_eq!(
        reply.response.call_id,
        "35fd577d-1d10-4201-a40d-6d7316560986"
    );
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body);
    let random = |r: &Received| {
        url::Url::parse(&format!("http://x{}", r.uri))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "random")
            .unwrap()
            .1
            .into_owned()
    };
    assert_ne!(
        random(&got[0]),
        random(&got[1]),
        "each attempt is prepared afresh"
    );
}

#[tokio::test]
async fn server_errors_retry_idempotent_commands_only() {
    let info = im_ok(
        json!({"CallInfo":{"CallId":"c1","MediaType":"Video","ChatGroupId":"",
        "RoomId":"roomid-test","RoomIdType":2},
        "UserList":[{"User_Account":"robot","Status":"Calling"},{"User_Account":"jack","Status":"Waiting"}]}),
    );
    let server = ScriptedServer::start(vec![
        Answer::status(502),
        Answer::status(503),
        Answer::json(info),
    ])
    .await;
    let reply = call_client(&server.url(), settings())
        .get_call_info("c1")
        .await
        .unwrap();
    assert_eq!(server.count(), 3);
    assert_eq!(reply.response.answered("robot").count(), 0);
    assert_eq!(reply.response.users.len(), 2);

    // Starting a call twice would ring twice: a 502 after sending is not retried.
    let server = ScriptedServer::start(vec![Answer::status(502), Answer::json(started())]).await;
    let err = call_client(&server.url(), settings())
        .start_call_by_robot(&start_call())
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(
        matches!(err, CloudError::Status { status: 502, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn auth_errors_fail_at_once_with_the_fix() {
    for (code, hint) in [
        (70001, "clock"),
        (70009, "CALLFEED_SDK_SECRET_KEY"),
        (60010, "CALLFEED_ADMIN"),
        (70020, "CALLFEED_DATA_CENTER"),
    ] {
        let server = ScriptedServer::start(vec![]).await;
        server.set_fallback(Answer::json(im_fail(code, "refused")));
        let err = call_client(&server.url(), settings())
            .start_call_by_robot(&start_call())
            .await
            .unwrap_err();
        assert_eq!(server.count(), 1, "{code} must not be retried");
        let text = err.to_string();
        assert!(
            text.contains(&code.to_string()) && text.contains(hint),
            "{code}: {text}"
        );
        assert!(
            !text.contains("usersig="),
            "the query must not leak: {text}"
        );
    }
}

#[tokio::test]
async fn exhausted_retries_report_the_last_failure() {
    let server = ScriptedServer::start(vec![]).await;
    server.set_fallback(Answer::json(im_fail(60018, "busy")));
    let err = call_client(&server.url(), settings())
        .end_call("c1")
        .await
        .unwrap_err();
    assert_eq!(server.count(), 3, "max_attempts bounds the retries");
    assert_eq!(err.code().as_deref(), Some("60018"));
}

#[tokio::test]
async fn timeouts_are_bounded_and_retried_when_idempotent() {
    let server = ScriptedServer::start(vec![]).await;
    server.set_fallback(Answer::json(im_ok(json!({}))).delayed(Duration::from_secs(30)));
    let quick = HttpSettings {
        timeout: Duration::from_millis(150),
        ..settings()
    };
    let err = call_client(&server.url(), quick.clone())
        .end_call("c1")
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Timeout { .. }), "{err}");
    assert_eq!(server.count(), 3);

    let server2 = ScriptedServer::start(vec![]).await;
    server2.set_fallback(Answer::json(started()).delayed(Duration::from_secs(30)));
    let err = call_client(&server2.url(), quick)
        .start_call_by_robot(&start_call())
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Timeout { .. }), "{err}");
    assert_eq!(
        server2.count(),
        1,
        "a call that may have started is not started again"
    );
}

#[tokio::test]
async fn connection_refused_is_retried_and_named() {
    let base = format!("http://127.0.0.1:{}/", closed_port());
    let err = call_client(&base, settings())
        .start_call_by_robot(&start_call())
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Connect { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("start_call_by_robot"), "{text}");
    assert!(!text.contains("usersig"), "{text}");
}

#[tokio::test]
async fn api_rate_limit_is_retried_and_auth_failure_is_not() {
    let server = ScriptedServer::start(vec![
        Answer::json(api_fail("RequestLimitExceeded", "too fast")),
        Answer::json(api_ok(json!({"TaskId":"task-1"}))),
    ])
    .await;
    let start = StartStreamIngest::new(
        RoomRef::string("roomid-test").unwrap(),
        UserId::new("user", "robot").unwrap(),
        "https://example.com/a.flv",
    );
    let client = ingest_client(&server.url());
    let reply = client.start(&start).await.unwrap();
    assert_eq!(reply.response.task_id, "task-1");
    assert_eq!(server.count(), 2);
    let got = server.received();
    assert_eq!(
        got[0].header("x-tc-action").as_deref(),
        Some("StartStreamIngest")
    );
    assert_eq!(
        got[0].header("host"),
        Some(server.addr.to_string()),
        "the signed host is the one sent"
    );

    let server = ScriptedServer::start(vec![]).await;
    server.set_fallback(Answer::json(api_fail(
        "AuthFailure.SignatureFailure",
        "signature mismatch",
    )));
    let err = ingest_client(&server.url())
        .start(&start)
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1);
    let text = err.to_string();
    assert!(
        text.contains("AuthFailure.SignatureFailure") && text.contains("TENCENTCLOUD_SECRET_KEY"),
        "{text}"
    );
}

#[tokio::test]
async fn describe_reports_not_exist_as_a_status() {
    let server =
        ScriptedServer::start(vec![Answer::json(api_ok(json!({"Status":"NotExist"})))]).await;
    let reply = ingest_client(&server.url())
        .describe("task-1")
        .await
        .unwrap();
    assert_eq!(reply.response.status, IngestStatus::NotExist);
}

#[tokio::test]
async fn a_non_json_answer_is_a_clear_decode_error() {
    let server = ScriptedServer::start(vec![]).await;
    server.set_fallback(Answer::json("<html>captive portal</html>"));
    let err = call_client(&server.url(), settings())
        .get_call_info("c1")
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Decode { .. }), "{err}");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn invalid_input_sends_nothing() {
    let server = ScriptedServer::start(vec![Answer::json(started())]).await;
    let bad = StartCallByRobot {
        timeout_ms: 5_000,
        ..start_call()
    };
    let err = call_client(&server.url(), settings())
        .start_call_by_robot(&bad)
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Invalid(_)), "{err}");
    assert_eq!(server.count(), 0);
}
