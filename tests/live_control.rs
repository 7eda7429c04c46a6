//! Changing a running session without hanging up (`PATCH /v1/sessions/{id}`), heard in the
//! room by the emulator's observer: another input in the same call and the same ingest
//! task, the volume, a pause; an announcement the cloud plays switched through
//! `UpdateStreamIngest`; and every bad change refused by its field, the call unaffected.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::serve::*;
use crate::common::*;
use callfeed::emulator::Emulator;
use callfeed::media::policy::{InputPolicy, Restrictions};
use serde_json::{Value, json};

/// The emulator, a serve whose API clients may read files under a media folder, the API,
/// and that folder with a 20 s 880 Hz tone and a 4 s 660 Hz one in it.
async fn served() -> (
    std::sync::Arc<Emulator>,
    tempfile::TempDir,
    Served,
    PathBuf,
    PathBuf,
) {
    let emulator = Emulator::start(test_emulator_config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let emulator = std::sync::Arc::new(emulator);
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let high = media.join("880.m4a");
    ffmpeg(&format!(
        "-f lavfi -i sine=frequency=880:duration=20 -ac 2 -ar 48000 -c:a aac {}",
        high.display()
    ));
    let short = media.join("660.m4a");
    ffmpeg(&format!(
        "-f lavfi -i sine=frequency=660:duration=4 -ac 2 -ar 48000 -c:a aac {}",
        short.display()
    ));
    let roots = [media.clone()];
    // The emulator's ear in the room, as `serve --emulator` has it: items are heard.
    let witness = callfeed::app::room_witness(&emulator);
    let (service, api) = start_service(&emulator, &dir.path().join("j.sqlite"), |c| {
        c.policy = InputPolicy::Restricted(Restrictions::new(&roots, false, &[]).unwrap());
        c.driver.room_witness = Some(witness);
    })
    .await;
    (
        emulator,
        dir,
        Served {
            _service: service,
            api,
        },
        high,
        short,
    )
}

/// The serve (kept for as long as the test runs) and its API.
struct Served {
    _service: std::sync::Arc<callfeed::serve::api::Service<callfeed::session::CloudClients>>,
    api: Api,
}

impl std::ops::Deref for Served {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The one task in `room`, as the emulator's observer sees it now.
async fn task_in(emulator: &Emulator, room: &str) -> Option<Value> {
    emulator_list(emulator, "tasks")
        .await
        .into_iter()
        .find(|t| t["room_id"] == room)
}

/// Polls the room's task until `done`, at most `within`; how long that took.
async fn heard(
    emulator: &Emulator,
    room: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let task = task_in(emulator, room).await;
        if let Some(task) = task.filter(|t| done(t)) {
            return (task, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "the room never got there: {:#}",
            task_in(emulator, room).await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The room's level once two readings 300 ms apart agree within half a decibel.
async fn steady_level(emulator: &Emulator, room: &str) -> f64 {
    let started = Instant::now();
    let mut last = level(&task_in(emulator, room).await.unwrap_or_default());
    loop {
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        tick.tick().await;
        tick.tick().await;
        let now = level(&task_in(emulator, room).await.unwrap_or_default());
        if (now - last).abs() <= 0.5 && now > -100.0 {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the level never settled: {last} {now}"
        );
        last = now;
    }
}

fn tone(task: &Value) -> f64 {
    task["tone_now_hz"].as_f64().unwrap_or(0.0)
}

fn level(task: &Value) -> f64 {
    task["level_now_db"].as_f64().unwrap_or(-200.0)
}

async fn patch(api: &Api, id: &str, change: Value) -> (u16, Value) {
    api.call(
        reqwest::Method::PATCH,
        &format!("/v1/sessions/{id}"),
        Some(change),
        Some(TOKEN),
    )
    .await
}

/// Stops session `id` and waits for its end: the session as it ended.
async fn stopped(api: &Api, id: &str) -> Value {
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 202);
    until_ended(&api.base, TOKEN, id, Duration::from_secs(20)).await
}

/// Starts a session on `media` in `room` and waits until it is bound and heard.
async fn bound(api: &Api, emulator: &Emulator, room: &str, media: &str) -> String {
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": media, "room": room, "media_type": "audio",
                     "loop_forever": true}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    api.until(
        &format!("/v1/sessions/{id}"),
        Duration::from_secs(20),
        |s| s["status"]["phase"] == "ingesting",
    )
    .await;
    heard(emulator, room, Duration::from_secs(20), |t| {
        t["audio_ms"].as_u64() > Some(1000)
    })
    .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_switches_input_changes_volume_and_pauses_in_the_same_task() {
    let (emulator, _dir, api, high, _) = served().await;
    let id = bound(&api, &emulator, "control-1", "test:black+tone=440").await;
    let (before, _) = heard(&emulator, "control-1", Duration::from_secs(5), |t| {
        (tone(t) - 440.0).abs() < 20.0
    })
    .await;

    // Another input: the room hears 880 Hz within a second, in the same task.
    let asked = Instant::now();
    let (status, now) = patch(&api, &id, json!({"media": high.display().to_string()})).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["status"]["switched_to"], high.display().to_string());
    let (after, _) = heard(&emulator, "control-1", Duration::from_secs(5), |t| {
        (tone(t) - 880.0).abs() < 20.0
    })
    .await;
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the switch was heard after {took:?}"
    );
    assert_eq!(after["task_id"], before["task_id"], "the same ingest task");
    assert_eq!(after["gaps_over_500ms"], 0, "{after:#}");

    // Half the level: -6 dB, give or take one.
    let full = steady_level(&emulator, "control-1").await;
    let (status, now) = patch(&api, &id, json!({"volume": 50})).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["status"]["volume"], 50);
    let (halved, _) = heard(&emulator, "control-1", Duration::from_secs(3), |t| {
        (level(t) - (full - 6.0)).abs() <= 1.0
    })
    .await;
    assert!((tone(&halved) - 880.0).abs() < 20.0, "{halved:#}");

    // Paused: silence; resumed: the level as it was.
    let (status, now) = patch(&api, &id, json!({"paused": true})).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["status"]["paused"], true);
    heard(&emulator, "control-1", Duration::from_secs(3), |t| {
        level(t) < -60.0
    })
    .await;
    let (status, _) = patch(&api, &id, json!({"paused": false, "volume": 100})).await;
    assert_eq!(status, 200);
    heard(&emulator, "control-1", Duration::from_secs(3), |t| {
        (level(t) - full).abs() <= 1.0
    })
    .await;
    let s = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(s["status"]["phase"], "ingesting", "{s:#}");
    assert_eq!(s["status"]["task_id"], before["task_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_is_switched_by_the_cloud_on_the_same_task() {
    let (emulator, dir, api, high, short) = served().await;
    let id = bound(&api, &emulator, "control-2", &short.display().to_string()).await;
    let s = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(s["status"]["mode"], "announcement", "{s:#}");
    let (before, _) = heard(&emulator, "control-2", Duration::from_secs(5), |t| {
        (tone(t) - 660.0).abs() < 20.0
    })
    .await;
    let (status, now) = patch(&api, &id, json!({"media": high.display().to_string()})).await;
    assert_eq!(status, 200, "{now}");
    assert_ne!(now["status"]["stream_url"], s["status"]["stream_url"]);
    let (after, _) = heard(&emulator, "control-2", Duration::from_secs(10), |t| {
        (tone(t) - 880.0).abs() < 20.0
    })
    .await;
    assert_eq!(after["task_id"], before["task_id"], "the same ingest task");
    // The cloud's volume, on the same task, asked from the command line.
    let full = steady_level(&emulator, "control-2").await;
    let out = callfeed_cli("callfeed-live-control-state")
        .args([
            "session", "update", &id, "--volume", "50", "--api", &api.base,
        ])
        .env("CALLFEED_API_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let now: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(now["status"]["volume"], 50, "{now:#}");
    heard(&emulator, "control-2", Duration::from_secs(3), |t| {
        (level(t) - (full - 6.0)).abs() <= 1.0
    })
    .await;
    // A file the cloud plays cannot be moved within: the session moves to a stream of its
    // own that starts there, on the same task; past the end is refused.
    let (status, refused) = patch(&api, &id, json!({"seek_secs": 25})).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["field"], "seek_secs", "{refused}");
    let (status, now) = patch(&api, &id, json!({"seek_secs": 15})).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["status"]["mode"], "live", "{now:#}");
    let (sought, _) = heard(&emulator, "control-2", Duration::from_secs(10), |t| {
        (tone(t) - 880.0).abs() < 20.0
    })
    .await;
    assert_eq!(sought["task_id"], before["task_id"], "the same ingest task");
    // The stream plays from 15 s into the file, not from its start.
    api.until(&format!("/v1/sessions/{id}"), Duration::from_secs(5), |s| {
        s["status"]["media"]["position_ms"]
            .as_u64()
            .is_some_and(|p| (15_000..20_000).contains(&p))
    })
    .await;

    // A queue needs a stream of the session's own: the task is moved to one, then it plays.
    let item = tone_file(&dir.path().join("media"), 500, 3.0);
    let (status, now) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/sessions/{id}/queue"),
            Some(json!({"items": [{"media": item, "mark": "after"}]})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["status"]["mode"], "live", "{now:#}");
    let (queued, _) = heard(&emulator, "control-2", Duration::from_secs(10), |t| {
        (tone(t) - 500.0).abs() < 20.0
    })
    .await;
    assert_eq!(queued["task_id"], before["task_id"], "the same ingest task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_changes_are_refused_by_their_field_and_the_call_goes_on() {
    let (emulator, dir, api, high, _) = served().await;
    let id = bound(&api, &emulator, "control-3", "test:black+tone=440").await;
    let outside = dir.path().join("outside.m4a");
    std::fs::copy(&high, &outside).unwrap();
    let control: String = "a\u{7}b".into();
    for (change, status, field) in [
        (json!({"volume": -1}), 422, "volume"),
        (json!({"volume": 1_000_000_000u64}), 422, "volume"),
        (json!({"volume": "loud"}), 422, "volume"),
        (json!({"paused": "yes"}), 422, "paused"),
        (json!({"seek_secs": -3}), 422, "seek_secs"),
        (json!({"seek_secs": 5}), 422, "seek_secs"),
        (
            json!({"media": outside.display().to_string()}),
            422,
            "media",
        ),
        (json!({"media": format!("tts:{control}")}), 422, "media"),
        (json!({}), 422, "media"),
    ] {
        let (got, body) = patch(&api, &id, change.clone()).await;
        assert_eq!(got, status, "{change}: {body}");
        assert_eq!(body["field"], field, "{change}: {body}");
    }
    let (got, body) = patch(&api, &id, json!({"tempo": 2})).await;
    assert_eq!(got, 400, "{body}");
    // The call is as it was: the same tone, still ingesting.
    heard(&emulator, "control-3", Duration::from_secs(3), |t| {
        (tone(t) - 440.0).abs() < 20.0
    })
    .await;
    let s = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(s["status"]["phase"], "ingesting", "{s:#}");

    // An ended session takes no change.
    stopped(&api, &id).await;
    let (got, body) = patch(&api, &id, json!({"volume": 50})).await;
    assert_eq!(got, 409, "{body}");
    let (got, _) = patch(&api, "no-such-session", json!({"volume": 50})).await;
    assert_eq!(got, 404);
    // From the command line: the API's reason, and a failing exit.
    let out = callfeed_cli("callfeed-live-control-state")
        .args(["session", "update", &id, "--pause", "--api", &api.base])
        .env("CALLFEED_API_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("409"), "{said}");
}

/// A tone file of `hz` lasting `secs` in `dir`.
fn tone_file(dir: &std::path::Path, hz: u32, secs: f64) -> String {
    let path = dir.join(format!("{hz}.wav"));
    ffmpeg(&format!(
        "-f lavfi -i sine=frequency={hz}:duration={secs} -ac 2 -ar 48000 {}",
        path.display()
    ));
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_plays_items_in_order_tells_their_marks_and_a_clear_cuts() {
    let (emulator, dir, api, high, _) = served().await;
    let media = dir.path().join("media");
    let id = bound(&api, &emulator, "control-4", "test:black+tone=440").await;
    let tones = [500, 700, 900];
    let items: Vec<Value> = tones
        .iter()
        .map(|hz| json!({"media": tone_file(&media, *hz, 1.5), "mark": format!("m{hz}")}))
        .collect();
    let queue = format!("/v1/sessions/{id}/queue");
    let (status, now) = api
        .call(
            reqwest::Method::POST,
            &queue,
            Some(json!({"items": items})),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(
        now["status"]["queue"].as_array().map(Vec::len),
        Some(3),
        "{now:#}"
    );
    // Heard one after another, the 440 Hz of the session's own input cut at once; each
    // item's cue heard by the room within 300 ms of its tone, as one poller sees both.
    let (mut tone_at, mut cue_at) = (Vec::new(), Vec::new());
    let started = Instant::now();
    while tone_at.len() < tones.len() || cue_at.len() < tones.len() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{tone_at:?} {cue_at:?}"
        );
        let task = task_in(&emulator, "control-4").await.unwrap_or_default();
        let now = started.elapsed();
        if let Some(hz) = tones.get(tone_at.len())
            && (tone(&task) - f64::from(*hz)).abs() < 20.0
        {
            tone_at.push(now);
        }
        let cues = task["cues_heard"].as_array().map_or(0, Vec::len);
        while cue_at.len() < cues.min(tones.len()) {
            cue_at.push(now);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for (tone, cue) in tone_at.iter().zip(&cue_at) {
        let apart = if tone > cue {
            *tone - *cue
        } else {
            *cue - *tone
        };
        assert!(
            apart <= Duration::from_millis(300),
            "tones at {tone_at:?}, cues at {cue_at:?}"
        );
    }
    // The queue ran out: silence, the call still up.
    heard(&emulator, "control-4", Duration::from_secs(5), |t| {
        level(t) < -60.0
    })
    .await;
    let s = api.get(&format!("/v1/sessions/{id}")).await;
    let states: Vec<&str> = s["status"]["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["played", "played", "played"], "{s:#}");
    assert_eq!(s["status"]["phase"], "ingesting");

    // Barge-in: a long item cut by clearing the queue.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &queue,
            Some(
                json!({"items": [{"media": high.display().to_string(), "mark": "long"}],
                        "mode": "replace"}),
            ),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200);
    heard(&emulator, "control-4", Duration::from_secs(5), |t| {
        (tone(t) - 880.0).abs() < 20.0
    })
    .await;
    let asked = Instant::now();
    let (status, now) = api
        .call(reqwest::Method::DELETE, &queue, None, Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{now}");
    heard(&emulator, "control-4", Duration::from_secs(3), |t| {
        level(t) < -60.0
    })
    .await;
    let took = asked.elapsed();
    // The room's ear hears silence a full 100 ms window after it began, behind its own
    // buffering and the test's polling: 0.4-0.65 s beside the rest of the suite.
    assert!(
        took < Duration::from_secs(1),
        "the clear was heard after {took:?}"
    );

    // Too many at once, an unknown mode, a control character in a mark: refused by field.
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"media": "test:black+silence"}))
        .collect();
    for (body, field) in [
        (json!({"items": many}), "items"),
        (
            json!({"items": [{"media": "test:"}], "mode": "shuffle"}),
            "mode",
        ),
        (
            json!({"items": [{"media": "test:", "mark": "a\u{0}b"}]}),
            "mark",
        ),
    ] {
        let (status, refused) = api
            .call(reqwest::Method::POST, &queue, Some(body), Some(TOKEN))
            .await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["field"], field, "{refused}");
    }

    // The events and the report tell each item, in order.
    let ended = stopped(&api, &id).await;
    let items = ended["report"]["queue"].as_array().unwrap();
    let told: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["mark"].as_str().unwrap(), i["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        told,
        [
            ("m500", "played"),
            ("m700", "played"),
            ("m900", "played"),
            ("long", "cut")
        ],
        "{ended:#}"
    );
    let text = events_until_report(&api.base, &id).await;
    let order: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|d| d["mark"].as_str().map(|m| format!("{m}:{}", d["state"])))
        .collect();
    assert!(
        order.starts_with(&[
            "m500:\"playing\"".to_owned(),
            "m500:\"heard\"".to_owned(),
            "m500:\"played\"".to_owned(),
            "m700:\"playing\"".to_owned(),
        ]),
        "{order:?}\n{text}"
    );
    assert_eq!(text.matches("event: item_started").count(), 4, "{text}");
    assert_eq!(text.matches("event: item_heard").count(), 4, "{text}");
    let heard: Vec<&str> = text
        .split("event: item_heard")
        .skip(1)
        .filter_map(|e| e.split("\"mark\":\"").nth(1))
        .filter_map(|m| m.split('"').next())
        .collect();
    assert_eq!(heard, ["m500", "m700", "m900", "long"], "{text}");
    assert_eq!(text.matches("event: item_finished").count(), 4, "{text}");
}
