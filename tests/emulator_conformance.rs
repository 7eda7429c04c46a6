//! The emulator against independent clients and raw requests: Tencent's official Python
//! SDKs run against it unchanged, and every documented error path answers with the right
//! envelope and code (never a panic, a hang or a bare HTTP error).

use std::time::Duration;

use crate::common::*;
use callfeed::cloud::{tc3, usersig};
use callfeed::emulator::{Behaviour, Emulator, EmulatorConfig, Pace};
use serde_json::{Value, json};

fn config() -> EmulatorConfig {
    EmulatorConfig {
        pace: Pace::Fast,
        default_behaviour: Behaviour::NeverAnswer,
        reconnect_delays: vec![Duration::ZERO],
        ..test_emulator_config()
    }
}

async fn emulator() -> (Emulator, String) {
    let e = Emulator::start(config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = e.endpoints().im_endpoint;
    (e, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdks_run_against_it_unchanged() {
    let media = tempfile::tempdir().unwrap();
    Clip {
        seconds: 1,
        width: 160,
        height: 120,
        fps: 25,
        tone_hz: 440,
    }
    .write(media.path(), "c.mp4");
    let files = serve_dir(media.path()).await;
    let (emulator, _) = emulator().await;
    let nginx = Nginx::start();
    let out = tokio::process::Command::new(python_bin())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/sdk_against_emulator.py"
        ))
        .arg(emulator.addr().to_string())
        .arg(format!("{files}c.mp4"))
        .arg(nginx.url("py-monitor"))
        .output()
        .await
        .expect("python3 with the Tencent SDKs: run `make setup`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["start"]["TaskId"].as_str().is_some_and(|t| t.len() > 60),
        "{v:#}"
    );
    assert_eq!(v["describe"]["Status"], "InProgress", "{v:#}");
    // The official SDK's UpdateStreamIngest, unchanged: a new URL, a volume, a resume.
    assert_eq!(v["update"]["Status"], "InProgress", "{v:#}");
    assert!(
        v["update_unknown"]["Status"] == "NotExist" || v["update_unknown"]["error"].is_string(),
        "{v:#}"
    );
    // The official SDK's StartPublishCdnStream, Update and Stop, unchanged; its RoomIdType
    // is 1 for a string room, and 0 names a numeric room (which "py-room" is not).
    assert!(
        v["publish"]["TaskId"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{v:#}"
    );
    assert_eq!(
        v["publish_as_numeric"]["error"], "InvalidParameter.RoomId",
        "{v:#}"
    );
    assert!(v["publish_update"]["TaskId"].is_string(), "{v:#}");
    assert!(v["publish_stop"]["TaskId"].is_string(), "{v:#}");
    assert_eq!(
        v["publish_stop_again"]["error"], "FailedOperation.TaskNotExist",
        "{v:#}"
    );
    assert!(v["stop"].get("error").is_none(), "{v:#}");
    assert_eq!(v["describe_after_stop"]["Status"], "NotExist", "{v:#}");
    assert_eq!(
        v["wrong_secret"]["error"], "AuthFailure.SignatureFailure",
        "{v:#}"
    );
    assert_eq!(
        v["bad_usersig"]["error"], "InvalidParameter.UserSig",
        "{v:#}"
    );
    assert_eq!(v["im_ok"]["ErrorCode"], 0, "{v:#}");
    assert_eq!(v["im_ok"]["content_type"], "application/json");
    assert_eq!(
        v["im_ok"]["Response"]["CallResult"][0]["Callee_Account"],
        "jack"
    );
    let tampered = v["im_tampered"]["ErrorCode"].as_i64().unwrap();
    assert!([70003, 70009].contains(&tampered), "{v:#}");
    assert_eq!(v["im_wrong_key"]["ErrorCode"], 70009, "{v:#}");
    assert_eq!(v["im_other_user_sig"]["ErrorCode"], 70013, "{v:#}");
    emulator.shutdown().await;
}

/// POSTs to the IM API with hand-made query parameters; checks the envelope is HTTP 200 JSON.
async fn im(base: &str, path: &str, query: &str, body: impl Into<reqwest::Body>) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}?{query}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}?{query}");
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    if v["ErrorCode"] != 0 {
        assert_eq!(v["ActionStatus"], "FAIL", "{v}");
        assert!(v["RequestId"].as_str().unwrap().starts_with("Id-"), "{v}");
    }
    v
}

