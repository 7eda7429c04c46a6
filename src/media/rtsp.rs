//! RTSP cameras as rtspsrc plays them: the URL a camera is given (callfeed's own
//! `transport` option taken out, since rtspsrc sends the whole URL in its requests) and the
//! source's timings, which suit a call better than its defaults (2 s of latency; 20 s before a
//! camera that never answers is given up).

use gstreamer as gst;
use gstreamer::prelude::*;

/// The jitter buffer rtspsrc keeps: a call needs low latency more than late packets.
const LATENCY_MS: u32 = 200;
/// How long a camera may take to answer a request.
const TCP_TIMEOUT_US: u64 = 5_000_000;
/// How long rtspsrc waits for UDP packets before it retries over TCP.
const UDP_TIMEOUT_US: u64 = 3_000_000;

/// Whether `url` is a camera's RTSP URL.
pub(crate) fn is_rtsp(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("rtsp://") || lower.starts_with("rtsps://")
}

/// The URI the element opens for a camera's URL: `?transport=tcp` becomes rtspsrc's own
/// TCP scheme (`rtspt`, `rtspst`), `transport=udp` is the default (UDP, TCP when no packet
/// comes); every other part of the URL goes to the camera as it was.
pub(crate) fn element_uri(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let mut tcp = false;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, v)| {
            let ours = k == "transport";
            tcp |= ours && v.eq_ignore_ascii_case("tcp");
            !ours
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let text = parsed.to_string();
    match (tcp, parsed.scheme()) {
        (true, "rtsp") => text.replacen("rtsp://", "rtspt://", 1),
        (true, "rtsps") => text.replacen("rtsps://", "rtspst://", 1),
        _ => text,
    }
}

/// Where a camera's `DESCRIBE` sends its client, when it answers with a redirect: rtspsrc
/// follows one to any host without a word, so an API client's camera URL is asked first, as
/// HTTP redirects are. Connects to `addrs` (already judged) when given. `None`: no
/// redirect, or no answer in `within` (the probe then names what is wrong).
pub(crate) async fn redirect_of(
    url: &url::Url,
    addrs: Option<&[std::net::SocketAddr]>,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut asked = url.clone();
    let _ = asked.set_username("");
    let _ = asked.set_password(None);
    let asked = element_uri(asked.as_str());
    let port = url.port().unwrap_or(554);
    let answer = tokio::time::timeout(within, async {
        let mut socket = match addrs.and_then(|a| a.first()) {
            Some(addr) => tokio::net::TcpStream::connect((addr.ip(), port)).await.ok()?,
            None => tokio::net::TcpStream::connect((url.host_str()?, port)).await.ok()?,
        };
        let request = format!(
            "DESCRIBE {asked} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\nUser-Agent: callfeed\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = socket.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    })
    .await
    .ok()??;
    let mut lines = answer.lines();
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    if !(300..400).contains(&status) {
        return None;
    }
    lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("location")
            .then(|| value.trim().to_owned())
    })
}

/// Sets a source's timings when it is rtspsrc; anything else is left as it is.
pub(crate) fn tune(source: &gst::Element) {
    if source.factory().is_some_and(|f| f.name() == "rtspsrc") {
        source.set_property("latency", LATENCY_MS);
        source.set_property("tcp-timeout", TCP_TIMEOUT_US);
        source.set_property("timeout", UDP_TIMEOUT_US);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_option_is_callfeed_s_and_the_rest_goes_to_the_camera() {
        assert_eq!(
            element_uri("rtsp://cam:pw@10.0.0.5:554/stream1?transport=tcp"),
            "rtspt://cam:pw@10.0.0.5:554/stream1"
        );
        assert_eq!(
            element_uri("rtsps://h/s?channel=2&transport=TCP&subtype=0"),
            "rtspst://h/s?channel=2&subtype=0"
        );
        assert_eq!(element_uri("rtsp://h/s?transport=udp"), "rtsp://h/s");
        assert_eq!(element_uri("rtsp://h/s"), "rtsp://h/s");
        assert!(is_rtsp("RTSP://h/s") && is_rtsp("rtsps://h") && !is_rtsp("rtmp://h"));
    }
}
