//! Shared test helpers: a scripted HTTP server on 127.0.0.1 that answers from a queue and
//! records every request it received.
// Shared by every test binary through `mod common;`: `pub` is how they reach it.
#![allow(unreachable_pub)]

mod nginx;
pub mod postgres;
pub mod processes;
pub mod rtsp;
pub mod serve;
pub mod webrtc_sender;
pub mod whip;

pub use nginx::Nginx;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Held back this long before answering, to provoke client timeouts.
    pub delay: Duration,
}

impl Answer {
    pub fn json(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: "<html>bad gateway</html>".into(),
            delay: Duration::ZERO,
        }
    }
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// Read in failure messages only (`{:#?}`), which dead-code analysis does not count.
    #[allow(dead_code)]
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    pub fn query(&self, name: &str) -> Option<String> {
        url::Url::parse(&format!("http://x{}", self.uri))
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Answer>,
    /// Answer given when the script has run out.
    fallback: Option<Answer>,
    received: Vec<Received>,
}

/// A server bound to 127.0.0.1:0 that plays a script.
#[derive(Clone)]
pub struct ScriptedServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    arrivals: tokio::sync::watch::Receiver<usize>,
}

impl ScriptedServer {
    pub async fn start(script: Vec<Answer>) -> Self {
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let shared = state.clone();
        let (arrived, arrivals) = tokio::sync::watch::channel(0usize);
        let arrived = Arc::new(arrived);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                let arrived = arrived.clone();
                async move { answer(state, arrived, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            state,
            arrivals,
        }
    }

    /// Waits until `done` holds for the requests received so far, or panics at `deadline`.
    pub async fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let mut arrivals = self.arrivals.clone();
        let wait = async {
            loop {
                let received = self.received();
                if done(&received) {
                    return received;
                }
                if arrivals.changed().await.is_err() {
                    return self.received();
                }
            }
        };
        tokio::time::timeout(deadline, wait)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out after {deadline:?} waiting for {what}: {:#?}",
                    self.received()
                )
            })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn set_fallback(&self, answer: Answer) {
        self.state.lock().unwrap().fallback = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    arrived: Arc<tokio::sync::watch::Sender<usize>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = {
        let mut s = state.lock().unwrap();
        s.received.push(Received {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect(),
            body: body.to_vec(),
        });
        s.script.pop_front().or_else(|| s.fallback.clone())
    };
    arrived.send_modify(|n| *n += 1);
    let Some(answer) = next else {
        return (StatusCode::IM_A_TEAPOT, "script exhausted").into_response();
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    (
        StatusCode::from_u16(answer.status).unwrap(),
        [("content-type", "application/json")],
        answer.body,
    )
        .into_response()
}

/// What the emulator lists as `what` (`calls` or `tasks`) on its control API.
pub async fn emulator_list(
    emulator: &callfeed::emulator::Emulator,
    what: &str,
) -> Vec<serde_json::Value> {
    emulator_list_at(&emulator.endpoints().control, what).await
}

/// [`emulator_list`] for an emulator whose control API is at `control` (a process's, say).
pub async fn emulator_list_at(control: &str, what: &str) -> Vec<serde_json::Value> {
    let url = format!("{control}/{what}");
    let body = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v[what]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("the emulator lists {what}: {v}"))
}

/// A port on 127.0.0.1 with nothing listening.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub const SDKAPPID: u64 = 1_400_000_000;
pub const APP_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
pub const SECRET_ID: &str = "AKIDEXAMPLEsecretid0000000000000000";
pub const SECRET_KEY: &str = "EXAMPLEsecretkey00000000000000";

/// The IM envelope for success with a `Response` object.
pub fn im_ok(response: serde_json::Value) -> String {
    serde_json::json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,
        "RequestId":"Id-70e312f1de024af5a36714b7b71da224-O-Seq-63504","Response":response})
    .to_string()
}

pub fn im_fail(code: i64, info: &str) -> String {
    serde_json::json!({"ActionStatus":"FAIL","ErrorInfo":info,"ErrorCode":code,
        "RequestId":"Id-70e312f1de024af5a36714b7b71da224-O-Seq-63505"})
    .to_string()
}

pub fn api_ok(fields: serde_json::Value) -> String {
    let mut response = fields;
    response["RequestId"] = serde_json::json!("2b4c5d6e-0000-4000-8000-000000000001");
    serde_json::json!({ "Response": response }).to_string()
}

pub fn api_fail(code: &str, message: &str) -> String {
    serde_json::json!({"Response":{"Error":{"Code":code,"Message":message},
        "RequestId":"2b4c5d6e-0000-4000-8000-000000000002"}})
    .to_string()
}

/// A clip made with GStreamer's test sources: a moving ball and a sine tone.
pub struct Clip {
    pub seconds: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub tone_hz: u32,
}

impl Clip {
    pub fn frames(&self) -> u32 {
        self.seconds * self.fps
    }

