//! One RTMP connection: the handshake under a deadline, `connect` to the one application,
//! `publish` with a feed's stream key, then audio and video handed to the feed as FLV tags
//! until the publisher finishes, goes quiet, breaks a limit or is dropped by its feed.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent as Event, ServerSessionResult,
    StreamMetadata,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::limits::{APP, RtmpLimits};
use crate::feed::strikes::Strikes;
use crate::feed::{Claim, Feeds, PushTarget};
use crate::media::flv::{TAG_AUDIO, TAG_VIDEO};

/// How long one write to a publisher may take.
const WRITE_WITHIN: Duration = Duration::from_secs(5);
/// The window a publisher's rate is measured over: keyframes come in bursts.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// Serves one connection to its end; the answer says how it ended, for the log.
pub(super) async fn serve(
    mut socket: TcpStream,
    peer: SocketAddr,
    feeds: &Feeds,
    limits: &RtmpLimits,
    strikes: &Strikes,
) -> String {
    let started = Instant::now();
    let rest = match tokio::time::timeout(limits.handshake, handshake(&mut socket)).await {
        Ok(Ok(rest)) => rest,
        Ok(Err(reason)) => return reason,
        Err(_) => {
            return format!("no RTMP handshake within {}s", limits.handshake.as_secs());
        }
    };
    let (session, first) = match ServerSession::new(ServerSessionConfig::new()) {
        Ok(made) => made,
        Err(e) => return format!("the RTMP session could not start: {e}"),
    };
    let mut connection = Connection {
        socket,
        peer,
        address: peer.to_string(),
        session,
        publisher: None,
        feeds,
        limits,
        strikes,
        rate: Rate::new(),
        finished: None,
    };
    match connection.run(first, &rest, started).await {
        Ok(how) => how,
        Err(reason) => {
            if let Some(p) = &connection.publisher {
                p.dropped(&reason, &connection.address);
            }
            reason
        }
    }
}

/// The handshake; what the peer sent after it is the session's first input.
async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut handshake = Handshake::new(PeerType::Server);
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .read(&mut buf)
            .await
            .map_err(|e| format!("read failed during the handshake: {e}"))?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        let step =
            std::panic::catch_unwind(AssertUnwindSafe(|| handshake.process_bytes(&buf[..n])))
                .map_err(|_| "not an RTMP handshake".to_string())?
                .map_err(|e| format!("not an RTMP handshake: {e}"))?;
        let (reply, rest) = match step {
            HandshakeProcessResult::InProgress { response_bytes } => (response_bytes, None),
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => (response_bytes, Some(remaining_bytes)),
        };
        socket
            .write_all(&reply)
            .await
            .map_err(|e| format!("write failed during the handshake: {e}"))?;
        if let Some(rest) = rest {
            return Ok(rest);
        }
    }
}

struct Connection<'a> {
    socket: TcpStream,
    peer: SocketAddr,
    address: String,
    session: ServerSession,
    publisher: Option<PushTarget>,
    feeds: &'a Feeds,
    limits: &'a RtmpLimits,
    strikes: &'a Strikes,
    rate: Rate,
    /// Set when the publisher said it is done.
    finished: Option<String>,
}

