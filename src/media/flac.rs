//! What a FLAC file holds that GStreamer 1.22 cannot decode, read from its STREAMINFO
//! before anything tries: its FLAC decoder loses sync on every frame of 32-bit samples (FLAC
//! 1.4 writes them) and the only word a user got was "No valid frames decoded".

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The widest samples GStreamer 1.22's FLAC decoder decodes.
const DECODED_BITS: u8 = 24;

/// Refuses a FLAC file whose samples GStreamer 1.22 does not decode, saying what it holds
/// and how to convert it; anything else (another format, a header that cannot be read)
/// passes, for the probe to judge.
pub(super) fn refuse_undecodable(path: &Path) -> Result<(), String> {
    match streaminfo(path).as_deref().and_then(bits_per_sample) {
        Some(bits) if bits > DECODED_BITS => Err(format!(
            "its FLAC has {bits}-bit samples, which GStreamer 1.22's FLAC decoder does not \
             decode: convert it to {DECODED_BITS}-bit, e.g. `ffmpeg -i {input} -sample_fmt s32 \
             -bits_per_raw_sample {DECODED_BITS} {output}` (a recent ffmpeg: Debian 12's 5.1 \
             reads no sample of it), or decode it to WAV with `flac -d {input} -o {wav}` \
             (flac 1.4)",
            input = shell_word(path),
            output = shell_word(&beside(path, &format!("-{DECODED_BITS}bit.flac"))),
            wav = shell_word(&beside(path, ".wav")),
        )),
        _ => Ok(()),
    }
}

/// A file's first bytes from where a FLAC stream would start: past an ID3v2 tag, which
/// some taggers put in front of `fLaC`.
fn streaminfo(path: &Path) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 10];
    file.read_exact(&mut head).ok()?;
    let start = if &head[..3] == b"ID3" {
        let size = head[6..10]
            .iter()
            .fold(0u64, |n, b| n << 7 | u64::from(b & 0x7f));
        let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
        10 + size + footer
    } else {
        0
    };
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut flac = Vec::with_capacity(42);
    file.take(42).read_to_end(&mut flac).ok()?;
    Some(flac)
}

/// The bits per sample the STREAMINFO at the start of `flac` gives: after `fLaC` and the
/// block's 4-byte header, 20 bits of sample rate, 3 of channels and 5 of bits per sample,
/// less one.
fn bits_per_sample(flac: &[u8]) -> Option<u8> {
    if flac.get(..4)? != b"fLaC" || flac.get(4)? & 0x7f != 0 {
        return None;
    }
    let packed = flac.get(20..22)?;
    Some(((packed[0] & 0x01) << 4 | packed[1] >> 4) + 1)
}

/// A converted copy's name: `path`'s with its extension replaced by `ending`.
fn beside(path: &Path, ending: &str) -> std::path::PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}{ending}"))
}

/// `path` as one word a POSIX shell reads back unchanged.
fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FLAC file's first bytes with this STREAMINFO packing (rate, channels, bits).
    fn flac_head(rate: u32, channels: u8, bits: u8) -> Vec<u8> {
        let mut head = b"fLaC".to_vec();
        head.extend([0x80, 0, 0, 34]);
        head.extend([0x10, 0, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        let packed: u64 = u64::from(rate) << 44
            | u64::from(channels - 1) << 41
            | u64::from(bits - 1) << 36
            | 96_000;
        head.extend(packed.to_be_bytes());
        head.extend([0; 16]);
        head
    }

    #[test]
    fn the_bits_per_sample_are_read_from_streaminfo() {
        assert_eq!(bits_per_sample(&flac_head(44_100, 2, 16)), Some(16));
        assert_eq!(bits_per_sample(&flac_head(48_000, 1, 24)), Some(24));
        assert_eq!(bits_per_sample(&flac_head(96_000, 6, 32)), Some(32));
        // Not FLAC, or cut short.
        assert_eq!(bits_per_sample(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(bits_per_sample(&flac_head(48_000, 2, 32)[..20]), None);
    }

    #[test]
    fn a_32_bit_flac_behind_an_id3_tag_is_refused_and_a_24_bit_one_passes() {
        let dir = tempfile::tempdir().unwrap();
        // An ID3v2 tag of 300 bytes (syncsafe size 0x022c) in front.
        let mut tagged = b"ID3\x04\x00\x00\x00\x00\x02\x2c".to_vec();
        tagged.extend([0; 300]);
        for (bits, refused) in [(32, true), (24, false)] {
            let path = dir.path().join(format!("{bits}.flac"));
            std::fs::write(&path, [tagged.clone(), flac_head(48_000, 2, bits)].concat()).unwrap();
            let verdict = refuse_undecodable(&path);
            assert_eq!(verdict.is_err(), refused, "{bits}: {verdict:?}");
        }
        let reason = refuse_undecodable(&dir.path().join("32.flac")).unwrap_err();
        assert!(reason.contains("32-bit samples"), "{reason}");
    }

    #[test]
    fn a_path_is_quoted_for_the_shell_when_it_must_be() {
        assert_eq!(shell_word(Path::new("/music/a.flac")), "/music/a.flac");
        assert_eq!(
            shell_word(Path::new("/music/it's here.flac")),
            r"'/music/it'\''s here.flac'"
        );
        assert_eq!(
            beside(Path::new("/music/song.flac"), "-24bit.flac"),
            Path::new("/music/song-24bit.flac")
        );
    }
}
