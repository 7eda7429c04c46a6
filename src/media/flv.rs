//! FLV tags as callfeed handles them: what a tag is, its timestamp, and rewriting it. Used
//! by the hub, passthrough's pacer, the stream server, and the tests' and benches' readers.

use bytes::Bytes;

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

/// The file header of a stream with audio and video (`FLV`, version 1, flags 0x05), and the
/// first PreviousTagSize.
pub const FILE_HEADER: [u8; 13] = *b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";

/// One FLV tag as flvmux writes it (the 11-byte header, the body, the PreviousTagSize): what
/// an RTMP audio, video or data message's body becomes in a file. A body is under 16 MiB, as
/// RTMP's 24-bit message length already ensures.
pub fn tag(kind: u8, timestamp_ms: u32, body: &[u8]) -> Bytes {
    let size = (body.len() as u32).min(0x00ff_ffff);
    let body = &body[..size as usize];
    let mut tag = Vec::with_capacity(11 + body.len() + 4);
    tag.push(kind);
    tag.extend_from_slice(&size.to_be_bytes()[1..]);
    tag.extend_from_slice(&[0; 7]);
    set_tag_timestamp(&mut tag, timestamp_ms);
    tag.extend_from_slice(body);
    tag.extend_from_slice(&(11 + size).to_be_bytes());
    Bytes::from(tag)
}

/// An `onCuePoint` script tag named `name` at `timestamp_ms`: a point in the stream a
/// reader can tell (a queued item's start), which players ignore.
pub fn cue_point(name: &str, timestamp_ms: u32) -> Bytes {
    let name = &name.as_bytes()[..name.len().min(255)];
    let mut body = vec![0x02];
    body.extend_from_slice(&(CUE.len() as u16).to_be_bytes());
    body.extend_from_slice(CUE);
    body.push(0x03);
    body.extend_from_slice(&4u16.to_be_bytes());
    body.extend_from_slice(b"name");
    body.push(0x02);
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.extend_from_slice(&[0, 0, 0x09]);
    tag(TAG_SCRIPT, timestamp_ms, &body)
}

const CUE: &[u8] = b"onCuePoint";

/// The cue point a queued item's start is marked with.
pub fn item_cue(id: u64) -> String {
    format!("callfeed-item-{id}")
}

/// The item a cue point marks the start of.
pub fn cued_item(name: &str) -> Option<u64> {
    name.strip_prefix("callfeed-item-")?.parse().ok()
}

