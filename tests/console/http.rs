//! The console's HTTP side, read as a script would: plain requests and an event stream.

use std::time::Duration;

/// One HTTP request to the server: (status, headers, body).
pub(crate) async fn request(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut r = reqwest::Client::new().request(method, url);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let answer = r.send().await.unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    (status, headers, answer.text().await.unwrap_or_default())
}

pub(crate) type Sse = (String, String, String);

/// An open event stream, read as far as a test needs: (event, id, data) triples.
pub(crate) struct EventStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    text: String,
    events: Vec<Sse>,
}

impl EventStream {
    pub(crate) async fn open(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut r = reqwest::Client::new().get(url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let answer = r.send().await.unwrap();
        assert_eq!(answer.status(), 200);
        Self {
            body: Box::pin(answer.bytes_stream()),
            text: String::new(),
            events: Vec::new(),
        }
    }

    /// Reads on until `enough` says so (or a deadline); every event read so far.
    pub(crate) async fn until(&mut self, enough: impl Fn(&[Sse]) -> bool) -> &[Sse] {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !enough(&self.events) {
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("events so far: {:#?}", self.events))
                .expect("the stream goes on")
                .unwrap();
            self.text.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .filter_map(|l| l.strip_prefix(name))
                        .map(str::trim_start)
                        .collect::<Vec<_>>()
                        .join("")
                };
                if !field("event:").is_empty() {
                    self.events
                        .push((field("event:"), field("id:"), field("data:")));
                }
            }
        }
        &self.events
    }
}
