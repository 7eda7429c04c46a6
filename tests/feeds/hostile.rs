//! Hostile publishers against the RTMP server: garbage after the handshake, a handshake that
//! never ends, absurd pictures, HEVC over Enhanced RTMP, a flood, thousands of wrong keys.
//! Each is dropped with a reason, and the feed a real encoder publishes to keeps going.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callfeed::feed::rtmp::RtmpLimits;
use callfeed::feed::{FeedRequest, FeedState, Feeds};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::publishers::push_rtmp;
use super::rtmp_server::{RtmpFeeds, rtmp_feeds, rtmp_url, wait_state};

/// A publisher written for the test: it says exactly what the test wants it to.
struct Crafted {
    socket: TcpStream,
    session: ClientSession,
}

impl Crafted {
    /// Connects from `from` (a loopback address) and completes the handshake.
    async fn handshake(server: SocketAddr, from: &str) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut socket = socket.connect(server).await.unwrap();
        let mut handshake = Handshake::new(PeerType::Client);
        let first = handshake.generate_outbound_p0_and_p1().unwrap();
        socket.write_all(&first).await.unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed during the handshake");
            match handshake.process_bytes(&buf[..n]).unwrap() {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    socket.write_all(&response_bytes).await.unwrap()
                }
                HandshakeProcessResult::Completed { response_bytes, .. } => {
                    socket.write_all(&response_bytes).await.unwrap();
                    return socket;
                }
            }
        }
    }

    /// Connects to `live` and asks to publish with `key`: whether the server took it.
    async fn publish(server: SocketAddr, from: &str, key: &str) -> (Self, bool) {
        let socket = Self::handshake(server, from).await;
        let (session, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
        let mut me = Self { socket, session };
        let connect = me.session.request_connection("live".into()).unwrap();
        me.send(connect).await;
        if !me
            .until(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
            .await
        {
            return (me, false);
        }
        let publish = me
            .session
            .request_publishing(key.into(), PublishRequestType::Live)
            .unwrap();
        me.send(publish).await;
        let taken = me
            .until(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
            .await;
        (me, taken)
    }

    /// Sends a packet; false once the server no longer takes them.
    async fn send(&mut self, result: ClientSessionResult) -> bool {
        match result {
            ClientSessionResult::OutboundResponse(packet) => {
                self.socket.write_all(&packet.bytes).await.is_ok()
            }
            _ => true,
        }
    }

    /// Reads until an event `wanted` comes (true) or the server closes (false).
    async fn until(&mut self, wanted: impl Fn(&ClientSessionEvent) -> bool) -> bool {
        let mut buf = vec![0u8; 65536];
        loop {
            let read =
                tokio::time::timeout(Duration::from_secs(5), self.socket.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return false };
            if n == 0 {
                return false;
            }
            let Ok(results) = self.session.handle_input(&buf[..n]) else {
                return false;
            };
            for result in results {
                match result {
                    ClientSessionResult::RaisedEvent(e) if wanted(&e) => return true,
                    ClientSessionResult::OutboundResponse(p) => {
                        let _ = self.socket.write_all(&p.bytes).await;
                    }
                    _ => {}
                }
            }
        }
    }

    async fn metadata(&mut self, width: u32, height: u32) {
        let mut metadata = StreamMetadata::new();
        metadata.video_width = Some(width);
        metadata.video_height = Some(height);
        metadata.video_codec_id = Some(7);
        let sent = self.session.publish_metadata(&metadata).unwrap();
        self.send(sent).await;
    }

    async fn video(&mut self, body: &[u8], ms: u32) -> bool {
        let sent = self
            .session
            .publish_video_data(Bytes::copy_from_slice(body), RtmpTimestamp::new(ms), false)
            .unwrap();
        self.send(sent).await
    }
}

/// Waits (at most `within`) until the server closes `socket`.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn live_feed(t: &RtmpFeeds) -> (String, tokio::process::Child) {
    let view = t.feeds.create(FeedRequest::default(), None).unwrap();
    let publisher = push_rtmp(&rtmp_url(&view));
    wait_state(&t.feeds, &view.id, FeedState::Live, Duration::from_secs(15)).await;
    (view.id, publisher)
}

fn key_of(feeds: &Feeds, id: &str) -> String {
    let url = rtmp_url(&feeds.get(id, true).unwrap());
    url.rsplit('/').next().unwrap().to_owned()
}

/// The feed still runs on its publisher, and its frames still grow.
async fn still_live(feeds: &Feeds, id: &str) {
    let before = feeds.get(id, false).unwrap().figures.frames_in;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let now = feeds.get(id, false).unwrap();
        assert_eq!(now.state, FeedState::Live, "{now:?}");
        if now.figures.frames_in > before + 15 {
            return;
        }
        assert!(Instant::now() < until, "the feed stopped: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalled_handshakes_are_dropped_and_the_live_feed_goes_on() {
    let limits = RtmpLimits {
        handshake: Duration::from_secs(2),
        publish_within: Duration::from_secs(3),
        ..Default::default()
    };
    let t = rtmp_feeds(limits).await;
    let server = t._server.local_addr();
    let (id, _publisher) = live_feed(&t).await;

    // Noise after a good handshake.
    let mut noise = Crafted::handshake(server, "127.0.0.1").await;
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    noise.write_all(&junk).await.unwrap();
    assert!(
        closed_within(&mut noise, Duration::from_secs(1)).await,
        "noise kept the connection"
    );

    // A data message the protocol library cannot take (it panicked in rml_rtmp 0.8): chunk
    // stream 3, type 18, 16 bytes holding only the AMF0 string "@setDataFrame".
    let mut crafted = Crafted::handshake(server, "127.0.0.1").await;
    let mut message = vec![0x03, 0, 0, 0, 0, 0, 16, 18, 1, 0, 0, 0];
    message.extend_from_slice(&[0x02, 0x00, 0x0d]);
    message.extend_from_slice(b"@setDataFrame");
    crafted.write_all(&message).await.unwrap();
    assert!(closed_within(&mut crafted, Duration::from_secs(5)).await);

    // A handshake that never ends, and a connection that never publishes.
    let mut stalled = TcpStream::connect(server).await.unwrap();
    stalled.write_all(&[3]).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut stalled, Duration::from_secs(4)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let mut idle = Crafted::handshake(server, "127.0.0.1").await;
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await);

    still_live(&t.feeds, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_pictures_hevc_and_floods_are_dropped_with_their_reason() {
    let limits = RtmpLimits {
        max_kbps: 6000,
        ..Default::default()
    };
    let t = rtmp_feeds(limits).await;
    let server = t._server.local_addr();
    let (live, _publisher) = live_feed(&t).await;
    let target = t.feeds.create(FeedRequest::default(), None).unwrap().id;
    let key = key_of(&t.feeds, &target);
    let reason = |feeds: &Feeds| {
        feeds
            .get(&target, false)
            .unwrap()
            .last_refusal
            .unwrap()
            .reason
    };

    let (mut huge, taken) = Crafted::publish(server, "127.0.0.1", &key).await;
    assert!(taken);
    huge.metadata(8192, 8192).await;
    assert!(closed_within(&mut huge.socket, Duration::from_secs(2)).await);
    assert!(
        reason(&t.feeds).contains("8192x8192"),
        "{}",
        reason(&t.feeds)
    );

    let (mut hevc, taken) = Crafted::publish(server, "127.0.0.1", &key).await;
    assert!(taken);
    hevc.video(&[0x90, b'h', b'v', b'c', b'1', 1, 2, 3], 0)
        .await;
    assert!(closed_within(&mut hevc.socket, Duration::from_secs(2)).await);
    assert!(
        reason(&t.feeds).contains("Enhanced RTMP"),
        "{}",
        reason(&t.feeds)
    );

    // As fast as loopback takes it, against a 6 Mb/s cap (the real encoder sends 2.5).
    let (mut flood, taken) = Crafted::publish(server, "127.0.0.1", &key).await;
    assert!(taken);
    // Within RTMP's first chunk size (128): this client never announces another.
    let frame = vec![0x27u8; 120];
    let started = Instant::now();
    let mut ms = 0;
    while started.elapsed() < Duration::from_secs(3) && flood.video(&frame, ms).await {
        ms += 1;
    }
    assert!(closed_within(&mut flood.socket, Duration::from_secs(3)).await);
    let said = reason(&t.feeds);
    assert!(
        // On a loaded machine the decoder may give up on the garbage before the cap trips.
        said.contains("bitrate cap")
            || said.contains("faster than real time")
            || said.contains("decoder gave up")
            || said.contains("no longer takes this publisher"),
        "{said}; the feed: {:?}",
        t.feeds.get(&target, false)
    );

    still_live(&t.feeds, &live).await;
    assert_eq!(
        t.feeds.get(&target, false).unwrap().state,
        FeedState::Waiting
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_guessing_keys_is_turned_away_and_others_are_not() {
    let t = rtmp_feeds(Default::default()).await;
    let server = t._server.local_addr();
    let view = t.feeds.create(FeedRequest::default(), None).unwrap();
    let started = Instant::now();
    let mut refused_at_the_door = 0;
    for n in 0..1000u32 {
        // 127.0.0.2 is this machine too: another address than the encoder's.
        let guess = format!("{n:032x}");
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut raw = socket.connect(server).await.unwrap();
        let _ = raw.write_all(&[3]).await;
        if closed_within(&mut raw, Duration::from_millis(500)).await {
            refused_at_the_door += 1;
            continue;
        }
        drop(raw);
        let (_, taken) = Crafted::publish(server, "127.0.0.2", &guess).await;
        assert!(!taken);
    }
    assert!(refused_at_the_door >= 980, "{refused_at_the_door}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    // The encoder, from its own address, is let in at once.
    let _publisher = push_rtmp(&rtmp_url(&view));
    wait_state(&t.feeds, &view.id, FeedState::Live, Duration::from_secs(15)).await;
}
