//! A publisher's stream passed through untouched: its FLV tags go straight into the feed's
//! hub, a byte copy, when they already meet the contract — H.264 without B-frames no larger
//! than the profile's picture, AAC at the contract's rate, mono or stereo. What the publisher
//! sends is checked as it comes (the sequence headers, then each picture's composition
//! time), and the first thing that does not conform drops it with the reason.
//!
//! One timeline for the feed's life: a publisher that comes back restarts its timestamps at
//! 0, so each connection is shifted to carry on where the last one stopped, and starts at a
//! keyframe. Its sequence headers must be the first publisher's: a hub hands a late reader
//! the first headers it saw.

use std::sync::Arc;

use bytes::Bytes;

use super::contract::Contract;
use super::flv::{TAG_AUDIO, TAG_VIDEO};
use super::hub::StreamHub;

/// A frame's length at the contract's rate, the gap left where a publisher was away.
const GAP_MS: u32 = 33;

/// The feed side of a passed-through stream, shared by its publishers in turn.
pub struct TagPassthrough {
    hub: Arc<StreamHub>,
    contract: Contract,
    /// The first publisher's sequence headers (video, audio): later ones must match.
    video_config: Option<Bytes>,
    audio_config: Option<Bytes>,
    /// Where the feed's timeline is: the last timestamp sent.
    last_out: Option<u32>,
    connection: Connection,
}

/// One publisher's place in the feed's timeline.
#[derive(Default)]
struct Connection {
    /// Added to its timestamps, and where on the feed's timeline it began.
    shift: Option<(u32, u32)>,
    /// Its first keyframe has come (what comes before it would not decode).
    keyframe_seen: bool,
    media_seen: bool,
}

/// What a tag did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    /// The publisher's first media on this connection went out.
    FirstMedia,
    Sent,
    /// Held back (a picture before the connection's first keyframe).
    Held,
}

impl TagPassthrough {
    /// The hub gets its file header at once: readers that come before any publisher wait for
    /// the headers behind it.
    pub fn new(hub: Arc<StreamHub>, contract: Contract) -> Self {
        hub.push(Bytes::from_static(&super::flv::FILE_HEADER));
        Self {
            hub,
            contract,
            video_config: None,
            audio_config: None,
            last_out: None,
            connection: Connection::default(),
        }
    }

    /// A new publisher connects: its timestamps are shifted onto the feed's timeline.
    pub fn connected(&mut self) {
        self.connection = Connection::default();
    }

    /// One RTMP audio or video message; an error drops the publisher with its reason.
    pub fn send(&mut self, kind: u8, timestamp_ms: u32, body: &[u8]) -> Result<Passed, String> {
        let first = *body.first().ok_or("an empty media message")?;
        let is_config = match kind {
            TAG_VIDEO => {
                if first & 0x0f != 7 {
                    return Err(nonconforming("the video is not H.264"));
                }
                body.get(1) == Some(&0)
            }
            TAG_AUDIO => {
                if first >> 4 != 10 {
                    return Err(nonconforming("the audio is not AAC"));
                }
                body.get(1) == Some(&0)
            }
            _ => return Ok(Passed::Held),
        };
        if is_config {
            self.config(kind, body)?;
            let at = self.last_out.unwrap_or(0);
            self.hub.push(super::flv::tag(kind, at, body));
            return Ok(Passed::Sent);
        }
        if kind == TAG_VIDEO {
            // AVCPacketType 1 carries a composition time: not 0 means pictures out of order.
            let composition = body
                .get(2..5)
                .map(|c| i32::from_be_bytes([0, c[0], c[1], c[2]]));
            if composition.is_some_and(|c| c != 0) {
                return Err(nonconforming("the video has B-frames"));
            }
            let keyframe = first >> 4 == 1;
            if !self.connection.keyframe_seen && !keyframe {
                return Ok(Passed::Held);
            }
            self.connection.keyframe_seen = true;
        } else if !self.connection.keyframe_seen && self.contract.video.is_some() {
            return Ok(Passed::Held);
        }
        let (shift, start) = *self.connection.shift.get_or_insert_with(|| {
            let next = self.last_out.map_or(0, |t| t.wrapping_add(GAP_MS));
            (next.wrapping_sub(timestamp_ms), next)
        });
        // A message stamped before the one that began the connection (sound a few ms before
        // the first keyframe, a WebRTC clock settling) starts with it: shifted, it would wrap
        // to 49 days and a player would wait for it.
        let out = timestamp_ms.wrapping_add(shift);
        let out = if (out.wrapping_sub(start) as i32) < 0 {
            start
        } else {
            out
        };
        self.last_out = Some(self.last_out.map_or(out, |t| t.max(out)));
        self.hub.push(super::flv::tag(kind, out, body));
        let first_media = !self.connection.media_seen;
        self.connection.media_seen = true;
        Ok(if first_media {
            Passed::FirstMedia
        } else {
            Passed::Sent
        })
    }

    /// A sequence header: checked against the contract, and the same as the first
    /// publisher's.
    fn config(&mut self, kind: u8, body: &[u8]) -> Result<(), String> {
        let (held, checked) = match kind {
            TAG_VIDEO => (
                &mut self.video_config,
                check_avc(&body[5.min(body.len())..], &self.contract),
            ),
            _ => (
                &mut self.audio_config,
                check_aac(&body[2.min(body.len())..], &self.contract),
            ),
        };
        checked?;
        match held {
            Some(first) if first.as_ref() != body => Err(
                "the encoder's settings changed since the feed's first publisher: a passthrough \
                 feed keeps its first stream's settings (set them back, or use an encoded feed)"
                    .into(),
            ),
            Some(_) => Ok(()),
            None => {
                *held = Some(Bytes::copy_from_slice(body));
                Ok(())
            }
        }
    }
}

