//! A headless Chromium driven through ChromeDriver, as the console tests use it.

use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// ChromeDriver on a free port, and a headless Chromium session through it.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = self._driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{group}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

impl Browser {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The same, with more of Chromium's switches (a fake camera, say).
    pub(crate) async fn start_with(extra: &[String]) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // A process group of its own: Chromium, which ChromeDriver starts, is in it too and
        // goes with it (killing ChromeDriver alone leaves Chromium running, orphaned).
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; `make setup` installs it)");
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=1280,1000",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-component-update",
            "--disable-default-apps",
        ]
        .map(String::from)
        .into();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().cloned());
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": args,
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let caps: serde_json::Map<String, Value> = caps.as_object().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            let plain_http = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(plain_http)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "chromedriver did not start a browser: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// The browser console's entries since the last call (ChromeDriver's log endpoint).
    pub(crate) async fn console_entries(&self) -> Vec<Value> {
        let answer = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser's console log");
        answer.as_array().cloned().unwrap_or_default()
    }

    pub(crate) async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits for `script` to return something other than null/false, polling the page.
    pub(crate) async fn until(&self, what: &str, within: Duration, script: &str) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.js(script).await;
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.js("return document.body.innerText").await;
                panic!("{what}: not within {within:?}; the page shows:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Opens the console at `api` and waits for its sign-in form.
    pub(crate) async fn open_sign_in(&self, api: &str) {
        self.client.goto(&format!("{api}/")).await.unwrap();
        self.until(
            "the sign-in form",
            Duration::from_secs(10),
            "return document.getElementById('token')",
        )
        .await;
    }

    /// Signs in from the open form with the keyboard (the token, then Enter) and waits for
    /// the console.
    pub(crate) async fn sign_in(&self, token: &str) {
        self.type_into("#token", &format!("{token}\n")).await;
        self.until(
            "the signed-in console",
            Duration::from_secs(10),
            "return !document.getElementById('nav').hidden && document.querySelector('[data-count=sessions]')",
        )
        .await;
    }

    /// Opens the new-session form from the navigation.
    pub(crate) async fn open_form(&self) {
        self.click("#nav a[href='#/new']").await;
        self.until(
            "the form",
            Duration::from_secs(5),
            "return document.getElementById('new-session')",
        )
        .await;
    }

    /// Waits, without reloading, for the element `css` names to show `text`.
    pub(crate) async fn until_text(&self, css: &str, text: &str, within: Duration) {
        let read = text_of(css);
        self.until(
            &format!("{css} showing {text}"),
            within,
            &format!("const now = (() => {{ {read} }})(); return now === {text:?} ? now : null;"),
        )
        .await;
    }

    /// Waits (at most 30 s) for the element `css` names to show a tone (`440 Hz`); its
    /// frequency.
    pub(crate) async fn until_hz(&self, what: &str, css: &str) -> f64 {
        let tone = self
            .until(what, Duration::from_secs(30), &text_of(css))
            .await;
        tone.as_str()
            .unwrap()
            .trim_end_matches(" Hz")
            .parse()
            .unwrap()
    }

    /// Waits for the text of `css` to change twice: two redraws of the view.
    pub(crate) async fn redrawn(&self, css: &str) {
        let read = text_of(css);
        for _ in 0..2 {
            let before = self.js(&read).await;
            self.until(
                "a redraw",
                Duration::from_secs(5),
                &format!(
                    "const now = (() => {{ {read} }})(); return now !== {before} ? now : null;"
                ),
            )
            .await;
        }
    }

    /// Presses Enter on whatever has the focus.
    pub(crate) async fn press_enter(&self) {
        let focused = self.client.active_element().await.unwrap();
        focused
            .send_keys(&fantoccini::key::Key::Enter.to_string())
            .await
            .unwrap();
    }

    /// Clicks the element `css` names; found again if the page re-rendered it meanwhile
    /// (the list redraws as figures arrive).
    pub(crate) async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self.client.find(Locator::Css(css)).await;
            let clicked = match found {
                Ok(element) => element.click().await,
                Err(e) => Err(e),
            };
            match clicked {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        if let Ok(dir) = std::env::var("CALLFEED_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
        }
    }
}

/// ChromeDriver's `POST /session/{id}/se/log` for the browser console.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

pub(crate) fn errors(entries: &[Value]) -> Vec<&Value> {
    entries.iter().filter(|e| e["level"] == "SEVERE").collect()
}

/// What the page's text shows in one element, or null.
pub(crate) fn text_of(css: &str) -> String {
    format!("const e = document.querySelector({css:?}); return e ? e.textContent : null;")
}
