//! The exact shape of every request the clients build: URL, query, headers and JSON body.

use std::sync::Arc;

use callfeed::cloud::call::{
    CallClient, DeleteCallback, EndCall, GetCallInfo, GetCallback, GetRecordByCallId,
    GetRecordByFilter, ImCredentials, MediaType, OfflinePushInfo, SetCallback, StartCallByRobot,
};
use callfeed::cloud::http::{HttpSettings, PreparedRequest, Transport};
use callfeed::cloud::ingest::{
    ApiCredentials, DescribeStreamIngest, IngestClient, StartStreamIngest, StopStreamIngest,
    UpdateStreamIngest,
};
use callfeed::cloud::usersig;
use callfeed::cloud::{RoomRef, UserId};
use serde_json::{Value, json};

const SDKAPPID: u64 = 1_400_000_000;
const APP_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const NOW: u64 = 1_700_000_000;

fn transport() -> Arc<Transport> {
    Arc::new(Transport::new(HttpSettings::default()).unwrap())
}

fn call_client() -> CallClient {
    CallClient::new(
        transport(),
        url::Url::parse("https://console.tim.qq.com/").unwrap(),
        ImCredentials {
            sdkappid: SDKAPPID,
            secret_key: APP_KEY.into(),
            admin: UserId::new("admin", "administrator").unwrap(),
        },
    )
}

fn ingest_client() -> IngestClient {
    IngestClient::new(
        transport(),
        url::Url::parse("https://trtc.tencentcloudapi.com/").unwrap(),
        "ap-singapore".into(),
        ApiCredentials {
            secret_id: "AKIDEXAMPLEsecretid0000000000000000".into(),
            secret_key: "EXAMPLEsecretkey00000000000000".into(),
        },
        SDKAPPID,
        APP_KEY.into(),
    )
}

fn body(req: &PreparedRequest) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}

fn user(s: &str) -> UserId {
    UserId::new("test", s).unwrap()
}

fn start_call() -> StartCallByRobot {
    StartCallByRobot {
        robot: user("robot"),
        callees: vec![user("jack")],
        timeout_ms: 300_000,
        media_type: MediaType::Video,
        room: Some(RoomRef::string("roomid-test").unwrap()),
        user_data: Some("userdata-12345687".into()),
        offline_push: Some(OfflinePushInfo {
            push_flag: Some(0),
            title: Some("push title".into()),
            desc: Some("push body".into()),
            ext: Some("{\"entity\":{\"key1\":\"value1\"}}".into()),
            extra: Default::default(),
        }),
    }
}

#[test]
fn im_url_carries_admin_auth_in_the_query() {
    let req = call_client()
        .prepare_at(&start_call(), NOW, 99_999_999)
        .unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url.path(),
        "/v4/call_engine_http_srv/start_call_by_robot"
    );
    let query: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    let names: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["sdkappid", "identifier", "usersig", "random", "contenttype"]
    );
    assert_eq!(query[0].1, "1400000000");
    assert_eq!(query[1].1, "administrator");
    assert_eq!(query[3].1, "99999999");
    assert_eq!(query[4].1, "json");
    // The admin UserSig is the reference vector V2 for this admin and time.
    assert_eq!(
        query[2].1,
        usersig::generate(
            SDKAPPID,
            APP_KEY.as_bytes(),
            "administrator",
            86_400,
            NOW,
            None
        )
    );
    assert!(
        req.url.as_str().contains("usersig=eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM-Myi0uKEkvyi2BKilOyEwsKMlOACgxNDKAAKpdaUZBZlAqUsTAzgQuWZOaChAzN0RQXZ6aDLKn0cUzVLjcPD00NLS1MCrPM0A*JMLcoNTLMD3HP1M60jCowLDUOKMiLNDOwVaoFAD4PNPI_&"),
        "the UserSig alphabet needs no percent-encoding: {}",
        req.url
    );
    assert_eq!(req.header("Content-Type"), Some("application/json"));
    assert_eq!(req.header("Host"), Some("console.tim.qq.com"));
}

