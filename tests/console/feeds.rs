//! The console's Feeds view in a real browser: a feed made from the form, its OBS settings
//! with the key hidden until asked, its stream previewed live while ffmpeg publishes, a
//! session started on it from the new-session form and listed on the feed, and its end.

use std::time::Duration;

use serde_json::Value;

use super::browser::{Browser, errors};
use super::http::{EventStream, request};
use super::{TOKEN, serve_with};
use crate::feeds::publishers::push_rtmp;

/// Makes a feed with the Feeds view's form; its id and the API's answer for it. The key
/// stays hidden until *Show*.
async fn feed_from_the_form(browser: &Browser, api: &str) -> (String, Value) {
    browser.click("#nav a[href='#/feeds']").await;
    browser
        .until(
            "the feeds view",
            Duration::from_secs(5),
            "return document.querySelector('.new-feed')",
        )
        .await;
    browser.type_into("#feed-name", "lobby camera").await;
    browser.click(".new-feed button[type=submit]").await;
    let id = browser
        .until(
            "the new feed's page",
            Duration::from_secs(10),
            "return location.hash.startsWith('#/f/') && document.querySelector('.publish') ? decodeURIComponent(location.hash.slice(4)) : null",
        )
        .await;
    let id = id.as_str().unwrap().to_owned();
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = request(
        reqwest::Method::GET,
        &format!("{api}/v1/feeds/{id}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200);
    let feed: Value = serde_json::from_str(&body).unwrap();
    let key = feed["publish"]["stream_key"].as_str().unwrap().to_owned();
    let page = browser.js("return document.body.innerText").await;
    assert!(
        !page.as_str().unwrap().contains(&key),
        "the key shows before it is asked for"
    );
    browser
        .click(".publish .setting-row:nth-of-type(2) .reveal")
        .await;
    let page = browser.js("return document.body.innerText").await;
    assert!(page.as_str().unwrap().contains(&key), "Show shows the key");

    (id, feed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_makes_a_feed_previews_it_puts_it_in_a_call_and_ends_it() {
    let (_serve, api) = serve_with(&["--rtmp-listen", "127.0.0.1:0"]).await;
    let browser = Browser::start().await;
    browser.open_sign_in(&api).await;
    browser.sign_in(TOKEN).await;
    let (id, feed) = feed_from_the_form(&browser, &api).await;
    let auth = format!("Bearer {TOKEN}");
    let _ffmpeg = push_rtmp(feed["publish"]["url"].as_str().unwrap());
    // The console's stream carries the feeds, their state as it changes.
    let mut all = EventStream::open(&format!("{api}/v1/events"), &[("Authorization", &auth)]).await;
    let live_in_stream = format!("\"id\":\"{id}\"");
    all.until(|events| {
        events.iter().any(|(name, _, data)| {
            name == "feeds" && data.contains(&live_in_stream) && data.contains("\"state\":\"live\"")
        })
    })
    .await;
    browser
        .until(
            "the feed live on its page",
            Duration::from_secs(20),
            "const e = document.querySelector('[data-fact=state]'); return e && e.textContent === 'live' ? true : null;",
        )
        .await;
    let played = browser
        .until(
            "the preview playing",
            Duration::from_secs(30),
            "const v = document.getElementById('feed-player'); return v && v.currentTime > 1.5 ? v.currentTime : null;",
        )
        .await;
    assert!(played.as_f64().unwrap() > 1.5);

    // A session on the feed, picked in the new-session form.
    browser.open_form().await;
    browser
        .until(
            "the feed picker",
            Duration::from_secs(5),
            "return document.getElementById('f-feed')",
        )
        .await;
    browser
        .js(&format!(
            "const p = document.getElementById('f-feed'); p.value = 'feed:{id}'; p.dispatchEvent(new Event('change')); return true;"
        ))
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('f-media').value")
            .await,
        format!("feed:{id}")
    );
    browser.click("#new-session button[type=submit]").await;
    browser
        .until_text("#session-phase", "ingesting", Duration::from_secs(30))
        .await;
    let session = browser
        .js("return decodeURIComponent(location.hash.slice(4))")
        .await;
    let session = session.as_str().unwrap().to_owned();
    browser
        .client
        .goto(&format!("{api}/#/f/{id}"))
        .await
        .unwrap();
    browser
        .until(
            "the session listed on the feed",
            Duration::from_secs(10),
            &format!("return document.querySelector('.feed-sessions a[href=\"#/s/{session}\"]')"),
        )
        .await;

    // The end: confirmed, the feed gone, its session ended feed_ended.
    browser.click(".actions .danger").await;
    browser.client.accept_alert().await.unwrap();
    browser
        .until(
            "the feeds list again",
            Duration::from_secs(10),
            "return location.hash === '#/feeds' ? true : null",
        )
        .await;
    let (status, _, _) = request(
        reqwest::Method::GET,
        &format!("{api}/v1/feeds/{id}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(status, 404);
    let ended =
        crate::common::serve::until_ended(&api, TOKEN, &session, Duration::from_secs(20)).await;
    assert_eq!(ended["report"]["result"], "feed_ended", "{ended:#}");
    let logged = browser.console_entries().await;
    assert!(errors(&logged).is_empty(), "{logged:#?}");
}
