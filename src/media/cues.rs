//! Cue points read from an FLV byte stream as it arrives (a room's pull of a session's
//! stream): the name and timestamp of each `onCuePoint` tag, so the reader can tell when the
//! sound after it is heard. Everything else is skipped, byte-counted, never kept.

use super::flv::cue_name;

/// Tags larger than this are skipped without being gathered (a cue is a few dozen bytes).
const LARGEST_GATHERED: usize = 4096;

/// An incremental reader of one FLV stream's cue points.
#[derive(Default)]
pub struct CueReader {
    /// Bytes of a header or a small tag not whole yet.
    partial: Vec<u8>,
    /// Bytes still to skip of a large tag.
    skipping: usize,
    header_read: bool,
    /// Not an FLV stream: nothing to read.
    off: bool,
}

impl CueReader {
    /// Takes the next bytes; the cue points completed by them, as (name, timestamp in ms).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<(String, u32)> {
        let mut cues = Vec::new();
        while !bytes.is_empty() && !self.off {
            if self.skipping > 0 {
                let n = self.skipping.min(bytes.len());
                self.skipping -= n;
                bytes = &bytes[n..];
                continue;
            }
            let wanted = if self.header_read {
                self.tag_length().unwrap_or(11)
            } else {
                13
            };
            let n = wanted.saturating_sub(self.partial.len()).min(bytes.len());
            self.partial.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if !self.header_read {
                if self.partial.len() == 13 {
                    self.off = !self.partial.starts_with(b"FLV");
                    self.header_read = true;
                    self.partial.clear();
                }
                continue;
            }
            let Some(whole) = self.tag_length() else {
                continue;
            };
            if whole > LARGEST_GATHERED {
                self.skipping = whole - self.partial.len();
                self.partial.clear();
                continue;
            }
            if self.partial.len() == whole {
                if let (Some(name), Some(ts)) = (
                    cue_name(&self.partial),
                    super::flv::tag_timestamp(&self.partial),
                ) {
                    cues.push((name, ts));
                }
                self.partial.clear();
            }
        }
        cues
    }

    /// The whole tag's length (header, body, PreviousTagSize), once its header is in.
    fn tag_length(&self) -> Option<usize> {
        let h = self.partial.get(..11)?;
        Some(11 + u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize + 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv::{FILE_HEADER, TAG_AUDIO, cue_point, tag};

    #[test]
    fn cues_are_read_across_any_split_and_large_tags_skipped() {
        let mut stream = FILE_HEADER.to_vec();
        stream.extend_from_slice(&tag(TAG_AUDIO, 10, &vec![0xaf; 9000]));
        stream.extend_from_slice(&cue_point("callfeed-item-2", 40));
        stream.extend_from_slice(&tag(TAG_AUDIO, 60, &[0xaf, 1, 2]));
        stream.extend_from_slice(&cue_point("callfeed-item-3", 90));
        for split in [1, 7, 13, 100, stream.len()] {
            let mut reader = CueReader::default();
            let cues: Vec<_> = stream.chunks(split).flat_map(|c| reader.feed(c)).collect();
            assert_eq!(
                cues,
                [
                    ("callfeed-item-2".to_owned(), 40),
                    ("callfeed-item-3".to_owned(), 90)
                ],
                "split {split}"
            );
        }
        let mut mp4 = CueReader::default();
        assert!(
            mp4.feed(b"\\0\\0\\0\\x20ftypisom\\0\\0\\0\\0isom and more bytes")
                .is_empty()
        );
    }
}
