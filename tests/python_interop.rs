//! Round trips with Tencent's official Python packages (PyPI `tls-sig-api-v2` and
//! `tencentcloud-sdk-python-common`): their signatures verify with ours, ours re-compute
//! independently, and every `--dry-run` request re-signs to the same bytes.
//!
//! Needs `python3` with both packages (`make setup` installs them).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::python_bin;
use callfeed::cloud::usersig::{self, Expectation};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/independent.py");
const SDKAPPID: &str = "1400000000";
const APP_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const SECRET_ID: &str = "AKIDEXAMPLEsecretid0000000000000000";
const SECRET_KEY: &str = "EXAMPLEsecretkey00000000000000";

fn python(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(python_bin())
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed: run `make setup`");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "independent.py {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn official_sdk_sigs_verify_with_ours() {
    let lines = python(&["make-sigs"], None);
    let mut seen = 0;
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let userbuf = v["userbuf"].as_str().map(|h| hex::decode(h).unwrap());
        let time = v["time"].as_u64().unwrap();
        let fields = usersig::verify(
            v["sig"].as_str().unwrap(),
            v["key"].as_str().unwrap().as_bytes(),
            Expectation {
                sdkappid: v["sdkappid"].as_u64().unwrap(),
                identifier: v["user"].as_str().unwrap(),
                now: time,
                userbuf: userbuf.as_deref(),
            },
        )
        .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(fields.expire, v["expire"].as_u64().unwrap());
        // And ours is the same string the SDK made.
        assert_eq!(
            usersig::generate(
                fields.sdkappid,
                v["key"].as_str().unwrap().as_bytes(),
                &fields.identifier,
                fields.expire,
                time,
                userbuf.as_deref()
            ),
            v["sig"].as_str().unwrap()
        );
        seen += 1;
    }
    assert_eq!(seen, 5);
}

#[test]
fn our_sigs_recompute_independently() {
    for (user, expire, now, userbuf) in [
        ("robot", 86_400u64, 1_764_000_000u64, None),
        ("a-b_c", 1, 1_600_000_000, Some(&b"\x00\x01binary\xff"[..])),
    ] {
        let sig = usersig::generate(
            1_400_000_000,
            APP_KEY.as_bytes(),
            user,
            expire,
            now,
            userbuf,
        );
        python(&["check-sig", APP_KEY, SDKAPPID, user, &sig], None);
    }
}

fn dry_run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_callfeed"))
        .args(["api", "--dry-run"])
        .args(args)
        .env_remove("CALLFEED_CONFIG")
        .env("CALLFEED_SDKAPPID", SDKAPPID)
        .env("CALLFEED_SDK_SECRET_KEY", APP_KEY)
        .env("CALLFEED_ADMIN", "administrator")
        .env("TENCENTCLOUD_SECRET_ID", SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
        .env("CALLFEED_DATA_CENTER", "singapore")
        .env_remove("CALLFEED_IM_ENDPOINT")
        .env_remove("CALLFEED_TRTC_ENDPOINT")
        .env_remove("CALLFEED_REGION")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_dry_run_resigns_with_the_official_sdk() {
    let commands: Vec<Vec<&str>> = vec![
        vec![
            "start-call",
            "--robot",
            "robot",
            "--to",
            "jack",
            "--room",
            "roomid-test",
            "--room-type",
            "string",
            "--media-type",
            "video",
        ],
        vec![
            "end-call",
            "--call-id",
            "35fd577d-1d10-4201-a40d-6d7316560986",
        ],
        vec![
            "get-call-info",
            "--call-id",
            "35fd577d-1d10-4201-a40d-6d7316560986",
        ],
        vec![
            "get-record",
            "--call-id",
            "35fd577d-1d10-4201-a40d-6d7316560986",
        ],
        vec!["get-records", "--per-page", "20", "--page", "1"],
        vec!["set-callback", "--url", "https://example.com/cb"],
        vec!["get-callback"],
        vec!["delete-callback"],
        vec![
            "start-ingest",
            "--room",
            "roomid-test",
            "--room-type",
            "string",
            "--user",
            "robot",
            "--url",
            "https://example.com/live/s.flv",
            "--repeat",
            "-1",
            "--max-duration",
            "30",
        ],
        vec!["stop-ingest", "--task-id", "HMLm5HWNuUAX+nLM-Z.x"],
        vec!["describe-ingest", "--task-id", "HMLm5HWNuUAX+nLM-Z.x"],
        vec![
            "update-ingest",
            "--task-id",
            "HMLm5HWNuUAX+nLM-Z.x",
            "--pause",
        ],
        vec![
            "start-publish-cdn",
            "--room",
            "1234",
            "--room-type",
            "numeric",
            "--agent-user",
            "mon_1234",
            "--user",
            "robot",
            "--url",
            "rtmp://media.example.com:1935/live/mon-key",
            "--video",
            "640x360",
        ],
        vec!["stop-publish-cdn", "--task-id", "HMLm5HWNuUAX+nLM-Z.x"],
    ];
    for args in commands {
        let request = dry_run(&args);
        let v: serde_json::Value = serde_json::from_str(&request).unwrap();
        assert_eq!(v["method"], "POST", "{args:?}");
        for secret in [APP_KEY, SECRET_KEY] {
            assert!(!request.contains(secret), "{args:?} printed a secret key");
        }
        // No UserSig is ever shown (they start `eJ`, zlib-compressed JSON in base64).
        assert!(
            !request.contains("eJ"),
            "{args:?} printed a UserSig: {request}"
        );
        let trtc = args[0].ends_with("ingest") || args[0].ends_with("publish-cdn");
        let needs_sig = args[0].starts_with("start-") || !trtc;
        assert_eq!(
            request.contains("redacted"),
            needs_sig,
            "{args:?}: {request}"
        );
        let verdict = python(&["resign", APP_KEY, SECRET_KEY], Some(&request));
        let verdict: serde_json::Value = serde_json::from_str(verdict.trim()).unwrap();
        assert_eq!(verdict["ok"], true, "{args:?}");
        let kind = if trtc { "tc3" } else { "im" };
        assert_eq!(verdict["kind"], kind, "{args:?}");
        if args[0] == "start-publish-cdn" {
            // A numeric room is RoomIdType 0 here (1 in StartStreamIngest).
            let body: serde_json::Value =
                serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
            assert_eq!(body["RoomIdType"], 0, "{body}");
            assert_eq!(body["PublishCdnParams"][0]["IsTencentCdn"], 0, "{body}");
        }
        if kind == "tc3" {
            assert!(
                v["url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://trtc.intl.tencentcloudapi.com/")
            );
        } else {
            assert!(
                v["url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://adminapisgp.im.qcloud.com/v4/")
            );
        }
    }
}