#[test]
fn start_call_by_robot_body() {
    let req = call_client().prepare_at(&start_call(), NOW, 1).unwrap();
    assert_eq!(
        body(&req),
        json!({"Robot_Account":"robot","CalleeList_Account":["jack"],"Timeout":300000,
               "UserData":"userdata-12345687",
               "CallInfo":{"MediaType":"Video","RoomId":"roomid-test","RoomIdType":2},
               "OfflinePushInfo":{"PushFlag":0,"Title":"push title","Desc":"push body",
                 "Ext":"{\"entity\":{\"key1\":\"value1\"}}"}})
    );
    let numeric = StartCallByRobot {
        room: Some(RoomRef::numeric(12345).unwrap()),
        media_type: MediaType::Audio,
        user_data: None,
        offline_push: None,
        ..start_call()
    };
    let req = call_client().prepare_at(&numeric, NOW, 1).unwrap();
    assert_eq!(
        body(&req)["CallInfo"],
        json!({"MediaType":"Audio","RoomId":"12345","RoomIdType":1}),
        "RoomId is a JSON string even for numeric rooms"
    );
}

#[test]
fn call_id_commands_bodies_and_paths() {
    let client = call_client();
    let cases: [(PreparedRequest, &str); 3] = [
        (
            client
                .prepare_at(
                    &EndCall {
                        call_id: "c-1".into(),
                    },
                    NOW,
                    1,
                )
                .unwrap(),
            "/v4/call_engine_http_srv/end_call",
        ),
        (
            client
                .prepare_at(
                    &GetCallInfo {
                        call_id: "c-1".into(),
                    },
                    NOW,
                    1,
                )
                .unwrap(),
            "/v4/call_engine_http_srv/get_call_info",
        ),
        (
            client
                .prepare_at(
                    &GetRecordByCallId {
                        call_id: "c-1".into(),
                    },
                    NOW,
                    1,
                )
                .unwrap(),
            "/v4/call_record_http_srv/get_record_by_callid",
        ),
    ];
    for (req, path) in cases {
        assert_eq!(req.url.path(), path);
        assert_eq!(body(&req), json!({"CallId":"c-1"}));
    }
}

#[test]
fn record_filter_body() {
    let client = call_client();
    let req = client
        .prepare_at(&GetRecordByFilter::default(), NOW, 1)
        .unwrap();
    assert_eq!(
        req.url.path(),
        "/v4/call_record_http_srv/get_record_by_filter"
    );
    assert_eq!(body(&req), json!({}));
    let filter = GetRecordByFilter {
        start_time: Some(1_699_000_000),
        end_time: Some(1_700_000_000),
        number_per_page: Some(20),
        page: Some(2),
        call_result: Some("NormalEnd".into()),
        call_type: Some("SingleCall".into()),
    };
    assert_eq!(
        body(&client.prepare_at(&filter, NOW, 1).unwrap()),
        json!({"StartTime":1699000000,"EndTime":1700000000,"NumberPerPage":20,"Page":2,
               "CallResult":"NormalEnd","CallType":"SingleCall"})
    );
}

#[test]
fn callback_config_bodies() {
    let client = call_client();
    let set = SetCallback {
        url: "https://example.com/callback".into(),
        commands: vec![
            "Call.CallbackAfterStartCall".into(),
            "Call.CallbackAfterEndCall".into(),
            "Call.CallbackAfterMemberChanged".into(),
        ],
    };
    let req = client.prepare_at(&set, NOW, 1).unwrap();
    assert_eq!(req.url.path(), "/v4/call_config/set_callback");
    assert_eq!(
        body(&req),
        json!({"Url":"https://example.com/callback",
               "CallbackCommandList":["Call.CallbackAfterStartCall","Call.CallbackAfterEndCall","Call.CallbackAfterMemberChanged"]})
    );
    let get = client.prepare_at(&GetCallback, NOW, 1).unwrap();
    assert_eq!(get.url.path(), "/v4/call_config/get_callback");
    assert_eq!(&get.body[..], b"{}", "an empty body is sent as {{}}");
    let delete = client.prepare_at(&DeleteCallback, NOW, 1).unwrap();
    assert_eq!(delete.url.path(), "/v4/call_config/delete_callback");
    assert_eq!(&delete.body[..], b"{}");
}

