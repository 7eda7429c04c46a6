//! Feeds from the command line: `call --media listen:rtmp` tells the person what to paste
//! into OBS and rings only once the encoder's stream is live; `callfeed feed` drives a serve's
//! feeds through its API.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::publishers::push_rtmp;
use crate::common::serve::serve_binary;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_listens_for_an_encoder_tells_its_settings_and_rings_once_it_is_live() {
    let mut call = callfeed_cli("callfeed-feed-cli-state")
        .args([
            "call",
            "--emulator",
            "--to",
            "jack",
            "--room",
            "listen-1",
            "--media",
            "listen:rtmp",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--ingest-at",
            "ring",
            "--max-duration",
            "3",
            "--callee-answers-after",
            "300",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut stderr = BufReader::new(call.stderr.take().unwrap()).lines();
    let mut told = Vec::new();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            told.push(line.clone());
            if let Some(url) = line.strip_prefix("ffmpeg or GStreamer: ") {
                return url.to_owned();
            }
        }
        panic!("no publish settings: {told:#?}");
    })
    .await
    .expect("the settings are told");
    let said = told.join("\n");
    assert!(said.contains("Server      rtmp://127.0.0.1:"), "{said}");
    assert!(said.contains("Stream Key  "), "{said}");
    // Nothing rings while nobody publishes: a window (not a synchronisation) in which a
    // call placed too early would start, which the report's timings then show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waited_ms = started.elapsed().as_millis() as u64;
    let _ffmpeg = push_rtmp(&url);
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let mut stdout = String::new();
    call.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), call.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["result"], "completed", "{report:#}");
    assert!(
        report["timings"]["call_started_ms"].as_u64().unwrap() >= waited_ms,
        "{report:#}"
    );
    let media = &report["observed"]["media"][0];
    assert_eq!(media["width"], 1280, "{report:#}");
    assert!(
        (media["dominant_hz"].as_f64().unwrap() - 440.0).abs() < 15.0,
        "{report:#}"
    );
}

/// `callfeed feed ARGS` against the serve at `api`.
async fn feed_cli(api: &str, args: &[&str]) -> (bool, String, String) {
    let out = callfeed_cli("callfeed-feed-cli-state")
        .arg("feed")
        .args(["--api", api])
        .args(args)
        .env_remove("CALLFEED_API_TOKEN")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_command_makes_lists_rekeys_and_ends_a_serve_s_feeds() {
    let (_serve, api) = serve_binary(
        &[
            "--emulator",
            "--listen",
            "127.0.0.1:0",
            "--rtmp-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    let (ok, shown, said) = feed_cli(&api, &["create", "--name", "lobby camera"]).await;
    assert!(ok, "{said}");
    assert!(shown.contains("Server      rtmp://127.0.0.1:"), "{shown}");
    let key_line = shown
        .lines()
        .find(|l| l.contains("Stream Key"))
        .unwrap()
        .to_owned();
    let id = shown
        .lines()
        .find_map(|l| l.strip_prefix("feed     "))
        .unwrap()
        .trim()
        .to_owned();
    let (ok, listed, _) = feed_cli(&api, &["list"]).await;
    assert!(
        ok && listed.contains(&id) && listed.contains("lobby camera") && listed.contains("waiting"),
        "{listed}"
    );
    assert!(
        !listed.contains(key_line.split_whitespace().last().unwrap()),
        "a list never shows keys: {listed}"
    );
    let (ok, rekeyed, _) = feed_cli(&api, &["key", &id]).await;
    assert!(ok);
    let new_key = rekeyed.lines().find(|l| l.contains("Stream Key")).unwrap();
    assert_ne!(new_key, key_line);
    let (ok, json, _) = feed_cli(&api, &["show", &id, "--json"]).await;
    assert!(ok);
    let feed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(feed["name"], "lobby camera");
    let (ok, _, _) = feed_cli(&api, &["delete", &id]).await;
    assert!(ok);
    let (ok, _, said) = feed_cli(&api, &["show", &id]).await;
    assert!(
        !ok && said.contains("404") && said.contains("no feed"),
        "{said}"
    );
    let (ok, _, said) = feed_cli(&api, &["show", "../sessions"]).await;
    assert!(!ok && said.contains("not a feed id"), "{said}");

    // A WHIP feed: OBS's settings, and the serve's endpoint takes a publisher with them.
    let (ok, shown, said) = feed_cli(&api, &["create", "--kind", "whip"]).await;
    assert!(ok, "{said}");
    assert!(shown.contains("Service: WHIP"), "{shown}");
    let setting = |name: &str| {
        shown
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name}: {shown}"))
            .trim()
            .to_owned()
    };
    let (server, bearer) = (setting("Server"), setting("Bearer Token"));
    assert!(server.starts_with(&format!("{api}/v1/whip/f-")), "{shown}");
    let publisher =
        crate::common::whip::publish(&server, &bearer, crate::common::whip::Video::H264)
            .await
            .ok()
            .expect("the serve's WHIP endpoint takes the publisher");
    assert_eq!(publisher.delete(&bearer).await, 200);
}

#[tokio::test]
async fn call_names_where_a_feed_lives_when_asked_for_one_it_cannot_have() {
    let out = callfeed_cli("callfeed-feed-cli-state")
        .args([
            "call",
            "--emulator",
            "--to",
            "jack",
            "--room",
            "r",
            "--media",
            "feed:f-0123456789ab",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("callfeed serve") && said.contains("--media"),
        "{said}"
    );
}
