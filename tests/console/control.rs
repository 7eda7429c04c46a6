//! Changing a bound call from its page in the console: the volume slider, Pause and
//! Resume, spoken words queued with a mark, and the queue as it plays — each heard as the
//! API reports it, with nothing wrong in the page.

use std::time::Duration;

use serde_json::{Value, json};

use super::browser::{Browser, errors};
use super::{TOKEN, serve};

/// The session as the API shows it, once `done` holds (at most 15 s).
async fn session_until(api: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = reqwest::Client::new()
            .get(format!("{api}/v1/sessions/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let s: Value = serde_json::from_str(&text).unwrap();
        if done(&s) {
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "{s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_turns_a_call_down_pauses_it_and_queues_words_from_its_page() {
    let (_serve, api) = serve().await;
    let request = json!({"to": ["jack"], "media": "test:black+tone=440",
        "room": "console-control", "media_type": "audio", "loop_forever": true});
    let text = reqwest::Client::new()
        .post(format!("{api}/v1/sessions"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    session_until(&api, &id, |s| s["status"]["phase"] == "ingesting").await;

    let browser = Browser::start().await;
    browser.open_sign_in(&api).await;
    browser.sign_in(TOKEN).await;
    browser
        .js(&format!("location.hash = '#/s/{id}'; return true"))
        .await;
    browser
        .until(
            "the controls of a bound call",
            Duration::from_secs(15),
            "const c = document.getElementById('control'); return c && !c.hidden;",
        )
        .await;

    // The slider at half.
    browser
        .js("const v = document.getElementById('control-volume'); v.value = 50; v.dispatchEvent(new Event('input')); v.dispatchEvent(new Event('change')); return true;")
        .await;
    session_until(&api, &id, |s| s["status"]["volume"] == 50).await;

    // Pause, then Resume: the button says which it does next.
    browser.click("#control-pause").await;
    session_until(&api, &id, |s| s["status"]["paused"] == true).await;
    browser
        .until(
            "the button offering Resume",
            Duration::from_secs(5),
            "return document.getElementById('control-pause').textContent === 'Resume';",
        )
        .await;
    browser.click("#control-pause").await;
    session_until(&api, &id, |s| s["status"]["paused"] == false).await;

    // Spoken words queued with a mark: played, and the page's queue says so.
    browser
        .js("const k = document.getElementById('control-kind'); k.value = 'tts'; return true;")
        .await;
    browser.type_into("#control-media", "one two three").await;
    browser.type_into("#control-mark", "greeting").await;
    browser.click("#control-play-next").await;
    let s = session_until(&api, &id, |s| s["status"]["queue"][0]["state"] == "played").await;
    assert_eq!(s["status"]["queue"][0]["mark"], "greeting", "{s:#}");
    assert_eq!(
        s["status"]["queue"][0]["media"], "tts:one two three",
        "{s:#}"
    );
    browser
        .until(
            "the page's queue showing the item played",
            Duration::from_secs(5),
            "const i = document.querySelector('#control-queue li[data-mark=greeting]'); return i && i.dataset.state === 'played';",
        )
        .await;

    let entries = browser.console_entries().await;
    assert!(errors(&entries).is_empty(), "console errors: {entries:#?}");
}