impl Connection<'_> {
    async fn run(
        &mut self,
        first: Vec<ServerSessionResult>,
        rest: &[u8],
        started: Instant,
    ) -> Result<String, String> {
        let mut pending = first;
        pending.extend(self.handle_input(rest)?);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while !pending.is_empty() {
                for result in std::mem::take(&mut pending) {
                    pending.extend(self.on_result(result).await?);
                }
            }
            if let Some(how) = self.finished.take() {
                return Ok(how);
            }
            let deadline = match self.publisher {
                None => tokio::time::Instant::from_std(started + self.limits.publish_within),
                Some(_) => tokio::time::Instant::now() + self.limits.idle,
            };
            let kicked = async {
                match self.publisher.as_mut() {
                    Some(p) => p.kicked().await,
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                read = tokio::time::timeout_at(deadline, self.socket.read(&mut buf)) => read,
                why = kicked => return Err(why.into()),
            };
            let n = match read {
                Err(_) if self.publisher.is_none() => {
                    return Err(format!(
                        "no publish within {}s of connecting",
                        self.limits.publish_within.as_secs()
                    ));
                }
                Err(_) => {
                    return Err(format!("no data for {}s", self.limits.idle.as_secs()));
                }
                Ok(Err(e)) => return Err(format!("read failed: {e}")),
                Ok(Ok(0)) => return Ok("the publisher closed the connection".into()),
                Ok(Ok(n)) => n,
            };
            if self.publisher.is_some() {
                self.rate.add(n as u64, self.limits.max_kbps)?;
            }
            pending = self.handle_input(&buf[..n])?;
        }
    }

    /// The protocol state fed with what arrived. A panic in it is a malformed message.
    fn handle_input(&mut self, bytes: &[u8]) -> Result<Vec<ServerSessionResult>, String> {
        let session = &mut self.session;
        match std::panic::catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes))) {
            Ok(Ok(results)) => Ok(results),
            Ok(Err(e)) => Err(format!("malformed RTMP: {e}")),
            Err(_) => Err("malformed RTMP (a message the protocol reader cannot take)".into()),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match tokio::time::timeout(WRITE_WITHIN, self.socket.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!("a write took over {}s", WRITE_WITHIN.as_secs())),
        }
    }

    async fn on_result(
        &mut self,
        result: ServerSessionResult,
    ) -> Result<Vec<ServerSessionResult>, String> {
        match result {
            ServerSessionResult::OutboundResponse(packet) => {
                self.write(&packet.bytes).await?;
                Ok(Vec::new())
            }
            ServerSessionResult::RaisedEvent(event) => self.on_event(event).await,
            ServerSessionResult::UnhandleableMessageReceived(_) => Ok(Vec::new()),
        }
    }

    async fn on_event(&mut self, event: Event) -> Result<Vec<ServerSessionResult>, String> {
        let protocol = |e: rml_rtmp::sessions::ServerSessionError| format!("RTMP session: {e}");
        match event {
            Event::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_matches(&app_name) {
                    return self.session.accept_request(request_id).map_err(protocol);
                }
                let reason = format!(
                    "unknown application `{}`: publish to rtmp://HOST:PORT/{APP}",
                    app_name.chars().take(40).collect::<String>()
                );
                self.refuse(request_id, "NetConnection.Connect.Rejected", &reason)
                    .await
            }
            Event::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                if self.publisher.is_some() {
                    return Err("a second publish on one connection".into());
                }
                // Some encoders append a query to the key; the key is what comes before it.
                let key = stream_key.split('?').next().unwrap_or_default();
                match self.feeds.claim_rtmp(key, &self.address) {
                    Ok(publisher) => {
                        self.publisher = Some(publisher);
                        self.session.accept_request(request_id).map_err(protocol)
                    }
                    Err(Claim::WrongKey) => {
                        self.strikes.strike(self.peer.ip());
                        self.refuse(request_id, "NetStream.Publish.BadName", "wrong stream key")
                            .await
                    }
                    Err(Claim::Taken) => {
                        self.refuse(
                            request_id,
                            "NetStream.Publish.BadName",
                            "the feed already has a publisher",
                        )
                        .await
                    }
                }
            }
            Event::StreamMetadataChanged { metadata, .. } => {
                self.on_metadata(&metadata)?;
                Ok(Vec::new())
            }
            Event::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(TAG_VIDEO, timestamp.value, &data)?;
                Ok(Vec::new())
            }
            Event::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.on_media(TAG_AUDIO, timestamp.value, &data)?;
                Ok(Vec::new())
            }
            Event::PlayStreamRequested { .. } => {
                Err("refused a play request: this server only takes publishers".into())
            }
            Event::PublishStreamFinished { .. } => {
                self.finished = Some("the publisher finished".into());
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Turns a request down with a status the publisher shows, then closes.
    async fn refuse(
        &mut self,
        request_id: u32,
        code: &str,
        reason: &str,
    ) -> Result<Vec<ServerSessionResult>, String> {
        if let Ok(results) = self.session.reject_request(request_id, code, reason) {
            for result in results {
                if let ServerSessionResult::OutboundResponse(packet) = result {
                    let _ = self.write(&packet.bytes).await;
                }
            }
        }
        let _ = self.socket.shutdown().await;
        Err(format!("refused: {reason}"))
    }

    fn on_metadata(&mut self, metadata: &StreamMetadata) -> Result<(), String> {
        let Some(publisher) = &self.publisher else {
            return Ok(());
        };
        let (max_w, max_h) = self.limits.max_picture;
        if let (Some(w), Some(h)) = (metadata.video_width, metadata.video_height)
            && (w.max(h) > max_w.max(max_h) || w.min(h) > max_w.min(max_h))
        {
            return Err(format!(
                "a {w}x{h} picture is larger than this node takes ({max_w}x{max_h}): send 4K or less"
            ));
        }
        publisher.describe(|view| {
            view.width = metadata.video_width;
            view.height = metadata.video_height;
            view.fps = metadata.video_frame_rate;
            view.video_codec = metadata.video_codec_id.map(video_codec_name);
            view.audio_codec = metadata.audio_codec_id.map(audio_codec_name);
            view.audio_rate = metadata.audio_sample_rate;
            view.encoder = metadata
                .encoder
                .as_ref()
                .map(|e| e.chars().filter(|c| !c.is_control()).take(80).collect());
        });
        Ok(())
    }

    fn on_media(&mut self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<(), String> {
        let Some(publisher) = self.publisher.as_mut() else {
            return Ok(());
        };
        if let Some(reason) = refused_codec(kind, body) {
            return Err(reason.into());
        }
        publisher.send(kind, timestamp_ms, body)
    }
}

/// Whether a connect names the one application (`live`, leniently: `live/`, `live?x`).
fn app_matches(app: &str) -> bool {
    app.split('?').next().unwrap_or_default().trim_matches('/') == APP
}

/// Why an audio or video message cannot go to the decoder, read from its first bytes:
/// Enhanced RTMP (HEVC, AV1, VP9 and its audio), the CDN convention for HEVC, and HEVC sent
/// under H.264's codec id (an AVC sequence header that is not an AVC configuration record).
pub(super) fn refused_codec(kind: u8, body: &[u8]) -> Option<&'static str> {
    let first = *body.first()?;
    match kind {
        TAG_VIDEO if first & 0x80 != 0 => {
            Some("Enhanced RTMP video (HEVC, AV1 or VP9) is not taken: set the encoder to H.264")
        }
        TAG_VIDEO if first & 0x0f == 12 => {
            Some("HEVC over RTMP is not taken: set the encoder to H.264")
        }
        // An AVC sequence header: packet type 0, then AVCDecoderConfigurationRecord version 1.
        TAG_VIDEO if first & 0x0f == 7 && body.get(1) == Some(&0) && body.get(5) != Some(&1) => {
            Some(
                "the H.264 sequence header is not an AVC configuration record (HEVC sent as H.264?): set the encoder to H.264",
            )
        }
        TAG_AUDIO if first >> 4 == 9 => {
            Some("Enhanced RTMP audio is not taken: set the encoder's audio to AAC")
        }
        _ => None,
    }
}

