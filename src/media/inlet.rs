//! The door of a pushed input: a publisher connected to callfeed (an encoder pushing RTMP,
//! later SRT or WHIP glue) hands its media in as FLV tags; the live stream's input side takes
//! one publisher at a time, each connection an input attempt with a demuxer of its own (a
//! publisher that comes back restarts its timestamps and may change its codec headers).
//!
//! The tags queue is bounded: a publisher faster than real time (or a decoder slower) fills
//! it, and the next tag is refused, which drops the publisher with that reason instead of
//! buffering without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

/// Tags queued for the demuxer at most: about five seconds of 30 fps video and its audio.
pub(crate) const TAG_QUEUE: usize = 400;
/// Connections waiting for the input side at most: the one being served and one just made.
const WAITING_CONNECTIONS: usize = 2;

/// What a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// FLV tags, from an RTMP publisher (the file header is written for it).
    Flv,
    /// An MPEG transport stream as it comes (from an SRT caller).
    MpegTs,
    /// A live Matroska stream (a WHIP publisher's media, depayloaded and muxed).
    Matroska,
}

/// Why a tag or a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InletError {
    /// The stream stopped taking this connection (it ended, or the attempt was given up).
    #[error("the feed no longer takes this publisher")]
    Closed,
    /// More media arrived than the stream decodes in real time.
    #[error("the publisher sends faster than real time (or above the bitrate the node decodes)")]
    Overflow,
    /// A connection is already waiting to be taken.
    #[error("another publisher is connecting")]
    Busy,
}

/// A pushed input's door; clones share it.
#[derive(Clone)]
pub struct Inlet {
    connections: mpsc::Sender<Connection>,
    waiting: Arc<tokio::sync::Mutex<mpsc::Receiver<Connection>>>,
    bytes_in: Arc<AtomicU64>,
}

impl PartialEq for Inlet {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.waiting, &other.waiting)
    }
}

impl std::fmt::Debug for Inlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inlet").finish_non_exhaustive()
    }
}

impl Default for Inlet {
    fn default() -> Self {
        Self::new()
    }
}

impl Inlet {
    pub fn new() -> Self {
        let (connections, waiting) = mpsc::channel(WAITING_CONNECTIONS);
        Self {
            connections,
            waiting: Arc::new(tokio::sync::Mutex::new(waiting)),
            bytes_in: Arc::default(),
        }
    }

    /// A publisher connects: what it writes goes to the stream's next input attempt.
    pub fn connect(&self, container: Container) -> Result<InletWriter, InletError> {
        let (tags, queued) = mpsc::channel(TAG_QUEUE);
        self.connections
            .try_send(Connection {
                tags: queued,
                container,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => InletError::Busy,
                mpsc::error::TrySendError::Closed(_) => InletError::Closed,
            })?;
        Ok(InletWriter {
            tags,
            bytes_in: self.bytes_in.clone(),
            header_sent: container != Container::Flv,
        })
    }

    /// The next publisher's connection, when one comes; `None` once no writer can come.
    pub(crate) async fn accept(&self) -> Option<Connection> {
        self.waiting.lock().await.recv().await
    }

    /// Counts media that went around the inlet (a passed-through publisher's).
    pub fn count(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Bytes of media publishers have written, over the inlet's life.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
}

/// One publisher's connection as the input side reads it: an FLV byte stream, tag by tag
/// (the file header first). Closed when the publisher goes.
pub(crate) struct Connection {
    pub(crate) tags: mpsc::Receiver<Bytes>,
    pub(crate) container: Container,
}

/// What a publisher writes with; dropping it ends the connection (the input side sees the
/// end of the stream).
pub struct InletWriter {
    tags: mpsc::Sender<Bytes>,
    bytes_in: Arc<AtomicU64>,
    header_sent: bool,
}

impl InletWriter {
    /// Hands one FLV tag body over: `kind` is [`TAG_AUDIO`](super::flv::TAG_AUDIO),
    /// [`TAG_VIDEO`](super::flv::TAG_VIDEO) or [`TAG_SCRIPT`](super::flv::TAG_SCRIPT),
    /// `body` what an RTMP audio, video or data message carries.
    pub fn send(&mut self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<(), InletError> {
        if !self.header_sent {
            self.push(Bytes::from_static(&super::flv::FILE_HEADER))?;
            self.header_sent = true;
        }
        self.bytes_in
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        self.push(super::flv::tag(kind, timestamp_ms, body))
    }

    /// Hands a piece of a byte stream over as it came (an MPEG-TS connection's packets).
    pub fn send_bytes(&mut self, bytes: Bytes) -> Result<(), InletError> {
        self.bytes_in
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.push(bytes)
    }

    fn push(&self, bytes: Bytes) -> Result<(), InletError> {
        self.tags.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InletError::Overflow,
            mpsc::error::TrySendError::Closed(_) => InletError::Closed,
        })
    }

    /// Whether the stream stopped taking this connection.
    pub fn is_closed(&self) -> bool {
        self.tags.is_closed()
    }

    /// Resolves once the stream stops taking this connection.
    pub async fn closed(&self) {
        self.tags.closed().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_carries_a_file_header_then_tags_and_ends_with_its_writer() {
        let inlet = Inlet::new();
        let mut writer = inlet.connect(Container::Flv).unwrap();
        writer
            .send(crate::media::flv::TAG_AUDIO, 20, &[0xaf, 1, 2])
            .unwrap();
        drop(writer);
        let mut connection = inlet.accept().await.unwrap();
        assert_eq!(
            connection.tags.recv().await.unwrap(),
            &crate::media::flv::FILE_HEADER[..]
        );
        let tag = connection.tags.recv().await.unwrap();
        assert_eq!(crate::media::flv::tag_timestamp(&tag), Some(20));
        assert_eq!(
            crate::media::flv::tag_kind(&tag),
            crate::media::flv::TagKind::Audio
        );
        assert!(connection.tags.recv().await.is_none());
        assert_eq!(inlet.bytes_in(), 3);
    }

    #[tokio::test]
    async fn a_publisher_faster_than_the_stream_is_refused_not_buffered() {
        let inlet = Inlet::new();
        let mut writer = inlet.connect(Container::Flv).unwrap();
        let refused = (0..TAG_QUEUE as u32 + 10)
            .map(|n| writer.send(crate::media::flv::TAG_VIDEO, n, &[0x27, 1, 0, 0, 0]))
            .find_map(Result::err);
        assert_eq!(refused, Some(InletError::Overflow));
    }

    #[tokio::test]
    async fn a_writer_learns_when_the_stream_gives_its_connection_up() {
        let inlet = Inlet::new();
        let mut writer = inlet.connect(Container::Flv).unwrap();
        drop(inlet.accept().await.unwrap());
        writer.closed().await;
        assert_eq!(
            writer.send(crate::media::flv::TAG_AUDIO, 0, &[0xaf, 1]),
            Err(InletError::Closed)
        );
    }
}