fn nonconforming(what: &str) -> String {
    format!(
        "{what}: this feed passes its stream through untouched, so it takes H.264 without \
         B-frames and AAC at 48 kHz (set the encoder so, or use an encoded feed)"
    )
}

/// An AVCDecoderConfigurationRecord whose SPS says the picture fits the contract and that
/// no picture is reordered.
fn check_avc(record: &[u8], contract: &Contract) -> Result<(), String> {
    use h264_reader::avcc::AvcDecoderConfigurationRecord;
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::nal::{Nal, RefNal};
    let record = AvcDecoderConfigurationRecord::try_from(record)
        .map_err(|e| format!("the H.264 sequence header cannot be read: {e:?}"))?;
    let sps = record
        .sequence_parameter_sets()
        .next()
        .ok_or("the H.264 sequence header has no SPS")?
        .map_err(|e| format!("the H.264 sequence header cannot be read: {e:?}"))?;
    let sps = SeqParameterSet::from_bits(RefNal::new(sps, &[], true).rbsp_bits())
        .map_err(|e| format!("the H.264 SPS cannot be read: {e:?}"))?;
    let (width, height) = sps
        .pixel_dimensions()
        .map_err(|e| format!("the H.264 SPS names no picture size: {e:?}"))?;
    let Some(limit) = contract.video else {
        return Err(nonconforming("the feed's profile is audio"));
    };
    if width > limit.width || height > limit.height {
        return Err(nonconforming(&format!(
            "the picture is {width}x{height}, over the profile's {}x{}",
            limit.width, limit.height
        )));
    }
    let reorders = sps
        .vui_parameters
        .as_ref()
        .and_then(|v| v.bitstream_restrictions.as_ref())
        .map(|b| b.max_num_reorder_frames);
    if reorders.is_some_and(|n| n > 0) {
        return Err(nonconforming("the video has B-frames"));
    }
    Ok(())
}

/// An AudioSpecificConfig at the contract's rate, mono or stereo.
fn check_aac(config: &[u8], contract: &Contract) -> Result<(), String> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let (a, b) = match config {
        [a, b, ..] => (*a, *b),
        _ => return Err("the AAC sequence header is too short".into()),
    };
    let index = usize::from(((a & 0x07) << 1) | (b >> 7));
    let channels = (b >> 3) & 0x0f;
    let rate = RATES.get(index).copied().unwrap_or(0);
    if rate != contract.audio_rate || !(1..=2).contains(&channels) {
        return Err(nonconforming(&format!(
            "the audio is AAC at {rate} Hz with {channels} channels"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::contract::Profile;

    fn passthrough() -> (TagPassthrough, Arc<StreamHub>) {
        let hub = Arc::new(StreamHub::new());
        (
            TagPassthrough::new(hub.clone(), Contract::new(Profile::P720)),
            hub,
        )
    }

    #[test]
    fn audio_at_another_rate_or_pictures_out_of_order_are_refused() {
        let (mut pass, _) = passthrough();
        // AAC-LC 44.1 kHz stereo.
        let said = pass.send(TAG_AUDIO, 0, &[0xaf, 0, 0x12, 0x10]).unwrap_err();
        assert!(said.contains("44100 Hz"), "{said}");
        // AAC-LC 48 kHz stereo passes.
        assert_eq!(
            pass.send(TAG_AUDIO, 0, &[0xaf, 0, 0x11, 0x90]),
            Ok(Passed::Sent)
        );
        let said = pass
            .send(TAG_VIDEO, 40, &[0x17, 1, 0, 0, 40, 0, 0, 0, 1, 0x65])
            .unwrap_err();
        assert!(said.contains("B-frames"), "{said}");
    }

    #[test]
    fn a_publisher_that_comes_back_carries_on_the_feed_s_timeline_from_a_keyframe() {
        let (mut pass, hub) = passthrough();
        let key = [0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
        let delta = [0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41];
        assert_eq!(pass.send(TAG_VIDEO, 5000, &key), Ok(Passed::FirstMedia));
        assert_eq!(pass.send(TAG_VIDEO, 5033, &delta), Ok(Passed::Sent));
        pass.connected();
        assert_eq!(pass.send(TAG_VIDEO, 0, &delta), Ok(Passed::Held));
        assert_eq!(pass.send(TAG_VIDEO, 33, &key), Ok(Passed::FirstMedia));
        let subscription = hub.subscribe();
        let last = subscription.preamble.last().unwrap().clone();
        assert_eq!(crate::media::flv::tag_timestamp(&last), Some(33 + 33));
    }

    #[test]
    fn sound_stamped_before_the_first_keyframe_starts_with_it_rather_than_in_49_days() {
        let (mut pass, hub) = passthrough();
        let key = [0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
        assert_eq!(pass.send(TAG_VIDEO, 1000, &key), Ok(Passed::FirstMedia));
        assert_eq!(pass.send(TAG_AUDIO, 990, &[0xaf, 1, 7]), Ok(Passed::Sent));
        let subscription = hub.subscribe();
        let last = subscription.preamble.last().unwrap().clone();
        assert_eq!(crate::media::flv::tag_timestamp(&last), Some(0));
    }
}
