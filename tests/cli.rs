//! The command line as a user meets it: bad input refused before anything is sent, with a
//! message naming the field, the value and the allowed range; secrets never printed;
//! UserSig making and checking; real requests to a local server.

use std::process::Output;

use crate::common::*;
use tokio::process::Command;

const V1_PY: &str = "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkKjIT87NK82CSxSnZiQUFmSlAKUMTAyiAyqVWFGQWpYJkTE1NjRDiJZm5YFFzNPXFmekgG3zKHM1T9D3LzdODi-OKs8vCqpxcAvydnV2SSv2cy03cPcpDnA2SMgu0nUxslWoBHdYzUg__";
const V1_NODE: &str = "eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwhWZiflZpXlQqeKU7MSCgswUJStDEwMogMiUZOamKlkZmqOKplYUZBaBxE1NTY3gosWZ6UpWSj5ljuYp*p7l5unBxXnF2WVhVU4uAf7Ozi5JpX7O5SbuHuUhzgZJmQXaTia2SrUAohcx8g__";

/// `callfeed` with the test app's credentials and both endpoints at `base`.
fn callfeed(base: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callfeed"));
    cmd.env_remove("CALLFEED_CONFIG")
        .env_remove("CALLFEED_DATA_CENTER")
        .env_remove("CALLFEED_REGION")
        .env_remove("CALLFEED_ADMIN")
        .env("CALLFEED_SDKAPPID", SDKAPPID.to_string())
        .env("CALLFEED_SDK_SECRET_KEY", APP_KEY)
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env("CALLFEED_IM_ENDPOINT", base)
        .env("CALLFEED_TRTC_ENDPOINT", base)
        .env("CALLFEED_HTTP_TIMEOUT_MS", "2000");
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_sent() {
    let server = ScriptedServer::start(vec![]).await;
    let long_user = "u".repeat(33);
    let nine_callees: Vec<String> = (0..9)
        .flat_map(|i| ["--to".into(), format!("c{i}")])
        .collect();
    let call = |extra: &[&str]| {
        let mut v = vec!["api", "start-call", "--robot", "robot"];
        v.extend_from_slice(extra);
        v.into_iter().map(str::to_owned).collect::<Vec<String>>()
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            call(&["--to", "jack", "--room", "r", "--room-type", "int"]),
            vec!["int", "string", "numeric"],
        ),
        (
            call(&["--to", "jack", "--room", "0", "--room-type", "numeric"]),
            vec!["RoomId `0`", "1 to 4294967294"],
        ),
        (
            call(&[
                "--to",
                "jack",
                "--room",
                "4294967295",
                "--room-type",
                "numeric",
            ]),
            vec!["RoomId `4294967295`", "1 to 4294967294"],
        ),
        (
            call(&["--to", &long_user, "--room", "r"]),
            vec!["--to", &long_user, "33 bytes", "1 to 32 bytes"],
        ),
        (
            call(&["--to", "jack smith", "--room", "r"]),
            vec!["`jack smith`", "A-Z a-z 0-9 _ -"],
        ),
        (
            call(&["--to", "jack", "--room", "r", "--ring-timeout", "5"]),
            vec!["Timeout `5000 ms`", "10000 to 600000 ms"],
        ),
        (
            call(&["--to", "jack", "--room", "r", "--ring-timeout", "601"]),
            vec!["Timeout `601000 ms`", "10000 to 600000 ms"],
        ),
        (
            call(&["--room", "r"]),
            vec!["CalleeList_Account `[]`", "1 to 8 callees"],
        ),
        (
            {
                let mut v = call(&["--room", "r"]);
                v.extend(nine_callees.clone());
                v
            },
            vec!["CalleeList_Account `9 callees`", "1 to 8"],
        ),
        (
            [
                "api",
                "start-ingest",
                "--room",
                "r",
                "--user",
                "robot",
                "--url",
                "srt://h:9000/x",
            ]
            .map(str::to_owned)
            .to_vec(),
            vec![
                "StreamUrl",
                "srt://h:9000/x",
                "http://, https:// or rtmp://",
            ],
        ),
        (
            [
                "api",
                "start-ingest",
                "--room",
                "r",
                "--user",
                "robot",
                "--url",
                "https://h/x.flv",
                "--repeat",
                "0",
            ]
            .map(str::to_owned)
            .to_vec(),
            vec!["RepeatNum `0`", "-1 (loop) or 1 to 1000"],
        ),
    ];
    for (args, needles) in cases {
        let out = callfeed(&server.url()).args(&args).output().await.unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{args:?}: `{needle}` not in: {stderr}"
            );
        }
    }
    assert_eq!(server.count(), 0, "nothing may reach the cloud");
}

#[tokio::test]
async fn a_missing_credential_is_named_by_env_and_toml() {
    let server = ScriptedServer::start(vec![]).await;
    let out = callfeed(&server.url())
        .env_remove("TENCENTCLOUD_SECRET_KEY")
        .args(["api", "stop-ingest", "--task-id", "t1"])
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TENCENTCLOUD_SECRET_KEY") && stderr.contains("`secret_key`"),
        "{stderr}"
    );
    let out = callfeed(&server.url())
        .env_remove("CALLFEED_SDK_SECRET_KEY")
        .args(["api", "get-callback"])
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(stderr.contains("CALLFEED_SDK_SECRET_KEY"), "{stderr}");
    assert_eq!(server.count(), 0);

    // With none set, all of them are named at once, with the way to go on without any.
    let mut call = callfeed(&server.url());
    for env in [
        "CALLFEED_SDKAPPID",
        "CALLFEED_SDK_SECRET_KEY",
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
    ] {
        call.env_remove(env);
    }
    let out = call
        .args(["call", "--to", "jack", "--room", "r", "--media", "test:"])
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "set CALLFEED_SDKAPPID, CALLFEED_SDK_SECRET_KEY, TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"
        ) && stderr.contains("--emulator"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");
    assert_eq!(server.count(), 0);
}