#[test]
fn start_stream_ingest_body_and_headers() {
    let mut start = StartStreamIngest::new(
        RoomRef::string("room-1").unwrap(),
        user("ingest_bot"),
        "https://example.com/live/stream.flv",
    );
    start.repeat_num = Some(1);
    let req = ingest_client().prepare_at(&start, NOW).unwrap();
    let b = body(&req);
    let sig = b["UserSig"].as_str().unwrap().to_owned();
    assert_eq!(
        b,
        json!({"SdkAppId":1400000000,"RoomId":"room-1","RoomIdType":0,"UserId":"ingest_bot",
               "UserSig":sig,"StreamUrl":"https://example.com/live/stream.flv","RepeatNum":1})
    );
    // The robot's UserSig is minted for the robot with the app key.
    usersig::verify(
        &sig,
        APP_KEY.as_bytes(),
        usersig::Expectation {
            sdkappid: SDKAPPID,
            identifier: "ingest_bot",
            now: NOW,
            userbuf: None,
        },
    )
    .unwrap();
    let names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "Authorization",
            "Content-Type",
            "Host",
            "X-TC-Action",
            "X-TC-Timestamp",
            "X-TC-Version",
            "X-TC-Region",
            "X-TC-RequestClient"
        ]
    );
    assert_eq!(req.header("X-TC-Action"), Some("StartStreamIngest"));
    assert_eq!(req.header("X-TC-Version"), Some("2019-07-22"));
    assert_eq!(req.header("X-TC-Region"), Some("ap-singapore"));
    assert_eq!(req.header("X-TC-Timestamp"), Some("1700000000"));
    assert_eq!(req.header("Host"), Some("trtc.tencentcloudapi.com"));
    assert!(
        req.header("Authorization").unwrap().starts_with(
            "TC3-HMAC-SHA256 Credential=AKIDEXAMPLEsecretid0000000000000000/2023-11-14/trtc/tc3_request, SignedHeaders=content-type;host, Signature="
        )
    );
    assert_eq!(req.url.as_str(), "https://trtc.tencentcloudapi.com/");

    let numeric = StartStreamIngest::new(
        RoomRef::numeric(12345).unwrap(),
        user("ingest_bot"),
        "rtmp://127.0.0.1/live/s",
    );
    let b = body(&ingest_client().prepare_at(&numeric, NOW).unwrap());
    assert_eq!(
        (b["RoomId"].clone(), b["RoomIdType"].clone()),
        (json!("12345"), json!(1))
    );
}

#[test]
fn start_stream_ingest_every_field() {
    let mut start = StartStreamIngest::new(
        RoomRef::numeric(7).unwrap(),
        user("bot"),
        "http://127.0.0.1:8080/s.flv",
    );
    start.user_sig = Some("given-sig".into());
    start.private_map_key = Some("pmk".into());
    start.seek_second = Some(5);
    start.auto_push = Some(true);
    start.repeat_num = Some(-1);
    start.max_duration_minutes = Some(60);
    start.volume = Some(150);
    start.enable_progress = Some(true);
    start.tempo = Some(1.5);
    start.idle_timeout_secs = Some(30);
    let b = body(&ingest_client().prepare_at(&start, NOW).unwrap());
    assert_eq!(
        b,
        json!({"SdkAppId":1400000000,"RoomId":"7","RoomIdType":1,"UserId":"bot",
               "UserSig":"given-sig","StreamUrl":"http://127.0.0.1:8080/s.flv",
               "PrivateMapKey":"pmk","SeekSecond":5,"AutoPush":true,"RepeatNum":-1,
               "MaxDuration":60,"Volume":150,"EnableProgress":true,"Tempo":1.5,"IdleTimeout":30})
    );
}