/// The name of an `onCuePoint` tag as [`cue_point`] writes it; `None` for any other tag.
pub fn cue_name(tag: &[u8]) -> Option<String> {
    if tag.first().map(|k| k & 0x1f) != Some(TAG_SCRIPT) {
        return None;
    }
    let body = tag.get(11..)?;
    let rest = body.strip_prefix(&[0x02, 0, CUE.len() as u8][..])?;
    let rest = rest.strip_prefix(CUE)?;
    let rest = rest.strip_prefix(&[0x03, 0, 4][..])?;
    let rest = rest.strip_prefix(b"name\x02".as_slice())?;
    let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let name = rest.get(2..2 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

/// What an FLV tag is, read from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// The 13-byte file header (`FLV` + flags + PreviousTagSize0).
    FileHeader,
    Script,
    VideoConfig,
    AudioConfig,
    VideoKeyframe,
    VideoDelta,
    Audio,
    Other,
}

/// Classifies a buffer from flvmux: one tag (with its trailing PreviousTagSize) or the header.
pub fn tag_kind(tag: &[u8]) -> TagKind {
    if tag.starts_with(b"FLV") {
        return TagKind::FileHeader;
    }
    if tag.len() < 13 {
        return TagKind::Other;
    }
    match tag[0] & 0x1f {
        TAG_SCRIPT => TagKind::Script,
        TAG_VIDEO => {
            let frame_type = tag[11] >> 4;
            let codec = tag[11] & 0x0f;
            if codec == 7 && tag[12] == 0 {
                TagKind::VideoConfig
            } else if frame_type == 1 {
                TagKind::VideoKeyframe
            } else {
                TagKind::VideoDelta
            }
        }
        TAG_AUDIO => {
            let format = tag[11] >> 4;
            if format == 10 && tag[12] == 0 {
                TagKind::AudioConfig
            } else {
                TagKind::Audio
            }
        }
        _ => TagKind::Other,
    }
}

/// Splits an FLV byte stream (the 13-byte file header first) into its tags, each with its
/// trailing PreviousTagSize, as flvmux emits them; a partial last tag is left out.
pub fn split_tags(stream: &[u8]) -> Vec<&[u8]> {
    let mut tags = Vec::new();
    if !stream.starts_with(b"FLV") {
        return tags;
    }
    let mut at = 13;
    while at + 11 <= stream.len() {
        let size = u32::from_be_bytes([0, stream[at + 1], stream[at + 2], stream[at + 3]]) as usize;
        let end = at + 11 + size + 4;
        if end > stream.len() {
            break;
        }
        tags.push(&stream[at..end]);
        at = end;
    }
    tags
}

/// The tag's timestamp in milliseconds (24 bits plus the extension byte).
pub fn tag_timestamp(tag: &[u8]) -> Option<u32> {
    (tag.len() >= 8 && !tag.starts_with(b"FLV"))
        .then(|| u32::from_be_bytes([tag[7], tag[4], tag[5], tag[6]]))
}

/// Rewrites a tag's timestamp in place.
pub fn set_tag_timestamp(tag: &mut [u8], ms: u32) {
    if tag.len() >= 8 {
        let b = ms.to_be_bytes();
        tag[4] = b[1];
        tag[5] = b[2];
        tag[6] = b[3];
        tag[7] = b[0];
    }
}

/// Shifts one reader's tag timestamps so its first media tag is at zero.
#[derive(Default)]
pub struct ReaderTimeline {
    base: Option<u32>,
}

impl ReaderTimeline {
    pub fn apply(&mut self, tag: Bytes) -> Bytes {
        let kind = tag_kind(&tag);
        let media = matches!(
            kind,
            TagKind::VideoKeyframe | TagKind::VideoDelta | TagKind::Audio
        );
        // A cue point after the first media tag is on the media's timeline.
        let cue = kind == TagKind::Script && self.base.is_some();
        let Some(ts) = tag_timestamp(&tag).filter(|_| media || cue) else {
            return tag;
        };
        let base = *self.base.get_or_insert(ts);
        if base == 0 {
            return tag;
        }
        let mut shifted = tag.to_vec();
        set_tag_timestamp(&mut shifted, ts.saturating_sub(base));
        Bytes::from(shifted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cue_point_reads_back_by_its_name_and_other_tags_are_none() {
        let cue = cue_point("callfeed-item-7", 1234);
        assert_eq!(tag_kind(&cue), TagKind::Script);
        assert_eq!(tag_timestamp(&cue), Some(1234));
        assert_eq!(cue_name(&cue).as_deref(), Some("callfeed-item-7"));
        assert_eq!(cue_name(&tag(TAG_AUDIO, 5, &[0xaf, 1, 9])), None);
        assert_eq!(
            cue_name(&tag(TAG_SCRIPT, 0, b"\x02\x00\x0aonMetaData")),
            None
        );
    }

    #[test]
    fn a_built_tag_reads_back_as_flvmux_would_have_written_it() {
        let avc_config = [0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x0d];
        let mut stream = FILE_HEADER.to_vec();
        stream.extend_from_slice(&tag(TAG_VIDEO, 0x0123_4567, &avc_config));
        stream.extend_from_slice(&tag(TAG_AUDIO, 5, &[0xaf, 1, 9]));
        let tags = split_tags(&stream);
        assert_eq!(tags.len(), 2);
        assert_eq!(tag_kind(tags[0]), TagKind::VideoConfig);
        assert_eq!(tag_timestamp(tags[0]), Some(0x0123_4567));
        assert_eq!(&tags[0][11..11 + avc_config.len()], &avc_config);
        assert_eq!(tag_kind(tags[1]), TagKind::Audio);
        let size = tags[1].len();
        assert_eq!(
            u32::from_be_bytes(tags[1][size - 4..].try_into().unwrap()),
            11 + 3
        );
    }
}