/// The JSON line a started `callfeed emulator` prints when it is ready.
async fn endpoints_line(child: &mut tokio::process::Child) -> serde_json::Value {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .expect("the emulator prints its endpoints when ready")
        .unwrap()
        .unwrap();
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn the_emulator_command_needs_no_account() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_callfeed"))
        .env_remove("CALLFEED_CONFIG")
        .env_remove("CALLFEED_SDKAPPID")
        .env_remove("CALLFEED_SDK_SECRET_KEY")
        .env_remove("TENCENTCLOUD_SECRET_ID")
        .env_remove("TENCENTCLOUD_SECRET_KEY")
        .args(["emulator", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let v = endpoints_line(&mut child).await;
    assert!(v["im_endpoint"].as_str().is_some(), "{v}");
}

#[tokio::test]
async fn config_prints_no_secret() {
    let out = callfeed("http://127.0.0.1:9/")
        .arg("config")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    for secret in [APP_KEY, SECRET_ID, SECRET_KEY] {
        assert!(!stdout.contains(secret), "leaked: {stdout}");
    }
    assert!(
        stdout.contains("sdk_secret_key = \"<redacted>\"  # from CALLFEED_SDK_SECRET_KEY"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sdkappid = 1400000000  # from CALLFEED_SDKAPPID"),
        "{stdout}"
    );
    assert!(
        stdout.contains("im_endpoint = \"http://127.0.0.1:9/\""),
        "{stdout}"
    );
}

#[tokio::test]
async fn usersig_make_and_check() {
    let out = callfeed("http://127.0.0.1:9/")
        .args([
            "usersig",
            "xiaojun",
            "--expire",
            "15552000",
            "--time",
            "1700000000",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(text(&out).0.trim(), V1_PY);

    let out = callfeed("http://127.0.0.1:9/")
        .args([
            "usersig",
            "--verify",
            V1_NODE,
            "--user",
            "xiaojun",
            "--time",
            "1700000000",
        ])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["fields"]["expires_at"], 1_715_552_000u64);

    let out = callfeed("http://127.0.0.1:9/")
        .args([
            "usersig",
            "--verify",
            V1_NODE,
            "--user",
            "jack",
            "--time",
            "1700000000",
        ])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["code"], 70013);
    assert!(stderr.contains("`xiaojun`, not `jack`"), "{stderr}");

    let out = callfeed("http://127.0.0.1:9/")
        .args(["usersig", "--verify", V1_NODE, "--user", "xiaojun"])
        .output()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(v["code"], 70001, "the vector expired in 2024");
}

#[tokio::test]
async fn api_commands_reach_the_server_and_print_the_answer() {
    let server = ScriptedServer::start(vec![
        Answer::json(im_ok(
            serde_json::json!({"CallId":"35fd577d-1d10-4201-a40d-6d7316560986",
            "CallResult":[{"Callee_Account":"jack","ResultCode":0}]}),
        )),
        Answer::json(api_ok(serde_json::json!({"Status":"InProgress"}))),
        Answer::json(im_fail(101004, "call not exist")),
    ])
    .await;
    let out = callfeed(&server.url())
        .args([
            "api",
            "start-call",
            "--robot",
            "robot",
            "--to",
            "jack",
            "--room",
            "12345",
            "--room-type",
            "numeric",
        ])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["response"]["CallId"],
        "35fd577d-1d10-4201-a40d-6d7316560986"
    );
    let got = server.received();
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["CallInfo"]["RoomIdType"], 1);
    assert_eq!(body["CallInfo"]["RoomId"], "12345");
    assert_eq!(body["Timeout"], 30_000);

    let out = callfeed(&server.url())
        .args(["api", "describe-ingest", "--task-id", "t-1"])
        .output()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(v["response"]["Status"], "InProgress");

    let out = callfeed(&server.url())
        .args(["api", "end-call", "--call-id", "gone"])
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("101004") && stderr.contains("already ended"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(APP_KEY) && !stderr.contains("usersig="),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_emulator_command_prints_its_endpoints_and_serves() {
    let mut child = callfeed("http://127.0.0.1:9/")
        .args(["emulator", "--listen", "127.0.0.1:0", "--pace", "fast"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let v = endpoints_line(&mut child).await;
    let im = v["im_endpoint"].as_str().unwrap();
    assert_eq!(v["trtc_endpoint"], im, "one port serves both APIs");
    assert_eq!(v["control"], format!("{im}/emulator/v1"));
    // The client, configured with the same credentials, talks to it.
    let out = callfeed(im)
        .args(["api", "get-callback"])
        .output()
        .await
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(stderr.contains("100301"), "{stderr}");
    let out = callfeed(im)
        .args(["api", "describe-ingest", "--task-id", "none"])
        .output()
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["response"]["Status"], "NotExist");
    // SIGTERM ends it cleanly.
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("the emulator exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn completions_and_the_manual_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_callfeed"))
            .args(["completions", shell])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["push", "probe", "audio-track", "1080p"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_callfeed"))
        .arg("man")
        .output()
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".SH NAME") && page.contains("probe"),
        "{page}"
    );
}

#[tokio::test]
async fn config_shows_every_section() {
    let out = Command::new(env!("CARGO_BIN_EXE_callfeed"))
        .env_remove("CALLFEED_CONFIG")
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
        .arg("config")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "admin = \"administrator\"",
        "[emulator]",
        "pace = \"realtime\"  # from the config file",
        "default_behaviour = { action = \"answer\", after_ms = 1000 }",
        "[pipelines]",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}
