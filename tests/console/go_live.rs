//! "Go live from this browser": headless Chromium with a fake camera and a microphone that
//! plays a 440 Hz tone publishes to a WHIP feed from the console (both ends on 127.0.0.1),
//! the operator rings jack with that feed from the new-session form, and the room sees the
//! camera and hears the tone; a closed tab puts the call on the slate, and publishing again
//! from a new tab to the same feed brings media back in the same call.

use std::time::Duration;

use serde_json::Value;

use super::browser::{Browser, errors};
use super::http::request;
use super::{TOKEN, serve};

/// Five seconds of a 440 Hz tone as a 48 kHz mono WAV (what the fake microphone plays, over
/// and over).
fn tone_wav(path: &std::path::Path) {
    let rate = 48_000u32;
    let samples: Vec<i16> = (0..rate * 5)
        .map(|i| {
            ((i as f64 * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 12_000.0) as i16
        })
        .collect();
    let data = samples.len() as u32 * 2;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, wav).unwrap();
}

async fn feed(api: &str, id: &str) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(
        reqwest::Method::GET,
        &format!("{api}/v1/feeds/{id}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn until_feed(api: &str, id: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let f = feed(api, id).await;
        if done(&f) {
            return f;
        }
        assert!(std::time::Instant::now() < deadline, "{f:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens Go live, waits for the camera's picture and the microphone's level, and publishes
/// (to the feed `existing`, or a new one); the feed's id.
async fn go_live(browser: &Browser, existing: Option<&str>) -> String {
    browser.click("#nav a[href='#/live']").await;
    browser
        .until(
            "the camera's picture and the microphone's level",
            Duration::from_secs(15),
            "const v = document.getElementById('live-preview'); const m = document.getElementById('live-level'); return v && v.readyState >= 2 && m.value > 0.01;",
        )
        .await;
    if let Some(id) = existing {
        browser
            .until(
                "the feed among the targets",
                Duration::from_secs(5),
                &format!("return [...document.querySelectorAll('#live-target option')].some(o => o.value === {id:?})"),
            )
            .await;
        browser
            .js(&format!("const t = document.getElementById('live-target'); t.value = {id:?}; return t.value;"))
            .await;
    }
    // A closed tab's session holds the feed until its silence tells (2 s): the page says
    // 409 until then, and the operator presses Go live again.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        browser.click("#go-live").await;
        let said = browser
            .until(
                "the page live",
                Duration::from_secs(20),
                "const s = document.getElementById('live-status'); if (s.dataset.error) { const e = s.dataset.error; delete s.dataset.error; return 'ERROR ' + e; } return s.dataset.feed || null;",
            )
            .await;
        let said = said.as_str().unwrap().to_owned();
        if !said.starts_with("ERROR") {
            return said;
        }
        assert!(
            said.contains("(409)") && std::time::Instant::now() < deadline,
            "{said}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_goes_live_from_the_browser_and_rings_jack_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a440.wav");
    tone_wav(&wav);
    let (_serve, api) = serve().await;
    let fake_media = [
        "--use-fake-ui-for-media-stream".to_owned(),
        "--use-fake-device-for-media-stream".to_owned(),
        format!("--use-file-for-fake-audio-capture={}", wav.display()),
        "--allow-loopback-in-peer-connection".to_owned(),
    ];
    let browser = Browser::start_with(&fake_media).await;
    browser.open_sign_in(&api).await;
    browser.sign_in(TOKEN).await;
    let id = go_live(&browser, None).await;
    let shown = until_feed(&api, &id, Duration::from_secs(20), |f| f["state"] == "live").await;
    assert_eq!(shown["kind"], "whip");

    // Ring jack with it: the form has the feed chosen.
    browser.click("#ring-with-feed").await;
    let media = browser
        .until(
            "the form with the feed",
            Duration::from_secs(5),
            "const f = document.getElementById('new-session'); return f && f.elements.media.value.startsWith('feed:') ? f.elements.media.value : null;",
        )
        .await;
    assert_eq!(media, Value::String(format!("feed:{id}")));
    browser.click("#new-session button[type=submit]").await;
    browser
        .until_text("#session-phase", "ingesting", Duration::from_secs(30))
        .await;
    let hz = browser
        .until_hz("the room's tone", "[data-fact=room_tone]")
        .await;
    assert!((hz - 440.0).abs() < 30.0, "the room heard {hz} Hz");
    let session = browser
        .js("return decodeURIComponent(location.hash.slice(4))")
        .await;
    let session = session.as_str().unwrap().to_owned();

    // The tab closes: the feed is lost, the call stays. A new tab publishes to the same feed.
    let first = browser.client.window().await.unwrap();
    let second = browser.client.new_window(true).await.unwrap();
    browser.client.close_window().await.unwrap();
    let _ = first;
    browser
        .client
        .switch_to_window(second.handle)
        .await
        .unwrap();
    until_feed(&api, &id, Duration::from_secs(5), |f| f["state"] == "lost").await;
    browser.open_sign_in(&api).await;
    browser.sign_in(TOKEN).await;
    let again = go_live(&browser, Some(&id)).await;
    assert_eq!(again, id);
    until_feed(&api, &id, Duration::from_secs(20), |f| {
        f["state"] == "live" && f["sessions"] == serde_json::json!([session])
    })
    .await;
    browser.click("#stop-live").await;
    until_feed(&api, &id, Duration::from_secs(5), |f| {
        f["publisher"].is_null()
    })
    .await;
    // Only the 409s the new tab was answered while the closed one still held the feed.
    let logged = browser.console_entries().await;
    let unexpected: Vec<_> = errors(&logged)
        .into_iter()
        .filter(|e| {
            let m = e["message"].as_str().unwrap_or_default();
            !(m.contains("/v1/whip/") && m.contains("409"))
        })
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