    /// Writes the clip as `name` in `dir`; `.mp4` (faststart) or `.flv` picks the container.
    pub fn write(&self, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        let mux = if name.ends_with(".flv") {
            "flvmux streamable=true name=m"
        } else {
            "mp4mux faststart=true name=m"
        };
        // 48 kHz in 1024-sample buffers: enough buffers to cover the video.
        let audio_buffers = self.seconds * 48_000 / 1024 + 1;
        let pipeline = format!(
            "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 \
             ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max={fps} bframes=0 \
             ! video/x-h264,profile=constrained-baseline ! h264parse ! queue ! {mux} \
             ! filesink location={path} \
             audiotestsrc num-buffers={audio_buffers} samplesperbuffer=1024 freq={tone} volume=0.5 \
             ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! voaacenc ! aacparse ! queue ! m.",
            frames = self.frames(),
            w = self.width,
            h = self.height,
            fps = self.fps,
            tone = self.tone_hz,
            path = path.display(),
        );
        let status = std::process::Command::new("gst-launch-1.0")
            .arg("-q")
            .arg("-e")
            .args(pipeline.split_whitespace())
            .status()
            .expect("gst-launch-1.0 must be installed: run `make setup`");
        assert!(status.success(), "gst-launch-1.0 failed to make {name}");
        path
    }
}

/// Serves `dir` over HTTP on 127.0.0.1 (with Range support); returns the base URL.
pub async fn serve_dir(dir: &std::path::Path) -> String {
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/")
}

/// `$CALLFEED_TEST_PYTHON`, else the venv `make setup` makes, else `python3`.
pub fn python_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("CALLFEED_TEST_PYTHON") {
        return p.into();
    }
    let venv = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"));
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// One FLV tag as a reader saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: u8,
    pub timestamp_ms: u32,
    pub keyframe: bool,
    /// A codec configuration (AVC or AAC sequence header) or an AVC end-of-sequence marker,
    /// rather than media.
    pub config: bool,
}

/// Reads an HTTP-FLV stream until it ends or `limit` passes; returns its tags.
pub async fn read_flv(url: &str, limit: Duration) -> Vec<FlvTag> {
    let mut response = reqwest::get(url).await.expect("the stream URL answers");
    assert_eq!(response.status(), 200, "{url}");
    let mut data: Vec<u8> = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        while let Ok(Some(chunk)) = response.chunk().await {
            data.extend_from_slice(&chunk);
        }
    })
    .await;
    parse_flv(&data)
}

/// The tags of an FLV stream, read with the library's own FLV knowledge.
pub fn parse_flv(data: &[u8]) -> Vec<FlvTag> {
    use callfeed::media::flv;
    assert!(
        data.starts_with(b"FLV"),
        "not FLV: {:?}",
        &data[..data.len().min(16)]
    );
    flv::split_tags(data)
        .into_iter()
        .map(|tag| {
            let kind = tag[0] & 0x1f;
            let body = &tag[11..];
            let (keyframe, config) = match kind {
                flv::TAG_VIDEO if body.len() >= 2 => (body[0] >> 4 == 1, body[1] != 1),
                flv::TAG_AUDIO => (false, flv::tag_kind(tag) == flv::TagKind::AudioConfig),
                _ => (false, false),
            };
            FlvTag {
                kind,
                timestamp_ms: flv::tag_timestamp(tag).unwrap_or_default(),
                keyframe,
                config,
            }
        })
        .collect()
}

