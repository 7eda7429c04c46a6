//! Control-plane cost: UserSigs made and verified, and TC3 signatures, per second on one core.
//!
//! `make bench` runs it. Media benchmarks against ffmpeg join this folder with the engine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use callfeed::cloud::{tc3, usersig};

const KEY: &[u8] = b"5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// Runs `f` for about `budget` and returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_secs(2);
    let make = rate(budget, |n| {
        black_box(usersig::generate(
            1_400_000_000,
            KEY,
            "robot",
            86_400,
            1_700_000_000 + n,
            None,
        ));
    });
    let sig = usersig::generate(1_400_000_000, KEY, "robot", 86_400, 1_700_000_000, None);
    let verify = rate(budget, |_| {
        black_box(
            usersig::verify(
                &sig,
                KEY,
                usersig::Expectation {
                    sdkappid: 1_400_000_000,
                    identifier: "robot",
                    now: 1_700_000_000,
                    userbuf: None,
                },
            )
            .is_ok(),
        );
    });
    let body = br#"{"SdkAppId":1400000000,"RoomId":"room-1","RoomIdType":0,"UserId":"robot","StreamUrl":"https://example.com/live/stream.flv"}"#;
    let sign = rate(budget, |n| {
        black_box(tc3::sign(
            "EXAMPLEsecretkey00000000000000",
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
    println!("control plane, one core:");
    println!("  UserSig generate  {make:>10.0} /s");
    println!("  UserSig verify    {verify:>10.0} /s");
    println!("  TC3 sign          {sign:>10.0} /s");
}
