//! `callfeed` processes as the cluster tests and the cluster benchmark start them: one
//! made-up account the emulator and every node share, each process's ready line read.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::postgres::Postgres;

/// The API token every node of a cluster run takes.
pub const TOKEN: &str = "cluster-token";
/// The TRTC callback key every node checks webhooks with.
pub const CALLBACK_KEY: &str = "cluster-callback-key";

/// The account every process of a run uses: the emulator checks what the nodes sign.
pub fn account(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("CALLFEED_CONFIG")
        .env("CALLFEED_SDKAPPID", "1400000042")
        .env("CALLFEED_SDK_SECRET_KEY", "clusterappkey")
        .env("TENCENTCLOUD_SECRET_ID", "AKIDcluster")
        .env("TENCENTCLOUD_SECRET_KEY", "clustersecret")
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join("callfeed-cluster-state"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
}

/// Starts `bin ARGS` with the shared account and reads the one JSON line it prints when
/// ready.
pub async fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> (Child, Value) {
    start_logging(bin, args, env, Stdio::null()).await
}

/// [`start`], its log (stderr) going to `log`.
pub async fn start_logging(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    log: impl Into<Stdio>,
) -> (Child, Value) {
    let mut cmd = Command::new(bin);
    account(&mut cmd).args(args).stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready within 30 s")
        .unwrap()
        .expect("a line");
    (child, serde_json::from_str(&line).unwrap())
}

/// A node's environment: the cloud is the emulator at `emulator` (its ready line), its API
/// takes `token`, its webhooks are checked with [`CALLBACK_KEY`].
pub fn node_env(emulator: &Value, token: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "CALLFEED_IM_ENDPOINT",
            emulator["im_endpoint"].as_str().unwrap().to_owned(),
        ),
        (
            "CALLFEED_TRTC_ENDPOINT",
            emulator["trtc_endpoint"].as_str().unwrap().to_owned(),
        ),
        ("CALLFEED_API_TOKEN", token.to_owned()),
        ("CALLFEED_CALLBACK_KEY", CALLBACK_KEY.to_owned()),
    ]
}

/// A `serve` node on `store`, the cloud being the emulator at `emulator` (its ready line),
/// with a 2 s lease and `extra` arguments; its API URL.
pub async fn node(bin: &str, store: &str, emulator: &Value, extra: &[&str]) -> (Child, String) {
    node_as(bin, store, emulator, TOKEN, extra).await
}

/// [`node`] whose API takes `token`: with another token, a node of another cluster on the
/// same store.
pub async fn node_as(
    bin: &str,
    store: &str,
    emulator: &Value,
    token: &str,
    extra: &[&str],
) -> (Child, String) {
    let env = node_env(emulator, token);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store,
        "--lease-secs",
        "2",
    ];
    // Tests and benchmarks load the machine themselves: no node refuses for CPU unless asked.
    if !extra.contains(&"--max-cpu") {
        args.extend_from_slice(&["--max-cpu", "100"]);
    }
    args.extend_from_slice(extra);
    let (child, ready) = start(bin, &args, &env).await;
    (child, ready["api"].as_str().unwrap().to_owned())
}

/// What a cluster run stands on: a throwaway PostgreSQL with a database of its own, and a
/// `callfeed emulator` process as the cloud (`control`: its control API).
pub struct Cloud {
    pub pg: Postgres,
    pub store: String,
    pub endpoints: Value,
    pub control: String,
    _emulator: Child,
}

impl Cloud {
    /// The emulator process's id, to watch what it holds (the soak does, in its own binary).
    #[allow(dead_code)]
    pub fn emulator_pid(&self) -> Option<u32> {
        self._emulator.id()
    }

    pub async fn start(bin: &str) -> Self {
        let pg = Postgres::start();
        let store = pg.database().await;
        let (emulator, endpoints) = start(bin, &["emulator", "--listen", "127.0.0.1:0"], &[]).await;
        let control = endpoints["control"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned();
        Self {
            pg,
            store,
            endpoints,
            control,
            _emulator: emulator,
        }
    }
}
