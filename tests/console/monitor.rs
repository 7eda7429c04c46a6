//! The room monitor from the console: a session asked for in the form with the room monitor
//! on (and recorded) shows what the cloud published back — its tone, its state — and, once
//! it ended, a link to its recording; with nothing wrong in the page.

use std::time::Duration;

use super::browser::{Browser, errors, text_of};
use super::{TOKEN, serve_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitored_session_shows_what_the_room_carried_and_its_recording() {
    let records = tempfile::tempdir().unwrap();
    let records_arg = records.path().display().to_string();
    let (_serve, api) =
        serve_with(&["--rtmp-listen", "127.0.0.1:0", "--record-dir", &records_arg]).await;
    let browser = Browser::start().await;
    browser.open_sign_in(&api).await;
    browser.sign_in(TOKEN).await;
    browser.open_form().await;
    browser.type_into("#f-max_duration_secs", "4").await;
    browser
        .js(
            "const s = document.getElementById('f-media_type'); s.value = 'audio'; \
             const m = document.getElementById('f-monitor'); m.value = 'robot'; \
             document.getElementById('f-record').checked = true; return true;",
        )
        .await;
    browser.click("#new-session button[type=submit]").await;
    let hz = browser
        .until_hz("the monitor's tone", "[data-fact=monitor_tone]")
        .await;
    assert!((hz - 440.0).abs() < 30.0, "the monitor heard {hz} Hz");
    let link = browser
        .until(
            "a link to the recording",
            Duration::from_secs(30),
            "const a = document.querySelector('#monitor .recording a'); return a ? a.getAttribute('href') : null;",
        )
        .await;
    assert!(link.as_str().unwrap().ends_with("/recording"), "{link}");
    let state = browser.js(&text_of("[data-fact=monitor_state]")).await;
    assert_eq!(state, "stopped (robot)");
    let entries = browser.console_entries().await;
    assert!(errors(&entries).is_empty(), "{entries:#?}");
}