fn video_codec_name(id: u32) -> String {
    match id {
        7 => "h264".into(),
        12 => "hevc".into(),
        2 => "sorenson".into(),
        4 => "vp6".into(),
        other => format!("codec {other}"),
    }
}

fn audio_codec_name(id: u32) -> String {
    match id {
        10 => "aac".into(),
        2 => "mp3".into(),
        other => format!("codec {other}"),
    }
}

/// A publisher's rate over [`RATE_WINDOW`].
struct Rate {
    since: Instant,
    bytes: u64,
}

impl Rate {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            bytes: 0,
        }
    }

    fn add(&mut self, bytes: u64, max_kbps: u64) -> Result<(), String> {
        self.bytes += bytes;
        let window_bits = max_kbps * 1000 * RATE_WINDOW.as_secs();
        // Over the whole window's allowance before the window is over: no need to wait.
        let over = self.bytes * 8 > window_bits;
        let elapsed = self.since.elapsed();
        if over || elapsed >= RATE_WINDOW {
            let kbps = self.bytes * 8 / elapsed.max(Duration::from_millis(1)).as_millis() as u64;
            if over || kbps > max_kbps {
                return Err(format!(
                    "over the bitrate cap: {} kbit/s sent, {max_kbps} kbit/s allowed",
                    kbps.max(max_kbps + 1)
                ));
            }
            *self = Self::new();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_the_decoder_cannot_take_are_named() {
        let avc_header = [0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f];
        assert_eq!(refused_codec(TAG_VIDEO, &avc_header), None);
        assert_eq!(refused_codec(TAG_VIDEO, &[0x27, 1, 0, 0, 0]), None);
        assert_eq!(refused_codec(TAG_AUDIO, &[0xaf, 1, 0x21]), None);
        let enhanced_hevc = [0x90, b'h', b'v', b'c', b'1'];
        assert!(
            refused_codec(TAG_VIDEO, &enhanced_hevc)
                .unwrap()
                .contains("Enhanced RTMP")
        );
        assert!(
            refused_codec(TAG_VIDEO, &[0x1c, 0, 0, 0, 0])
                .unwrap()
                .contains("HEVC")
        );
        let hevc_as_avc = [0x17, 0, 0, 0, 0, 0x01 ^ 0x02, 0x01];
        assert!(
            refused_codec(TAG_VIDEO, &hevc_as_avc)
                .unwrap()
                .contains("configuration record")
        );
        assert!(refused_codec(TAG_AUDIO, &[0x90, b'O', b'p', b'u', b's']).is_some());
    }

    #[test]
    fn the_application_is_matched_leniently() {
        for app in ["live", "live/", "/live", "live?token=x"] {
            assert!(app_matches(app), "{app}");
        }
        assert!(!app_matches("other"));
    }

    #[test]
    fn a_flood_is_cut_before_its_window_is_over() {
        let mut rate = Rate::new();
        let cap = 1000;
        assert!(rate.add(100_000, cap).is_ok());
        let cut = rate.add(200_000, cap).unwrap_err();
        assert!(cut.contains("bitrate cap"), "{cut}");
    }
}
