//! Spoken words (`tts:`), heard in the room: eSpeak NG's speech of the text, as long as
//! `espeak-ng -w` makes it and shaped like it, said once for every session that says the
//! same; hostile text is only text; markup and oversized or controlling text refused by
//! field before anything rings.

use std::time::Duration;

use crate::common::serve::*;
use crate::common::*;
use callfeed::emulator::Emulator;
use serde_json::{Value, json};

/// `espeak-ng -w` of `text` with its defaults, as 16-bit mono samples at its own rate.
fn espeak_samples(dir: &std::path::Path, text: &str) -> (Vec<i16>, u32) {
    let wav = dir.join("reference.wav");
    let ok = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed: run `make setup`")
        .success();
    assert!(ok);
    let reader = hound_like_read(&wav);
    (reader, 22050)
}

/// The samples of a 16-bit mono WAV (eSpeak NG's, or ffmpeg's at 22050 Hz), its header
/// skipped to the `data` chunk.
fn hound_like_read(path: &std::path::Path) -> Vec<i16> {
    let bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk")
        + 8;
    bytes[at..]
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect()
}

/// Loudness every 20 ms.
fn envelope(samples: &[i16], rate: u32) -> Vec<f64> {
    samples
        .chunks((rate / 50) as usize)
        .map(|c| (c.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// The best correlation of two envelopes within a quarter second of shift either way.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let pearson = |x: &[f64], y: &[f64]| {
        let n = x.len().min(y.len());
        let (x, y) = (&x[..n], &y[..n]);
        let (mx, my) = (
            x.iter().sum::<f64>() / n as f64,
            y.iter().sum::<f64>() / n as f64,
        );
        let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
        let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
        cov / (vx * vy).sqrt().max(f64::EPSILON)
    };
    (0..=12)
        .flat_map(|lag| {
            [
                pearson(&a[lag.min(a.len())..], b),
                pearson(a, &b[lag.min(b.len())..]),
            ]
        })
        .fold(f64::MIN, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoken_words_reach_the_room_as_espeak_says_them_and_are_said_once() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A cache of its own: words another run spoke are not in it.
    let cache = dir.path().join("cache");
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.driver.cache_dir = cache.clone();
    })
    .await;
    let text = "one two three";
    let (reference, rate) = espeak_samples(dir.path(), text);
    let reference_ms = reference.len() as f64 * 1000.0 / f64::from(rate);

    // Played once: the room hears as long as eSpeak NG speaks.
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": format!("tts:{text}"), "room": "words-1",
                     "media_type": "audio"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let ended = until_ended(&api.base, TOKEN, &id, Duration::from_secs(30)).await;
    assert_eq!(ended["report"]["result"], "completed", "{ended:#}");
    let tasks = emulator_list(&emulator, "tasks").await;
    let task = tasks
        .iter()
        .find(|t| t["room_id"] == "words-1")
        .expect("the room's task");
    let heard = task["audio_ms"].as_f64().unwrap_or_default();
    assert!(
        (heard - reference_ms).abs() <= reference_ms * 0.05,
        "the room heard {heard} ms, eSpeak NG speaks {reference_ms} ms: {task:#}"
    );
    let spoken = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        std::fs::read_dir(cache.join("speech"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.clone(), p.metadata().unwrap().modified().unwrap()))
            .collect()
    };
    let first = spoken();
    assert_eq!(first.len(), 1, "{first:?}");

    // The same words again, looping: not spoken again; what the cloud pulls is shaped like
    // eSpeak NG's own speech.
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": format!("tts:{text}"), "room": "words-2",
                     "media_type": "audio", "loop_forever": true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let running = api
        .until(
            &format!("/v1/sessions/{id}"),
            Duration::from_secs(20),
            |s| s["status"]["phase"] == "ingesting",
        )
        .await;
    assert_eq!(spoken(), first, "said once: the same file, not made again");
    let url = running["status"]["stream_url"].as_str().unwrap().to_owned();
    let pulled = dir.path().join("pulled.wav");
    ffmpeg(&format!(
        "-i {url} -t {:.2} -ac 1 -ar 22050 -c:a pcm_s16le {}",
        reference_ms / 1000.0,
        pulled.display()
    ));
    let r = correlation(
        &envelope(&hound_like_read(&pulled), 22050),
        &envelope(&reference, rate),
    );
    assert!(
        r >= 0.9,
        "the pulled speech correlates {r:.3} with eSpeak NG's"
    );
    let _ = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_words_are_only_words_and_markup_or_too_much_is_refused_by_field() {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |_| {}).await;
    // Quotes, a shell's substitutions, a flag: spoken, nothing run.
    let marker = dir.path().join("pwned");
    let hostile = format!(
        "tts:\"; touch {m}; $(touch {m}) `touch {m}` -w {m} --help",
        m = marker.display()
    );
    let (status, created) = api
        .post(json!({"to": ["jack"], "media": hostile, "room": "words-3", "media_type": "audio"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let ended = until_ended(&api.base, TOKEN, &id, Duration::from_secs(60)).await;
    assert_eq!(ended["report"]["result"], "completed", "{ended:#}");
    assert!(!marker.exists(), "the text ran as a command");

    for media in [
        "tts:<speak>hello <break time=\"3s\"/></speak>".to_owned(),
        format!("tts:{}", "a".repeat(6000)),
        "tts:a\u{1b}[2Jb".to_owned(),
        "tts:hello?voice=$(reboot)".to_owned(),
        "tts:".to_owned(),
    ] {
        let (status, refused) = api
            .post(json!({"to": ["jack"], "media": media, "room": "words-4", "media_type": "audio"}))
            .await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["field"], "media", "{refused}");
    }
    let calls: Vec<Value> = emulator_list(&emulator, "calls").await;
    assert!(
        calls.iter().all(|c| c["room_id"] != "words-4"),
        "nothing rang for a refused text"
    );
}
