//! Throughput of the control plane: signatures per second on one core, and call + ingest
//! requests per second against the in-process emulator with client-side limits off.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::tools::Bench;

const KEY: &[u8] = b"5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

pub(crate) fn control_plane(_: &Bench) -> Value {
    use callfeed::cloud::{tc3, usersig};
    let usersigs = rate(&mut |n| {
        std::hint::black_box(usersig::generate(
            1_400_000_000,
            KEY,
            "robot",
            86_400,
            1_700_000_000 + n,
            None,
        ));
    });
    let body = br#"{"SdkAppId":1400000000,"TaskId":"t"}"#;
    let tc3s = rate(&mut |n| {
        std::hint::black_box(tc3::sign(
            "secret",
            &tc3::SignInput {
                method: "POST",
                canonical_uri: "/",
                canonical_query: "",
                signed_headers: &[
                    ("content-type", "application/json"),
                    ("host", "trtc.tencentcloudapi.com"),
                ],
                payload: Some(body),
                timestamp: 1_700_000_000 + n as i64,
                service: "trtc",
            },
        ));
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let requests = runtime.block_on(requests_per_second());
    json!({
        "usersig_per_second_one_core": usersigs,
        "tc3_signatures_per_second_one_core": tc3s,
        "call_and_ingest_requests_per_second_against_the_emulator": requests,
    })
}

/// Calls of `f` per second over 2 s.
fn rate(f: &mut dyn FnMut(u64)) -> f64 {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        f(n);
        n += 1;
    }
    (n as f64 / started.elapsed().as_secs_f64()).round()
}

/// Signed call + ingest requests per second from 8 workers over 3 s against the emulator.
async fn requests_per_second() -> f64 {
    use callfeed::cloud::call::{CallClient, ImCredentials};
    use callfeed::cloud::http::{HttpSettings, Transport};
    use callfeed::cloud::ingest::{ApiCredentials, IngestClient};
    let key = std::str::from_utf8(KEY).unwrap();
    let emulator = callfeed::emulator::Emulator::start(
        callfeed::emulator::EmulatorConfig {
            sdkappid: 1_400_000_000,
            sdk_secret_key: key.into(),
            admin: "administrator".into(),
            secret_id: "AKIDbench".into(),
            secret_key: "benchsecret".into(),
            pace: callfeed::emulator::Pace::Fast,
            default_behaviour: callfeed::emulator::Behaviour::NeverAnswer,
            behaviours: Default::default(),
            trtc_callback: None,
            record_delay: Duration::ZERO,
            reconnect_delays: vec![Duration::ZERO],
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let base = url::Url::parse(&format!("{}/", emulator.endpoints().im_endpoint)).unwrap();
    let transport = Arc::new(
        Transport::new(HttpSettings {
            rate_limits: false,
            max_attempts: 1,
            ..HttpSettings::default()
        })
        .unwrap(),
    );
    let calls = CallClient::new(
        transport.clone(),
        base.clone(),
        ImCredentials {
            sdkappid: 1_400_000_000,
            secret_key: key.into(),
            admin: callfeed::cloud::UserId::new("a", "administrator").unwrap(),
        },
    );
    let ingest = IngestClient::new(
        transport,
        base,
        "ap-singapore".into(),
        ApiCredentials {
            secret_id: "AKIDbench".into(),
            secret_key: "benchsecret".into(),
        },
        1_400_000_000,
        key.into(),
    );
    let started = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (calls, ingest, done) = (calls.clone(), ingest.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            while started.elapsed() < Duration::from_secs(3) {
                // The emulator answers 101004 / NotExist: a full signed round trip each.
                let _ = calls.get_call_info(&format!("c{w}")).await;
                let _ = ingest.describe("t").await;
                done.fetch_add(2, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    emulator.shutdown().await;
    rate.round()
}
