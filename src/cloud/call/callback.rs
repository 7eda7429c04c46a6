//! The callback configuration (`call_config`): where the call engine posts its webhooks.

use serde::Deserialize;
use serde_json::{Value, json};

use super::CallCommand;
use crate::cloud::ids::{InvalidArgument, check_stream_url};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCallback {
    pub url: String,
    pub commands: Vec<String>,
}

impl CallCommand for SetCallback {
    const PATH: &'static str = "call_config/set_callback";
    const IDEMPOTENT: bool = true;
    type Response = ();
    fn body(&self) -> Result<Value, InvalidArgument> {
        let url = check_stream_url("Url", &self.url)?;
        if url.scheme() == "rtmp" {
            return Err(InvalidArgument::new(
                "Url",
                &self.url,
                "an http:// or https:// URL",
            ));
        }
        if self.commands.is_empty() {
            return Err(InvalidArgument::new(
                "CallbackCommandList",
                "[]",
                "one or more of Call.CallbackAfterStartCall, Call.CallbackAfterEndCall, Call.CallbackAfterMemberChanged",
            ));
        }
        Ok(json!({ "Url": self.url, "CallbackCommandList": self.commands }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCallback;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct CallbackConfig {
    #[serde(rename = "Url", default)]
    pub url: String,
    #[serde(rename = "CallbackCommandList", default)]
    pub commands: Vec<String>,
}

impl CallCommand for GetCallback {
    const PATH: &'static str = "call_config/get_callback";
    const IDEMPOTENT: bool = true;
    type Response = CallbackConfig;
    fn body(&self) -> Result<Value, InvalidArgument> {
        Ok(json!({}))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteCallback;

impl CallCommand for DeleteCallback {
    const PATH: &'static str = "call_config/delete_callback";
    const IDEMPOTENT: bool = true;
    type Response = ();
    fn body(&self) -> Result<Value, InvalidArgument> {
        Ok(json!({}))
    }
}
