//! `callfeed load --api URL[,URL...]`: the same run through the HTTP API of one or more
//! `callfeed serve` nodes (round robin), so a real deployment is load-tested end to end. Each
//! session is created with POST, followed with GET until its report, and on Ctrl-C ended
//! with DELETE.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use super::{Finished, LoadPlan, LoadProgress, LoadReport, Pacer, count_finished, summarize};

/// How often a session's node is asked whether it has ended.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The nodes to drive, and the bearer token their API wants.
#[derive(Clone)]
pub struct ApiTarget {
    pub nodes: Vec<String>,
    pub token: Option<SecretString>,
}

impl std::fmt::Debug for ApiTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTarget")
            .field("nodes", &self.nodes)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Runs the plan through the nodes' API; `stop` (Ctrl-C) ends every running session.
pub async fn run(
    plan: LoadPlan,
    target: ApiTarget,
    max_session: Duration,
    progress: watch::Sender<LoadProgress>,
    stop: watch::Receiver<bool>,
) -> LoadReport {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default();
    let progress = Arc::new(progress);
    let mut tasks = Vec::new();
    let mut stop_issuing = stop.clone();
    let mut pacer = Pacer::new(&plan);
    while let Some((i, permit, request)) = pacer.next(&mut stop_issuing).await {
        let node = target.nodes[i as usize % target.nodes.len()].clone();
        progress.send_modify(|p| {
            p.started += 1;
            p.running += 1;
        });
        let session = Session {
            client: client.clone(),
            node,
            token: target.token.clone(),
        };
        let (progress, stop) = (progress.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let finished = session.run(&request, max_session, stop).await;
            drop(permit);
            count_finished(&progress, finished.completed());
            finished
        }));
    }
    let mut finished = Vec::new();
    for t in tasks {
        if let Ok(f) = t.await {
            finished.push(f);
        }
    }
    summarize(&finished, started.elapsed().as_secs_f64())
}

/// One session on one node.
struct Session {
    client: reqwest::Client,
    node: String,
    token: Option<SecretString>,
}

fn refused(code: String) -> Finished {
    Finished {
        result: "failed".into(),
        error_code: Some(code),
        ..Default::default()
    }
}

impl Session {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.node.trim_end_matches('/'));
        let r = self.client.request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t.expose_secret()),
            None => r,
        }
    }

    async fn json(&self, r: reqwest::RequestBuilder) -> Result<(u16, serde_json::Value), String> {
        let answer = r.send().await.map_err(|e| e.to_string())?;
        let code = answer.status().as_u16();
        let body = answer.bytes().await.map_err(|e| e.to_string())?;
        Ok((code, serde_json::from_slice(&body).unwrap_or_default()))
    }

    async fn run(
        &self,
        request: &crate::session::SessionRequest,
        max_session: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> Finished {
        let body = serde_json::to_string(request).unwrap_or_default();
        let create = self
            .request(reqwest::Method::POST, "/v1/sessions")
            .header("content-type", "application/json")
            .body(body);
        let id = match self.json(create).await {
            Ok((201, created)) => created["id"].as_str().unwrap_or_default().to_owned(),
            // Refused: by status (409 room busy, 422 invalid, 429 full, 503 store away).
            Ok((code, _)) => return refused(format!("http_{code}")),
            Err(_) => return refused("unreachable".into()),
        };
        let path = format!("/v1/sessions/{id}");
        let deadline = Instant::now() + max_session;
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                changed = stop.changed(), if !stopping => {
                    if changed.is_ok() {
                        stopping = true;
                        let _ = self.json(self.request(reqwest::Method::DELETE, &path)).await;
                    }
                }
            }
            if let Ok((200, v)) = self.json(self.request(reqwest::Method::GET, &path)).await
                && v["report"].is_object()
            {
                let report = &v["report"];
                return Finished {
                    result: report["result"].as_str().unwrap_or("failed").to_owned(),
                    error_code: report["error_code"].as_str().map(str::to_owned),
                    timings: serde_json::from_value(report["timings"].clone()).unwrap_or_default(),
                    first_media_ms: None,
                };
            }
            if Instant::now() > deadline {
                return refused("no_report".into());
            }
        }
    }
}