fn sig(user: &str, sdkappid: u64, key: &str, time: u64) -> String {
    usersig::generate(sdkappid, key.as_bytes(), user, 86_400, time, None)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn auth(identifier: &str, usersig: &str) -> String {
    format!(
        "sdkappid={SDKAPPID}&identifier={identifier}&usersig={usersig}&random=7&contenttype=json"
    )
}

const START: &str = "/v4/call_engine_http_srv/start_call_by_robot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn im_errors_use_the_documented_codes() {
    let (_emulator, base) = emulator().await;
    let admin = sig("administrator", SDKAPPID, APP_KEY, now());
    let good = json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":30000,
        "CallInfo":{"MediaType":"Video","RoomId":"r1","RoomIdType":2}});
    let code = |v: Value| v["ErrorCode"].as_i64().unwrap();
    let cases: Vec<(&str, String, Vec<u8>, i64)> = vec![
        (
            START,
            "identifier=administrator&usersig=x".into(),
            good.to_string().into(),
            60012,
        ),
        (
            START,
            format!("sdkappid=1&identifier=administrator&usersig={admin}"),
            good.to_string().into(),
            70020,
        ),
        (
            START,
            auth("jack", &sig("jack", SDKAPPID, APP_KEY, now())),
            good.to_string().into(),
            60010,
        ),
        (
            START,
            auth("administrator", ""),
            good.to_string().into(),
            70002,
        ),
        (
            START,
            auth("administrator", &admin[..30]),
            good.to_string().into(),
            70003,
        ),
        (
            START,
            auth(
                "administrator",
                &sig("administrator", SDKAPPID, "other", now()),
            ),
            good.to_string().into(),
            70009,
        ),
        (
            START,
            auth("administrator", &sig("jack", SDKAPPID, APP_KEY, now())),
            good.to_string().into(),
            70013,
        ),
        (
            START,
            auth(
                "administrator",
                &sig("administrator", 1_400_000_001, APP_KEY, now()),
            ),
            good.to_string().into(),
            70014,
        ),
        (
            START,
            auth(
                "administrator",
                &sig("administrator", SDKAPPID, APP_KEY, 1_600_000_000),
            ),
            good.to_string().into(),
            70001,
        ),
        (
            "/v4/nope/nothing",
            auth("administrator", &admin),
            b"{}".to_vec(),
            60009,
        ),
        (
            "/v4/a/b/c",
            auth("administrator", &admin),
            b"{}".to_vec(),
            60009,
        ),
        (
            START,
            auth("administrator", &admin),
            b"{not json".to_vec(),
            60003,
        ),
        (
            START,
            auth("administrator", &admin),
            b"[1,2]".to_vec(),
            60003,
        ),
        (
            START,
            auth("administrator", &admin),
            vec![b' '; 1_200_000],
            60003,
        ),
    ];
    for (path, query, body, expected) in cases {
        let v = im(&base, path, &query, body).await;
        assert_eq!(code(v.clone()), expected, "{path}?{query}: {v}");
    }
    for bad in [
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":5000,"CallInfo":{"MediaType":"Video"}}),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":"30000","CallInfo":{"MediaType":"Video"}}),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":-1,"CallInfo":{"MediaType":"Video"}}),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":1e300,"CallInfo":{"MediaType":"Video"}}),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":30000,"CallInfo":{"MediaType":"video"}}),
        json!({"Robot_Account":"robot","CalleeList_Account":[],"Timeout":30000,"CallInfo":{"MediaType":"Video"}}),
        json!({"Robot_Account":"robot","CalleeList_Account":[1],"Timeout":30000,"CallInfo":{"MediaType":"Video"}}),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":30000,"CallInfo":{"MediaType":"Video","RoomId":"0","RoomIdType":1}}),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":30000,"CallInfo":{"MediaType":"Video","RoomId":"r","RoomIdType":3}}),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":30000}),
    ] {
        let v = im(
            &base,
            START,
            &auth("administrator", &admin),
            bad.to_string(),
        )
        .await;
        assert_eq!(code(v.clone()), 101002, "{bad}: {v}");
    }
    let v = im(
        &base,
        "/v4/call_engine_http_srv/get_call_info",
        &auth("administrator", &admin),
        r#"{"CallId":"nope"}"#,
    )
    .await;
    assert_eq!(code(v), 101004);
    let v = im(
        &base,
        "/v4/call_record_http_srv/get_record_by_callid",
        &auth("administrator", &admin),
        r#"{"CallId":"nope"}"#,
    )
    .await;
    assert_eq!(code(v), 101050);
    let v = im(
        &base,
        "/v4/call_config/set_callback",
        &auth("administrator", &admin),
        r#"{"Url":"ftp://x","CallbackCommandList":[]}"#,
    )
    .await;
    assert_eq!(code(v), 100002);
    let get = reqwest::get(format!("{base}{START}?{}", auth("administrator", &admin)))
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let v: Value = serde_json::from_slice(&get.bytes().await.unwrap()).unwrap();
    assert_eq!(v["ErrorCode"], 60002);
}

