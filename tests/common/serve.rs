//! A `callfeed serve` in the test process, and a small client for its API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callfeed::cloud::http::HttpSettings;
use callfeed::emulator::Emulator;
use callfeed::media::policy::{InputPolicy, Restrictions};
use callfeed::media::topology::Topologies;
use callfeed::serve::api::{Service, ServiceConfig};
use callfeed::serve::webhooks::WebhookKeys;
use callfeed::session::CloudClients;
use callfeed::session::driver::DriverSettings;
use callfeed::store::Store;
use serde_json::Value;

use super::{APP_KEY, SDKAPPID, test_clients};

pub const TOKEN: &str = "test-token-123";

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    /// The API a `callfeed serve` named in the line it printed once listening.
    pub fn from_line(line: &str) -> Self {
        Self {
            base: serde_json::from_str::<Value>(line).unwrap()["api"]
                .as_str()
                .unwrap()
                .to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&body)
                .unwrap_or(Value::String(String::from_utf8_lossy(&body).into())),
        )
    }

    pub async fn post(&self, body: Value) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            "/v1/sessions",
            Some(body),
            Some(TOKEN),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None, Some(TOKEN))
            .await
            .1
    }

    pub async fn until(
        &self,
        path: &str,
        deadline: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let v = self.get(path).await;
            if done(&v) {
                return v;
            }
            assert!(started.elapsed() < deadline, "timed out: {v:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The session `id` once it has ended (has a report), panicking after `within`.
    pub async fn ended(&self, id: &str, within: Duration) -> Value {
        until_ended(&self.base, TOKEN, id, within).await
    }
}

/// GET `path` of the API at `base` with the bearer `token`: the JSON answered (null if none).
pub async fn get_json(base: &str, path: &str, token: &str) -> Value {
    let body = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap_or_default()
}

/// Polls the session `id` on the API at `base` (bearer `token`) every 100 ms until it has
/// ended (has a report), panicking after `within`; the session as it was then.
pub async fn until_ended(base: &str, token: &str, id: &str, within: Duration) -> Value {
    let path = format!("/v1/sessions/{id}");
    let started = Instant::now();
    loop {
        let v = get_json(base, &path, token).await;
        if !v["report"].is_null() {
            return v;
        }
        assert!(started.elapsed() < within, "not ended in {within:?}: {v:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `/metrics` text of the API at `base`.
pub async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Session `id`'s event stream read until its report (at most 20 s): the SSE text.
pub async fn events_until_report(base: &str, id: &str) -> String {
    let mut response = reqwest::Client::new()
        .get(format!("{base}/v1/sessions/{id}/events"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: report") && text.ends_with("\n\n") {
                break;
            }
        }
    })
    .await
    .expect("the event stream ends with a report");
    text
}

/// A `callfeed serve` in this process, as the command builds it, with `configure` applied
/// to its settings (the test token, the emulator's callback key, test: inputs only).
pub async fn start_service(
    emulator: &Emulator,
    journal: &std::path::Path,
    configure: impl FnOnce(&mut ServiceConfig),
) -> (Arc<Service<CloudClients>>, Api) {
    let store = Arc::new(Store::open(journal).unwrap());
    start_service_on(emulator, store, configure).await
}

/// [`start_service`] recording its sessions in `store` (a PostgreSQL store several nodes
/// share, say).
pub async fn start_service_on(
    emulator: &Emulator,
    store: Arc<Store>,
    configure: impl FnOnce(&mut ServiceConfig),
) -> (Arc<Service<CloudClients>>, Api) {
    let cloud = test_clients(
        &format!("{}/", emulator.endpoints().im_endpoint),
        APP_KEY,
        HttpSettings::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    // As `callfeed serve` does: session streams on the API's own port.
    let (streams, stream_routes) = callfeed::publish::StreamServer::attached(&base);
    let mut config = ServiceConfig {
        token: Some(TOKEN.into()),
        sdkappid: SDKAPPID,
        webhook_keys: WebhookKeys {
            callback_key: Some("callbackkey".into()),
            call_token: None,
        },
        webhooks: true,
        driver: DriverSettings::new(streams),
        topologies: Topologies::builtin().unwrap(),
        policy: InputPolicy::Restricted(Restrictions::default()),
        max_sessions: 64,
        keep_ended: Duration::from_secs(600),
        relay: None,
        cluster: None,
        drain_grace: Duration::ZERO,
        costs: Default::default(),
        room_view: None,
        listen: Some(addr),
        public_url: None,
        max_event_streams: callfeed::serve::api::DEFAULT_MAX_EVENT_STREAMS,
        event_webhook: None,
        default_monitor: None,
    };
    configure(&mut config);
    let service = Service::new(cloud, store, config);
    let app = service.router().merge(stream_routes);
    tokio::spawn(callfeed::server::serve(
        listener,
        app,
        callfeed::server::HttpLimits::default(),
        std::future::pending(),
    ));
    (
        service,
        Api {
            base,
            http: reqwest::Client::new(),
        },
    )
}

/// `callfeed serve ARGS` as a user starts it, with the test account, no API token and no
/// webhook keys (`env` may set them, or point the cloud elsewhere), stdout piped.
pub fn serve_command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = super::callfeed_cli("callfeed-serve-test");
    cmd.arg("serve")
        .args(args)
        .env_remove("CALLFEED_API_TOKEN")
        .env_remove("CALLFEED_CALLBACK_KEY")
        .env_remove("CALLFEED_CALL_WEBHOOK_TOKEN")
        .env("CALLFEED_SDKAPPID", SDKAPPID.to_string())
        .env("CALLFEED_SDK_SECRET_KEY", APP_KEY)
        .env("TENCENTCLOUD_SECRET_ID", super::SECRET_ID)
        .env("TENCENTCLOUD_SECRET_KEY", super::SECRET_KEY)
        .stdout(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Starts `callfeed serve` with `args` and `env`; its exit code and stderr if it exits.
pub async fn serve_exits(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = serve_command(args, env);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
        .await
        .expect("serve refuses at once")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The environment that makes `serve` take `emulator` as its cloud.
pub fn cloud_env(emulator: &Emulator) -> Vec<(&'static str, String)> {
    let endpoints = emulator.endpoints();
    vec![
        ("CALLFEED_IM_ENDPOINT", endpoints.im_endpoint),
        ("CALLFEED_TRTC_ENDPOINT", endpoints.trtc_endpoint),
    ]
}

/// Starts [`serve_command`] and reads the line it prints once it listens; the process and
/// its API's base URL.
pub async fn serve_binary(args: &[&str], env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = serve_command(args, env)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("callfeed serve starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve prints its address in time")
        .unwrap()
        .expect("serve prints its address");
    let ready: Value = serde_json::from_str(&line).unwrap();
    (child, ready["api"].as_str().unwrap().to_owned())
}

/// Starts a process and returns it with its first stdout line.
pub async fn spawn_line(args: &[&str], env: &[(&str, String)]) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_callfeed"));
    cmd.args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    cmd.env_remove("CALLFEED_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (child, line)
}

/// A `callfeed emulator` process of its own (a cloud that outlives the nodes under test):
/// the process, its control API, and the environment a `callfeed serve` takes it with (the
/// test account and the API token).
pub async fn emulator_process() -> (tokio::process::Child, String, Vec<(&'static str, String)>) {
    let creds = vec![
        ("CALLFEED_SDKAPPID", SDKAPPID.to_string()),
        ("CALLFEED_SDK_SECRET_KEY", APP_KEY.to_owned()),
        ("TENCENTCLOUD_SECRET_ID", super::SECRET_ID.to_owned()),
        ("TENCENTCLOUD_SECRET_KEY", super::SECRET_KEY.to_owned()),
        ("CALLFEED_REGION", "ap-singapore".to_owned()),
    ];
    let (emulator, line) = spawn_line(&["emulator", "--listen", "127.0.0.1:0"], &creds).await;
    let endpoints: Value = serde_json::from_str(&line).unwrap();
    let base = format!("{}/", endpoints["im_endpoint"].as_str().unwrap());
    let control = endpoints["control"].as_str().unwrap().to_owned();
    let mut env = creds;
    env.push(("CALLFEED_IM_ENDPOINT", base.clone()));
    env.push(("CALLFEED_TRTC_ENDPOINT", base));
    env.push(("CALLFEED_API_TOKEN", TOKEN.to_owned()));
    (emulator, control, env)
}

/// An RTMP server on a free loopback port for `service`'s feeds (and its sessions' room
/// monitors), as `serve --rtmp-listen` starts one; listening while held.
pub async fn rtmp_server_for(service: &Service<CloudClients>) -> callfeed::feed::rtmp::RtmpServer {
    let feeds = service.feeds().clone();
    let rtmp = callfeed::feed::rtmp::listen(
        "127.0.0.1:0".parse().unwrap(),
        feeds.clone(),
        Default::default(),
    )
    .await
    .unwrap();
    feeds.set_rtmp_base(Some(format!("rtmp://{}/live", rtmp.local_addr())));
    rtmp
}