/// Serves a hub's FLV, and can hold it: open connections stop receiving, new ones get 503.
pub struct Valve {
    addr: std::net::SocketAddr,
    open: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Valve {
    pub async fn start(hub: Arc<callfeed::media::hub::StreamHub>) -> Self {
        let (open, _) = tokio::sync::watch::channel(true);
        let open = Arc::new(open);
        let gate = open.clone();
        let app = axum::Router::new().fallback(move || {
            let hub = hub.clone();
            let gate = gate.clone();
            async move {
                if !*gate.borrow() {
                    return axum::response::IntoResponse::into_response(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    );
                }
                let sub = hub.subscribe();
                let watch = gate.subscribe();
                let stream = futures::StreamExt::chain(
                    futures::stream::iter(sub.preamble.into_iter().map(Ok::<_, std::io::Error>)),
                    futures::stream::unfold((sub.live, watch), |(mut rx, w)| async move {
                        if !*w.borrow() {
                            // Held: the connection stays open and silent.
                            std::future::pending::<()>().await;
                        }
                        match rx.recv().await {
                            Ok(tag) if !tag.is_empty() => Some((Ok(tag), (rx, w))),
                            _ => None,
                        }
                    }),
                );
                axum::response::Response::new(axum::body::Body::from_stream(stream))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, open }
    }

    pub fn url(&self) -> String {
        format!("http://{}/live.flv", self.addr)
    }

    pub fn close(&self) {
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

/// An emulator accepting the test app's credentials: real-time pace, callees answering after
/// 300 ms, records after 100 ms, reconnects at the documented 0, 1 and 3 s. Tests change the
/// fields they care about with struct update syntax.
pub fn test_emulator_config() -> callfeed::emulator::EmulatorConfig {
    callfeed::emulator::EmulatorConfig {
        sdkappid: SDKAPPID,
        sdk_secret_key: APP_KEY.into(),
        admin: "administrator".into(),
        secret_id: SECRET_ID.into(),
        secret_key: SECRET_KEY.into(),
        pace: callfeed::emulator::Pace::Realtime,
        default_behaviour: callfeed::emulator::Behaviour::Answer {
            after_ms: 300,
            hangup_after_ms: None,
        },
        behaviours: Default::default(),
        trtc_callback: None,
        record_delay: Duration::from_millis(100),
        reconnect_delays: [0, 1000, 3000].map(Duration::from_millis).to_vec(),
    }
}

/// The call-engine and TRTC clients of the test app at `base` (ending in `/`), whose UserSigs
/// are made with `app_key`.
pub fn test_clients(
    base: &str,
    app_key: &str,
    settings: callfeed::cloud::HttpSettings,
) -> callfeed::session::CloudClients {
    use callfeed::cloud::call::{CallClient, ImCredentials};
    use callfeed::cloud::ingest::{ApiCredentials, IngestClient};
    let base = url::Url::parse(base).unwrap();
    let transport = Arc::new(callfeed::cloud::Transport::new(settings).unwrap());
    callfeed::session::CloudClients {
        calls: CallClient::new(
            transport.clone(),
            base.clone(),
            ImCredentials {
                sdkappid: SDKAPPID,
                secret_key: app_key.into(),
                admin: callfeed::cloud::UserId::new("admin", "administrator").unwrap(),
            },
        ),
        ingest: IngestClient::new(
            transport,
            base,
            "ap-singapore".into(),
            ApiCredentials {
                secret_id: SECRET_ID.into(),
                secret_key: SECRET_KEY.into(),
            },
            SDKAPPID,
            app_key.into(),
        ),
    }
}

/// Plays `url` at `pace` while `more(what was seen so far)` holds (panicking at `deadline`),
/// then stops and says what it saw.
pub async fn observe_while(
    url: &str,
    pace: callfeed::media::observer::Pace,
    deadline: Duration,
    more: impl Fn(&callfeed::media::observer::ObservedMedia) -> bool,
) -> callfeed::media::observer::ObservedMedia {
    use callfeed::media::observer::{MediaTally, ObserveSpec, Observer};
    let tally = MediaTally::new(std::time::Instant::now());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut spec = ObserveSpec::new(url.to_owned(), pace, None);
    spec.first_media_timeout = deadline;
    let observer = Observer::start(spec, tally.clone(), tx).unwrap();
    let until = std::time::Instant::now() + deadline;
    while more(&tally.snapshot()) {
        assert!(
            std::time::Instant::now() < until,
            "{url}: {:?}",
            tally.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    observer.stop().await;
    tally.snapshot()
}

/// Plays `url` as a paced player until `frames` video frames were decoded.
pub async fn observe_until(
    url: &str,
    frames: u64,
    deadline: Duration,
) -> callfeed::media::observer::ObservedMedia {
    use callfeed::media::observer::Pace;
    observe_while(url, Pace::Realtime, deadline, |m| m.video_frames < frames).await
}

/// Like [`observe_until`], for `audio_ms` of audio (an audio-only stream has no frames).
pub async fn observe_audio_until(
    url: &str,
    audio_ms: u64,
    deadline: Duration,
) -> callfeed::media::observer::ObservedMedia {
    use callfeed::media::observer::Pace;
    observe_while(url, Pace::Realtime, deadline, |m| m.audio_ms < audio_ms).await
}

/// Runs ffmpeg (quiet, overwriting) with `args` split on whitespace, to make test media.
pub fn ffmpeg(args: &str) {
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args.split_whitespace())
        .status()
        .expect("ffmpeg must be installed: run `make setup`")
        .success();
    assert!(ok, "ffmpeg {args}");
}

/// `stream` served as live HTTP-FLV on a free loopback port: the server (the URL lives as
/// long as it does) and the URL.
pub async fn serve_live(
    stream: &callfeed::media::live::LiveStream,
) -> (callfeed::publish::StreamServer, String) {
    let server = callfeed::publish::StreamServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = server.publish_live(stream.hub(), None);
    (server, url)
}

/// The `callfeed` binary as a user at a shell runs it, with none of this machine's account,
/// config or endpoints, its journal in a folder of its own (`state`, under the temp dir).
pub fn callfeed_cli(state: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_callfeed"));
    for var in [
        "CALLFEED_CONFIG",
        "CALLFEED_SDKAPPID",
        "CALLFEED_SDK_SECRET_KEY",
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "CALLFEED_IM_ENDPOINT",
        "CALLFEED_TRTC_ENDPOINT",
        "CALLFEED_CSS_PUSH_KEY",
        "CALLFEED_CSS_PLAY_KEY",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("XDG_STATE_HOME", std::env::temp_dir().join(state));
    cmd.kill_on_drop(true);
    cmd
}