/// How a raw API 3.0 request departs from a correct one.
#[derive(Default, Clone)]
struct Twist {
    secret_id: Option<&'static str>,
    secret_key: Option<&'static str>,
    skew: i64,
    version: Option<&'static str>,
    region: Option<&'static str>,
    no_auth: bool,
}

async fn api(base: &str, action: &str, body: &[u8], twist: Twist) -> Value {
    let host = base.trim_start_matches("http://").to_owned();
    let ts = now() as i64 + twist.skew;
    let signature = tc3::sign(
        twist.secret_key.unwrap_or(SECRET_KEY),
        &tc3::SignInput {
            method: "POST",
            canonical_uri: "/",
            canonical_query: "",
            signed_headers: &[("content-type", "application/json"), ("host", &host)],
            payload: Some(body),
            timestamp: ts,
            service: "trtc",
        },
    );
    let mut req = reqwest::Client::new()
        .post(format!("{base}/"))
        .header("Content-Type", "application/json")
        .header("X-TC-Action", action)
        .header("X-TC-Timestamp", ts.to_string())
        .header("X-TC-Version", twist.version.unwrap_or("2019-07-22"))
        .header("X-TC-Region", twist.region.unwrap_or("ap-singapore"))
        .body(body.to_vec());
    if !twist.no_auth {
        req = req.header(
            "Authorization",
            signature.authorization(twist.secret_id.unwrap_or(SECRET_ID)),
        );
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json",
        "exactly, for the Python SDK"
    );
    let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(
        v["Response"]["RequestId"]
            .as_str()
            .is_some_and(|id| id.len() == 36),
        "{v}"
    );
    v
}