#[test]
fn stop_describe_update_bodies() {
    let client = ingest_client();
    let task = "HMLm5HWNuUAXSb0gTEOx0z1x+nLMZNjXrY3keyUSvu7uu8mF9O656uNtbUtvaWLkpMY134jTN2Ix4vuqgOJ68nQ8tho3ri";
    let stop = client
        .prepare_at(
            &StopStreamIngest {
                task_id: task.into(),
            },
            NOW,
        )
        .unwrap();
    assert_eq!(stop.header("X-TC-Action"), Some("StopStreamIngest"));
    assert_eq!(body(&stop), json!({"SdkAppId":1400000000,"TaskId":task}));
    let describe = client
        .prepare_at(
            &DescribeStreamIngest {
                task_id: task.into(),
            },
            NOW,
        )
        .unwrap();
    assert_eq!(describe.header("X-TC-Action"), Some("DescribeStreamIngest"));
    assert_eq!(
        body(&describe),
        json!({"SdkAppId":1400000000,"TaskId":task})
    );
    let update = client
        .prepare_at(
            &UpdateStreamIngest {
                task_id: task.into(),
                stream_url: Some("https://example.com/other.mp4".into()),
                volume: Some(80),
                is_pause: Some(true),
                enable_progress: None,
                tempo: None,
            },
            NOW,
        )
        .unwrap();
    assert_eq!(update.header("X-TC-Action"), Some("UpdateStreamIngest"));
    assert_eq!(
        body(&update),
        json!({"SdkAppId":1400000000,"TaskId":task,"StreamUrl":"https://example.com/other.mp4",
               "Volume":80,"IsPause":true})
    );
}

#[test]
fn bad_input_is_refused_with_field_value_and_range() {
    let client = call_client();
    let cases: Vec<(StartCallByRobot, &str)> = vec![
        (
            StartCallByRobot {
                callees: vec![],
                ..start_call()
            },
            "invalid CalleeList_Account `[]`: 1 to 8 callees",
        ),
        (
            StartCallByRobot {
                callees: (0..9).map(|i| user(&format!("u{i}"))).collect(),
                ..start_call()
            },
            "invalid CalleeList_Account `9 callees`",
        ),
        (
            StartCallByRobot {
                timeout_ms: 9_999,
                ..start_call()
            },
            "invalid Timeout `9999 ms`: 10000 to 600000 ms",
        ),
        (
            StartCallByRobot {
                timeout_ms: 600_001,
                ..start_call()
            },
            "invalid Timeout `600001 ms`",
        ),
        (
            StartCallByRobot {
                callees: vec![user("jack"), user("jack")],
                ..start_call()
            },
            "invalid CalleeList_Account `jack`: each callee once",
        ),
        (
            StartCallByRobot {
                user_data: Some("x".repeat(1001)),
                ..start_call()
            },
            "invalid UserData `1001 bytes`",
        ),
    ];
    for (cmd, expected) in cases {
        let err = client.prepare_at(&cmd, NOW, 1).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}\n  expected: {expected}");
    }
    let ingest = ingest_client();
    let mut bad_url = StartStreamIngest::new(
        RoomRef::string("r").unwrap(),
        user("bot"),
        "srt://example.com:9000",
    );
    let err = ingest.prepare_at(&bad_url, NOW).unwrap_err().to_string();
    assert!(err.contains("StreamUrl") && err.contains("srt"), "{err}");
    bad_url.stream_url = "https://example.com/a.flv".into();
    bad_url.repeat_num = Some(0);
    let err = ingest.prepare_at(&bad_url, NOW).unwrap_err().to_string();
    assert!(err.contains("RepeatNum `0`"), "{err}");
    bad_url.repeat_num = Some(3);
    bad_url.max_duration_minutes = Some(10);
    let err = ingest.prepare_at(&bad_url, NOW).unwrap_err().to_string();
    assert!(
        err.contains("MaxDuration") && err.contains("RepeatNum -1"),
        "{err}"
    );
    bad_url.max_duration_minutes = None;
    bad_url.tempo = Some(3.0);
    let err = ingest.prepare_at(&bad_url, NOW).unwrap_err().to_string();
    assert!(err.contains("Tempo"), "{err}");
}

#[test]
fn secrets_stay_out_of_debug() {
    let text = format!("{:?} {:?}", call_client(), ingest_client());
    for secret in [APP_KEY, "EXAMPLEsecretkey00000000000000"] {
        assert!(!text.contains(secret), "{text}");
    }
    let req = call_client().prepare_at(&start_call(), NOW, 1).unwrap();
    let shown = format!("{req:?}");
    assert!(!shown.contains("usersig"), "{shown}");
}
