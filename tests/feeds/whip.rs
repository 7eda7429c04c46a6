//! WHIP publishers (a browser, OBS 30+) through `callfeed serve`'s own HTTP server: an
//! independent webrtcbin publisher (tests/common/whip.rs) on loopback only. A wrong key gets
//! 401 and nothing, an offer with nothing usable 406, a second publisher 409; a publisher's
//! media reaches the room; a closed tab puts the calls on the slate, and a new publish brings
//! media back in the same call; DELETE ends the publish.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::sessions::{frames, rooms_until, served_feeds};
use crate::common::serve::*;
use crate::common::whip::{Video, WhipPublisher, an_offer, post_offer, publish};

/// Where the tests' WHIP publishers reach the serve: its API, ICE on 127.0.0.1 only.
fn loopback_endpoint(api: &Api, private_candidates: bool) -> callfeed::feed::WhipEndpoint {
    callfeed::feed::WhipEndpoint {
        base: api.base.trim_end_matches('/').to_owned(),
        webrtc: callfeed::media::whip::WebRtcSettings {
            bind: vec!["127.0.0.1".parse().unwrap()],
            private_candidates,
            ..Default::default()
        },
    }
}

/// A whip feed made through the API with `request`: its id, endpoint URL and bearer token.
async fn whip_feed(api: &Api, request: Value) -> (String, String, String) {
    let (status, feed) = api
        .call(
            reqwest::Method::POST,
            "/v1/feeds",
            Some(request),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 201, "{feed}");
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    (
        text(&feed["id"]),
        text(&feed["publish"]["url"]),
        text(&feed["publish"]["bearer"]),
    )
}