fn code(v: &Value) -> &str {
    v["Response"]["Error"]["Code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_use_the_documented_codes() {
    let (_emulator, base) = emulator().await;
    let describe = br#"{"SdkAppId":1400000000,"TaskId":"t"}"#;
    let robot_sig = sig("robot", SDKAPPID, APP_KEY, now());
    let start = |fields: Value| {
        let mut body = json!({"SdkAppId":1400000000,"RoomId":"r1","RoomIdType":0,"UserId":"robot",
            "UserSig": robot_sig, "StreamUrl":"http://127.0.0.1:9/x.flv"});
        for (k, v) in fields.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body.to_string().into_bytes()
    };
    let t = Twist::default;
    let cases: Vec<(&str, Vec<u8>, Twist, &str)> = vec![
        (
            "DescribeStreamIngest",
            describe.to_vec(),
            Twist {
                secret_key: Some("wrong"),
                ..t()
            },
            "AuthFailure.SignatureFailure",
        ),
        (
            "DescribeStreamIngest",
            describe.to_vec(),
            Twist {
                secret_id: Some("AKIDunknown"),
                ..t()
            },
            "AuthFailure.SecretIdNotFound",
        ),
        (
            "DescribeStreamIngest",
            describe.to_vec(),
            Twist { skew: -400, ..t() },
            "AuthFailure.SignatureExpire",
        ),
        (
            "DescribeStreamIngest",
            describe.to_vec(),
            Twist {
                no_auth: true,
                ..t()
            },
            "AuthFailure.InvalidAuthorization",
        ),
        ("FooStreamIngest", describe.to_vec(), t(), "InvalidAction"),
        (
            "DescribeStreamIngest",
            describe.to_vec(),
            Twist {
                version: Some("2020-01-01"),
                ..t()
            },
            "NoSuchVersion",
        ),
        (
            "DescribeStreamIngest",
            describe.to_vec(),
            Twist {
                region: Some("eu-frankfurt"),
                ..t()
            },
            "UnsupportedRegion",
        ),
        (
            "DescribeStreamIngest",
            br#"{"SdkAppId":1400000000,"TaskId":"t","Extra":1}"#.to_vec(),
            t(),
            "UnknownParameter",
        ),
        (
            "DescribeStreamIngest",
            br#"{"SdkAppId":1400000000}"#.to_vec(),
            t(),
            "MissingParameter.TaskId",
        ),
        (
            "DescribeStreamIngest",
            br#"{"TaskId":"t"}"#.to_vec(),
            t(),
            "MissingParameter.SdkAppId",
        ),
        (
            "DescribeStreamIngest",
            br#"{"SdkAppId":"abc","TaskId":"t"}"#.to_vec(),
            t(),
            "InvalidParameter.SdkAppId",
        ),
        (
            "DescribeStreamIngest",
            br#"{"SdkAppId":1400000000,"TaskId":7}"#.to_vec(),
            t(),
            "InvalidParameter.TaskId",
        ),
        (
            "DescribeStreamIngest",
            b"{oops".to_vec(),
            t(),
            "InvalidParameter.BodyParamsError",
        ),
        (
            "DescribeStreamIngest",
            vec![b' '; 1_100_000],
            t(),
            "RequestSizeLimitExceeded",
        ),
        (
            "StopStreamIngest",
            describe.to_vec(),
            t(),
            "InvalidParameter.TaskId",
        ),
        (
            "StartStreamIngest",
            start(json!({"RoomId": null})),
            t(),
            "MissingParameter.RoomId",
        ),
        (
            "StartStreamIngest",
            start(json!({"RoomId":"0","RoomIdType":1})),
            t(),
            "InvalidParameter.RoomId",
        ),
        (
            "StartStreamIngest",
            start(json!({"RoomId":"4294967295","RoomIdType":1})),
            t(),
            "InvalidParameter.RoomId",
        ),
        (
            "StartStreamIngest",
            start(json!({"RoomId":"bad room","RoomIdType":0})),
            t(),
            "InvalidParameter.StrRoomId",
        ),
        (
            "StartStreamIngest",
            start(json!({"RoomIdType":2})),
            t(),
            "InvalidParameterValue",
        ),
        (
            "StartStreamIngest",
            start(json!({"UserSig":"eJx-not-a-sig"})),
            t(),
            "InvalidParameter.UserSig",
        ),
        (
            "StartStreamIngest",
            start(json!({"UserId":"someone_else"})),
            t(),
            "InvalidParameter.UserSig",
        ),
        (
            "StartStreamIngest",
            start(json!({"StreamUrl":"ftp://h/x.flv"})),
            t(),
            "InvalidParameter.StreamUrl",
        ),
        (
            "StartStreamIngest",
            start(json!({"StreamUrl":null})),
            t(),
            "InvalidParameter.StreamUrl",
        ),
        (
            "StartStreamIngest",
            start(json!({"RepeatNum":0})),
            t(),
            "InvalidParameterValue",
        ),
        (
            "StartStreamIngest",
            start(json!({"RepeatNum":1e20})),
            t(),
            "InvalidParameterValue",
        ),
        (
            "StartStreamIngest",
            start(json!({"RepeatNum":-5})),
            t(),
            "InvalidParameterValue",
        ),
        (
            "StartStreamIngest",
            start(json!({"MaxDuration":10})),
            t(),
            "InvalidParameterValue",
        ),
        (
            "StartStreamIngest",
            start(json!({"Volume":201})),
            t(),
            "InvalidParameterValue",
        ),
        (
            "StartStreamIngest",
            start(json!({"Tempo":3.0})),
            t(),
            "InvalidParameterValue",
        ),
        (
            "StartStreamIngest",
            start(json!({"AutoPush":"yes"})),
            t(),
            "InvalidParameter",
        ),
        (
            "StartStreamIngest",
            start(json!({"SdkAppId":1400000001})),
            t(),
            "InvalidParameter.SdkAppId",
        ),
    ];
    for (action, body, twist, expected) in cases {
        let v = api(&base, action, &body, twist).await;
        assert_eq!(
            code(&v),
            expected,
            "{action} {}: {v}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
    // Describe of a well-formed unknown task is a status, not an error.
    let v = api(&base, "DescribeStreamIngest", describe, t()).await;
    assert_eq!(v["Response"]["Status"], "NotExist");
    let v = api(
        &base,
        "UpdateStreamIngest",
        br#"{"SdkAppId":1400000000,"TaskId":"t","IsPause":true}"#,
        t(),
    )
    .await;
    assert_eq!(v["Response"]["Status"], "NotExist");
    // 20 requests a second per action.
    let mut limited = 0;
    for _ in 0..30 {
        let v = api(&base, "DescribeStreamIngest", describe, t()).await;
        if code(&v) == "RequestLimitExceeded" {
            limited += 1;
        }
    }
    assert!(
        limited >= 1,
        "30 requests in a burst must hit the 20/s limit"
    );
}
