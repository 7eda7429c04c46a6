//! A `callfeed serve` reached through its API from the command line (`--api`, the token
//! from CALLFEED_API_TOKEN): what `callfeed feed` and `callfeed session` send their requests
//! with.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

/// How long one API request may take (a watch's stream excepted).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Which serve a command talks to.
#[derive(Args)]
pub(super) struct ApiArgs {
    /// The `callfeed serve` to talk to.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:8730"
    )]
    api: String,
}

/// An id the API made, as it goes into a URL path: letters, digits and `-`, nothing else;
/// `hint` says where the user finds one.
pub(super) fn id_in_path<'a>(id: &'a str, hint: &str) -> anyhow::Result<&'a str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        anyhow::bail!("`{id}` is not {hint}");
    }
    Ok(id)
}

pub(super) struct Client {
    http: reqwest::Client,
    pub(super) base: String,
    token: Option<String>,
}

impl Client {
    /// The serve `args` name, with the token in the environment.
    pub(super) fn new(args: &ApiArgs) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: args.api.trim_end_matches('/').to_owned(),
            token: std::env::var("CALLFEED_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
        }
    }

    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request; the answer's JSON, or the API's error as the error.
    pub(super) async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let answer = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the API at {}: is `callfeed serve` running there?",
                    self.base
                )
            })?;
        let status = answer.status();
        let body = answer.bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let said = body["error"].as_str().unwrap_or("no reason given");
            anyhow::bail!("{status}: {said}");
        }
        Ok(body)
    }
}