/// DELETEs `publisher`'s session: the feed has no publisher within 2 s.
async fn end_publish(api: &Api, id: &str, publisher: &WhipPublisher, bearer: &str) {
    assert_eq!(publisher.delete(bearer).await, 200);
    api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(2), |f| {
        f["publisher"].is_null()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_reaches_the_room_and_comes_back_in_the_same_call() {
    let (emulator, _dir, feeds, api) = served_feeds().await;
    feeds.feeds.set_whip(Some(loopback_endpoint(&api, false)));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip", "name": "presenter"})).await;
    assert!(url.ends_with(&format!("/v1/whip/{id}")), "{url}");

    // A wrong key: 401, nothing taken; nothing usable: 406 naming the line; not SDP: 400.
    let offer = an_offer(Video::H264).await;
    let wrong = post_offer(&url, "0123456789abcdef0123456789abcdef", &offer).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");
    let h265 = offer.replace("H264/90000", "H265/90000");
    let refused = post_offer(&url, &bearer, &h265).await;
    assert_eq!(refused.status, 406, "{}", refused.body);
    assert!(refused.body.contains("video line"), "{}", refused.body);
    let garbage = post_offer(&url, &bearer, "hello").await;
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert_eq!(shown["state"], "waiting", "{shown:#}");
    assert!(shown["publisher"].is_null(), "{shown:#}");

    let publisher = publish(&url, &bearer, Video::H264)
        .await
        .ok()
        .expect("taken");
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "whip-1",
                     "ring": "when_live", "feed_wait_secs": 30, "ingest_at": "ring"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let session = created["id"].as_str().unwrap().to_owned();
    let seen = rooms_until(&emulator, &["whip-1"], Duration::from_secs(30), |t| {
        t.len() == 1 && frames(t) > 60 && t[0]["audio_ms"].as_u64() > Some(2000)
    })
    .await;
    let task = &seen[0][0];
    assert_eq!(
        (task["width"].as_u64(), task["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let hz = task["dominant_hz"].as_f64().unwrap();
    assert!((hz - 440.0).abs() < 15.0, "{task:#}");
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert_eq!(shown["publisher"]["video_codec"], "H.264", "{shown:#}");

    // One publisher at a time.
    let second = publish(&url, &bearer, Video::Vp8)
        .await
        .err()
        .expect("refused");
    assert_eq!(second.status, 409, "{}", second.body);

    // The tab closes (no DELETE): the feed is lost and the call on the slate within 3 s.
    drop(publisher);
    api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(3), |f| {
        f["state"] == "lost"
    })
    .await;
    api.until(
        &format!("/v1/sessions/{session}"),
        Duration::from_secs(3),
        |s| s["status"]["media"]["state"] == "on_slate",
    )
    .await;
    let before = rooms_until(&emulator, &["whip-1"], Duration::from_secs(5), |_| true).await;

    // Published again, in VP8 this time: media again, the same call and ingest task. The
    // closed tab's session holds the feed until its silence tells (2 s): 409 until then.
    let until = Instant::now() + Duration::from_secs(10);
    let again = loop {
        match publish(&url, &bearer, Video::Vp8).await {
            Ok(publisher) => break publisher,
            Err(refused) => {
                assert_eq!(refused.status, 409, "{}", refused.body);
                assert!(
                    Instant::now() < until,
                    "never taken again: {}",
                    refused.body
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = rooms_until(&emulator, &["whip-1"], Duration::from_secs(20), |t| {
        t.len() == 1 && frames(t) > frames(&before[0]) + 60
    })
    .await;
    assert_eq!(after[0][0]["task_id"], before[0][0]["task_id"]);
    api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(5), |f| {
        f["state"] == "live" && f["publisher"]["video_codec"] == "VP8"
    })
    .await;

    // DELETE ends the publish within 2 s.
    end_publish(&api, &id, &again, &bearer).await;
    let s = api.get(&format!("/v1/sessions/{session}")).await;
    assert_eq!(s["status"]["phase"], "ingesting", "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_guessing_whip_keys_is_turned_away_for_a_minute() {
    let (_emulator, _dir, feeds, api) = served_feeds().await;
    feeds.feeds.set_whip(Some(loopback_endpoint(&api, false)));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip"})).await;
    let mut statuses = Vec::new();
    for guess in 0..12 {
        let answered = post_offer(&url, &format!("{guess:032x}"), "v=0\r\n").await;
        statuses.push(answered.status);
    }
    // Ten a minute are let by; the eleventh turns the address away.
    assert_eq!(statuses[..11], [401; 11], "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
    // Turned away even with the key, and nothing was allocated for any of it.
    let answered = post_offer(&url, &bearer, "v=0\r\n").await;
    assert_eq!(answered.status, 429, "{}", answered.body);
    assert!(
        answered.body.contains("too many wrong keys"),
        "{}",
        answered.body
    );
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert!(shown["publisher"].is_null(), "{shown:#}");
}

/// `offer` with one more host candidate, at `target`, in its first media line.
fn with_candidate(offer: &str, target: std::net::SocketAddr) -> String {
    let line = format!(
        "a=candidate:99 1 UDP 2130706431 {} {} typ host\r\n",
        target.ip(),
        target.port()
    );
    let at = offer.find("a=mid:").expect("a media line");
    let at = at + offer[at..].find("\r\n").unwrap() + 2;
    format!("{}{line}{}", &offer[..at], &offer[at..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_sends_nothing_to_a_private_address_an_offer_names_unless_allowed() {
    let (_emulator, _dir, feeds, api) = served_feeds().await;
    let target = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let offer = with_candidate(&an_offer(Video::H264).await, target.local_addr().unwrap());
    feeds.feeds.set_whip(Some(loopback_endpoint(&api, false)));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip"})).await;
    let mut buf = [0u8; 1500];
    for allowed in [false, true] {
        feeds.feeds.set_whip(Some(loopback_endpoint(&api, allowed)));
        let answered = post_offer(&url, &bearer, &offer).await;
        assert_eq!(answered.status, 201, "{}", answered.body);
        // ICE checks a candidate it takes within a second or two; none comes otherwise.
        let got = tokio::time::timeout(Duration::from_secs(3), target.recv_from(&mut buf)).await;
        assert_eq!(got.is_ok(), allowed, "allowed: {allowed}");
        let resource = url::Url::parse(&url)
            .unwrap()
            .join(answered.headers["location"].to_str().unwrap())
            .unwrap();
        let deleted = reqwest::Client::new()
            .delete(resource)
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status().as_u16(), 200);
        api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(5), |f| {
            f["publisher"].is_null()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_h264_is_passed_through_and_its_opus_heard_as_aac() {
    let (emulator, _dir, feeds, api) = served_feeds().await;
    feeds.feeds.set_whip(Some(loopback_endpoint(&api, false)));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip", "mode": "passthrough"})).await;
    let shown = api.get(&format!("/v1/feeds/{id}")).await;
    assert_eq!(shown["mode"], "passthrough", "{shown:#}");

    // VP8 cannot be passed through: refused naming what it takes.
    let refused = publish(&url, &bearer, Video::Vp8)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status, 406, "{}", refused.body);
    assert!(refused.body.contains("H.264"), "{}", refused.body);

    let _publisher = publish(&url, &bearer, Video::H264)
        .await
        .ok()
        .expect("taken");
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "whip-pass",
                     "ring": "when_live", "feed_wait_secs": 30, "ingest_at": "ring"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let seen = rooms_until(&emulator, &["whip-pass"], Duration::from_secs(30), |t| {
        t.len() == 1 && frames(t) > 60 && t[0]["audio_ms"].as_u64() > Some(2000)
    })
    .await;
    // The publisher's own 320x240: no encoder scaled it to the profile's 1280x720.
    let task = &seen[0][0];
    assert_eq!(
        (task["width"].as_u64(), task["height"].as_u64()),
        (Some(320), Some(240)),
        "{task:#}"
    );
    let hz = task["dominant_hz"].as_f64().unwrap();
    assert!((hz - 440.0).abs() < 15.0, "{task:#}");
}

/// Set in the copy of the test binary that runs inside a network namespace.
const IN_NAMESPACE: &str = "CALLFEED_TEST_IN_LOOPBACK_NAMESPACE";

/// A node whose only interface is loopback (a network namespace with nothing but `lo`)
/// gathers on loopback with its default addresses (as `--listen 0.0.0.0` leaves them) and
/// takes a publisher on the same host. The test runs itself again in such a namespace
/// (`unshare -n`, then `lo` up), where nothing but loopback exists to send to.
#[test]
fn a_node_with_nothing_but_loopback_takes_a_publisher_on_it() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        return runtime.block_on(publish_with_nothing_but_loopback());
    }
    let this = std::env::current_exe().unwrap();
    let ran = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(&this)
        .args([
            "--exact",
            "feeds::whip::a_node_with_nothing_but_loopback_takes_a_publisher_on_it",
            "--nocapture",
        ])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("unshare (util-linux) and ip (iproute2), installed by make setup");
    let said = String::from_utf8_lossy(&ran.stdout) + String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "in a namespace with only lo: {said}");
    assert!(said.contains("1 passed"), "{said}");
}

async fn publish_with_nothing_but_loopback() {
    let interfaces = std::fs::read_to_string("/proc/net/dev").unwrap();
    let names: Vec<&str> = interfaces
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "not in a namespace with only lo");
    let (_emulator, _dir, feeds, api) = served_feeds().await;
    let mut endpoint = loopback_endpoint(&api, false);
    endpoint.webrtc.bind.clear();
    feeds.feeds.set_whip(Some(endpoint));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip", "mode": "passthrough"})).await;
    let offer = an_offer(Video::H264).await;
    let answered = post_offer(&url, &bearer, &offer).await;
    assert_eq!(answered.status, 201, "{}", answered.body);
    assert!(
        answered.body.contains(" 127.0.0.1 "),
        "no loopback candidate: {}",
        answered.body
    );
    let resource = url::Url::parse(&url)
        .unwrap()
        .join(answered.headers["location"].to_str().unwrap())
        .unwrap();
    let deleted = reqwest::Client::new()
        .delete(resource)
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200);
    let _publisher = publish(&url, &bearer, Video::H264)
        .await
        .ok()
        .expect("taken");
    api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(10), |f| {
        f["state"] == "live"
    })
    .await;
}

/// A browser sends a keyframe only when asked: when a call joins a passed-through feed, its
/// publisher is asked for one (besides every 2 s, lengthened here to a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_joins_a_passed_through_feed_asks_its_publisher_for_a_keyframe() {
    let (emulator, _dir, feeds, api) = served_feeds().await;
    let mut endpoint = loopback_endpoint(&api, false);
    endpoint.webrtc.keyframe_every = Some(Duration::from_secs(60));
    feeds.feeds.set_whip(Some(endpoint));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip", "mode": "passthrough"})).await;
    let publisher = publish(&url, &bearer, Video::H264OnRequest)
        .await
        .ok()
        .expect("taken");
    api.until(&format!("/v1/feeds/{id}"), Duration::from_secs(10), |f| {
        f["state"] == "live"
    })
    .await;
    let before = publisher.keyframes.load(Ordering::Relaxed);
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "whip-key",
                     "ring": "when_live", "feed_wait_secs": 30, "ingest_at": "ring"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let until = Instant::now() + Duration::from_secs(5);
    while publisher.keyframes.load(Ordering::Relaxed) == before {
        assert!(
            Instant::now() < until,
            "the publisher was never asked for a keyframe"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rooms_until(&emulator, &["whip-key"], Duration::from_secs(30), |t| {
        t.len() == 1 && frames(t) > 30
    })
    .await;
}

/// A passed-through feed's publisher starts again and again (a 720p encoder, each start
/// ending with DELETE): each start's picture reaches the call's room and keeps coming. One
/// start in three once showed its first pictures and then none, its sound going on: the
/// WebRTC clock timed later pictures before the first, and shifted onto the feed's
/// timeline they wrapped to 49 days.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_of_a_passed_through_publisher_keeps_its_picture_coming() {
    const STARTS: usize = 6;
    let (emulator, _dir, feeds, api) = served_feeds().await;
    feeds.feeds.set_whip(Some(loopback_endpoint(&api, false)));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip", "mode": "passthrough"})).await;
    let mut publisher = publish(&url, &bearer, Video::H264Hd)
        .await
        .ok()
        .expect("taken");
    let (status, created) = api
        .post(
            json!({"to": ["jack"], "media": format!("feed:{id}"), "room": "whip-starts",
                     "ring": "when_live", "feed_wait_secs": 30, "ingest_at": "ring"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mut seen = rooms_until(&emulator, &["whip-starts"], Duration::from_secs(30), |t| {
        t.len() == 1 && frames(t) > 60
    })
    .await;
    for start in 2..=STARTS {
        end_publish(&api, &id, &publisher, &bearer).await;
        publisher = publish(&url, &bearer, Video::H264Hd)
            .await
            .ok()
            .expect("taken again");
        // Two seconds of pictures after this start: more than its first GOP.
        let before = frames(&seen[0]);
        seen = rooms_until(&emulator, &["whip-starts"], Duration::from_secs(15), |t| {
            t.len() == 1 && frames(t) > before + 60
        })
        .await;
        eprintln!(
            "start {start}/{STARTS}: the room has {} pictures",
            frames(&seen[0])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_whose_peer_never_connects_or_a_huge_one_holds_nothing() {
    let (_emulator, _dir, feeds, api) = served_feeds().await;
    let mut endpoint = loopback_endpoint(&api, false);
    endpoint.webrtc.first_media_within = Some(Duration::from_secs(2));
    feeds.feeds.set_whip(Some(endpoint));
    let (id, url, bearer) = whip_feed(&api, json!({"kind": "whip"})).await;

    // Far more than any browser sends: refused before anything is parsed or allocated.
    let huge = format!("v=0\r\n{}", "a=x-padding:0123456789\r\n".repeat(4000));
    let answered = post_offer(&url, &bearer, &huge).await;
    assert!(
        matches!(answered.status, 400 | 413),
        "{} {}",
        answered.status,
        answered.body
    );

    // Answered, and then nobody connects (ICE or DTLS never completes): the feed is free
    // again after the first-media deadline, with the reason.
    let answered = post_offer(&url, &bearer, &an_offer(Video::H264).await).await;
    assert_eq!(answered.status, 201, "{}", answered.body);
    let shown = api
        .until(&format!("/v1/feeds/{id}"), Duration::from_secs(6), |f| {
            f["publisher"].is_null()
        })
        .await;
    let reason = shown["last_refusal"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no media within 2s"), "{shown:#}");
}
