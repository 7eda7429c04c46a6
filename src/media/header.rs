//! What a picture file is, from its headers alone: its format, its canvas and, for an
//! animation, its frames and their timing. Nothing is decoded and nothing the size of the
//! picture is allocated, so a file whose header claims 65535x65535 costs a few reads, and
//! a GIF of thousands of frames is counted in milliseconds (its LZW data is skipped).
//!
//! GIF (with the `gif` crate), PNG and APNG, WebP and JPEG are read here; any other format
//! is GStreamer's to describe, under the decoder guard (`sizes`).

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use super::bounds::{InputBounds, TooLarge};

/// A picture as its headers describe it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PictureHeader {
    /// `gif`, `png`, `apng`, `webp` or `jpeg`.
    pub(crate) codec: &'static str,
    /// The container caps name GStreamer gives it (`image/gif`, ...).
    pub(crate) container: &'static str,
    /// The canvas every frame is composed on.
    pub(crate) width: u32,
    pub(crate) height: u32,
    /// Frames in one play (1 for a still); the count stops at the number asked for.
    pub(crate) frames: u64,
    /// The widest and the tallest frame as stored: a GIF's may exceed its screen.
    pub(crate) largest_frame: (u32, u32),
    /// One play, the sum of the frames' times on screen.
    pub(crate) duration: Duration,
}

impl PictureHeader {
    fn new(codec: &'static str, container: &'static str) -> Self {
        Self {
            codec,
            container,
            width: 0,
            height: 0,
            frames: 0,
            largest_frame: (0, 0),
            duration: Duration::ZERO,
        }
    }

    fn still(mut self, width: u32, height: u32) -> Self {
        (self.width, self.height) = (width, height);
        self.frames = 1;
        self.largest_frame = (width, height);
        self
    }

    fn add_frame(&mut self, width: u32, height: u32, delay: Duration) {
        self.frames += 1;
        self.largest_frame = (
            self.largest_frame.0.max(width),
            self.largest_frame.1.max(height),
        );
        self.duration += shown_for(delay);
    }

    /// A picture with more than one frame plays as video.
    pub(crate) fn is_animated(&self) -> bool {
        self.frames >= 2
    }

    /// Whether it is small enough to decode (and, animated, short enough to play).
    pub(crate) fn check(&self, bounds: InputBounds) -> Result<(), TooLarge> {
        let what = if self.is_animated() {
            "animation"
        } else {
            "picture"
        };
        bounds.check(what, self.width, self.height)?;
        bounds.check("frame", self.largest_frame.0, self.largest_frame.1)?;
        if self.is_animated() {
            InputBounds::check_animation(self.frames, self.width, self.height)?;
        }
        Ok(())
    }
}

/// Browsers show a frame whose delay is under 20 ms for 100 ms (most such GIFs were made
/// for that); so does callfeed, or the animation would race.
pub(crate) fn shown_for(delay: Duration) -> Duration {
    if delay < Duration::from_millis(20) {
        Duration::from_millis(100)
    } else {
        delay
    }
}

/// The headers of the picture at `path`, counting at most `frames_up_to` frames; `None`
/// when it is not a format read here (or cannot be opened: GStreamer names why).
pub(crate) fn read(path: &Path, frames_up_to: u64) -> Option<Result<PictureHeader, String>> {
    let file = std::fs::File::open(path).ok()?;
    read_from(std::io::BufReader::new(file), frames_up_to)
}

/// [`read`] for a picture in memory (cover art).
pub(crate) fn read_bytes(data: &[u8], frames_up_to: u64) -> Option<Result<PictureHeader, String>> {
    read_from(std::io::Cursor::new(data), frames_up_to)
}

fn read_from<R: BufRead + Seek>(
    mut r: R,
    frames_up_to: u64,
) -> Option<Result<PictureHeader, String>> {
    let mut magic = Vec::with_capacity(12);
    r.by_ref().take(12).read_to_end(&mut magic).ok()?;
    r.seek(SeekFrom::Start(0)).ok()?;
    let header = if magic.starts_with(b"GIF87a") || magic.starts_with(b"GIF89a") {
        gif(r, frames_up_to)
    } else if magic.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(r, frames_up_to).map_err(|e| format!("its PNG headers cannot be read: {e}"))
    } else if magic.len() == 12 && &magic[..4] == b"RIFF" && &magic[8..] == b"WEBP" {
        webp(r, frames_up_to).map_err(|e| format!("its WebP headers cannot be read: {e}"))
    } else if magic.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg(r).map_err(|e| format!("its JPEG headers cannot be read: {e}"))
    } else {
        return None;
    };
    Some(header)
}

/// A GIF's logical screen, and its frames' sizes and delays, their pixel data skipped.
fn gif<R: Read>(r: R, frames_up_to: u64) -> Result<PictureHeader, String> {
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    let mut decoder = options
        .read_info(r)
        .map_err(|e| format!("its GIF header cannot be read: {e}"))?;
    let mut header = PictureHeader::new("gif", "image/gif");
    (header.width, header.height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    while header.frames < frames_up_to {
        match decoder.next_frame_info() {
            Ok(Some(frame)) => {
                let delay = Duration::from_millis(u64::from(frame.delay) * 10);
                header.add_frame(u32::from(frame.width), u32::from(frame.height), delay);
            }
            Ok(None) => break,
            // A broken still is GStreamer's to name; a broken animation is named here.
            Err(_) if header.frames < 2 => break,
            Err(e) => return Err(format!("frame {} cannot be read: {e}", header.frames + 1)),
        }
    }
    Ok(header)
}

/// Reads `N` bytes, or fails on a short file.
fn bytes<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut buf = [0; N];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

fn skip(r: &mut impl Seek, n: u64) -> std::io::Result<()> {
    let n = i64::try_from(n).map_err(|_| std::io::ErrorKind::InvalidData)?;
    r.seek(SeekFrom::Current(n)).map(|_| ())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn le24(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

/// A PNG's IHDR and, for an APNG, each frame's control chunk (fcTL): chunk by chunk, the
/// image data skipped. A still's headers end at its first IDAT.
fn png<R: Read + Seek>(mut r: R, frames_up_to: u64) -> std::io::Result<PictureHeader> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    skip(&mut r, 8)?;
    let mut header = PictureHeader::new("png", "image/png");
    let mut animated = false;
    while header.frames < frames_up_to {
        let Ok(head) = bytes::<8>(&mut r) else {
            break;
        };
        let length = u64::from(be32(&head));
        let kind = &head[4..];
        if header.width == 0 && kind != b"IHDR" {
            return Err(invalid("no IHDR first"));
        }
        let read = match kind {
            b"IHDR" => {
                let data = bytes::<8>(&mut r)?;
                (header.width, header.height) = (be32(&data), be32(&data[4..]));
                8
            }
            b"acTL" => {
                animated = true;
                0
            }
            b"fcTL" => {
                let data = bytes::<24>(&mut r)?;
                let (num, den) = (
                    u16::from_be_bytes([data[20], data[21]]),
                    u16::from_be_bytes([data[22], data[23]]),
                );
                // The standard reads a denominator of 0 as 100.
                let den = if den == 0 { 100 } else { den };
                let delay = Duration::from_secs_f64(f64::from(num) / f64::from(den));
                header.add_frame(be32(&data[4..]), be32(&data[8..]), delay);
                24
            }
            b"IDAT" if !animated => break,
            b"IEND" => break,
            _ => 0,
        };
        // The rest of the chunk and its CRC.
        skip(&mut r, length.saturating_sub(read) + 4)?;
    }
    if header.width == 0 {
        return Err(invalid("no IHDR"));
    }
    // A PNG without fcTL chunks is one picture, whatever its acTL says.
    if !animated || header.frames == 0 {
        return Ok(PictureHeader::new("png", "image/png").still(header.width, header.height));
    }
    header.codec = "apng";
    Ok(header)
}

/// A WebP's canvas (VP8X) and each animation frame's size and duration (ANMF), or a simple
/// still's size from its bitstream's header (VP8, VP8L).
fn webp<R: Read + Seek>(mut r: R, frames_up_to: u64) -> std::io::Result<PictureHeader> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    skip(&mut r, 12)?;
    let header = PictureHeader::new("webp", "image/webp");
    let mut animation: Option<PictureHeader> = None;
    while let Ok(head) = bytes::<8>(&mut r) {
        let length = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        let (read, still) = match &head[..4] {
            b"VP8X" => {
                let data = bytes::<10>(&mut r)?;
                let (width, height) = (le24(&data[4..]) + 1, le24(&data[7..]) + 1);
                if data[0] & 0x02 == 0 {
                    return Ok(header.still(width, height));
                }
                let mut canvas = header.clone();
                (canvas.width, canvas.height) = (width, height);
                animation = Some(canvas);
                (10, None)
            }
            b"ANMF" => {
                let canvas = animation
                    .as_mut()
                    .ok_or_else(|| invalid("ANMF outside VP8X"))?;
                let data = bytes::<16>(&mut r)?;
                let (width, height) = (le24(&data[6..]) + 1, le24(&data[9..]) + 1);
                let delay = Duration::from_millis(u64::from(le24(&data[12..])));
                canvas.add_frame(width, height, delay);
                if canvas.frames >= frames_up_to {
                    break;
                }
                (16, None)
            }
            b"VP8 " if animation.is_none() => {
                // A frame tag, the start code, then 14-bit width and height.
                let data = bytes::<10>(&mut r)?;
                let size = |at: usize| u32::from(u16::from_le_bytes([data[at], data[at + 1]]));
                (10, Some((size(6) & 0x3fff, size(8) & 0x3fff)))
            }
            b"VP8L" if animation.is_none() => {
                let data = bytes::<5>(&mut r)?;
                let bits = u32::from_le_bytes([data[1], data[2], data[3], data[4]]);
                (5, Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1)))
            }
            _ => (0, None),
        };
        if let Some((width, height)) = still {
            return Ok(header.still(width, height));
        }
        // Chunks are padded to an even length.
        skip(&mut r, length.saturating_sub(read) + (length & 1))?;
    }
    animation.ok_or_else(|| invalid("no picture chunk"))
}

/// A JPEG's frame header (SOFn): its size, the segments before it skipped.
fn jpeg<R: Read + Seek>(mut r: R) -> std::io::Result<PictureHeader> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    skip(&mut r, 2)?;
    loop {
        if bytes::<1>(&mut r)?[0] != 0xFF {
            return Err(invalid("a segment without a marker"));
        }
        let mut marker = bytes::<1>(&mut r)?[0];
        while marker == 0xFF {
            marker = bytes::<1>(&mut r)?[0];
        }
        match marker {
            // Markers without a length.
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 | 0xDA => return Err(invalid("no frame header before the picture data")),
            _ => {}
        }
        let length = u64::from(u16::from_be_bytes(bytes::<2>(&mut r)?));
        // SOF0..SOF15, but for DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let data = bytes::<5>(&mut r)?;
            let height = u32::from(u16::from_be_bytes([data[1], data[2]]));
            let width = u32::from(u16::from_be_bytes([data[3], data[4]]));
            return Ok(PictureHeader::new("jpeg", "image/jpeg").still(width, height));
        }
        skip(&mut r, length.saturating_sub(2))?;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A GIF of `frames` 1x1 frames (each shown `delay_cs` hundredths of a second) on a
    /// `width`x`height` screen: a few bytes a frame, whatever the screen claims.
    pub(crate) fn gif_bytes(width: u16, height: u16, frames: usize, delay_cs: u16) -> Vec<u8> {
        let mut gif = b"GIF89a".to_vec();
        gif.extend(width.to_le_bytes());
        gif.extend(height.to_le_bytes());
        // A global table of two colours: black and white.
        gif.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
        for _ in 0..frames {
            gif.extend([0x21, 0xF9, 4, 0]);
            gif.extend(delay_cs.to_le_bytes());
            gif.extend([0, 0]);
            // A 1x1 frame at the corner, colour 0: clear code, 0, end code in 3-bit codes.
            gif.extend([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
            gif.extend([2, 2, 0x44, 0x01, 0]);
        }
        gif.push(0x3B);
        gif
    }

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend(kind);
        c.extend(data);
        // The CRC is not read here.
        c.extend([0; 4]);
        c
    }

    /// An APNG's headers: a `size`x`size` canvas and `frames` frame controls of 100 ms, the
    /// pixel data left out (nothing here reads it).
    pub(crate) fn apng_bytes(size: u32, frames: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = size.to_be_bytes().to_vec();
        ihdr.extend(size.to_be_bytes());
        ihdr.extend([8, 6, 0, 0, 0]);
        png.extend(chunk(b"IHDR", &ihdr));
        let mut actl = frames.to_be_bytes().to_vec();
        actl.extend(0u32.to_be_bytes());
        png.extend(chunk(b"acTL", &actl));
        for n in 0..frames {
            let mut fctl = (2 * n).to_be_bytes().to_vec();
            fctl.extend(size.to_be_bytes());
            fctl.extend(size.to_be_bytes());
            fctl.extend([0; 8]);
            fctl.extend([0, 1, 0, 10, 0, 0]);
            png.extend(chunk(b"fcTL", &fctl));
            png.extend(chunk(if n == 0 { b"IDAT" } else { b"fdAT" }, &[0; 16]));
        }
        png.extend(chunk(b"IEND", &[]));
        png
    }

    #[test]
    fn a_gif_is_measured_from_its_headers() {
        let header = read_bytes(&gif_bytes(65535, 65535, 1, 0), 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            (header.codec, header.width, header.height),
            ("gif", 65535, 65535)
        );
        assert_eq!((header.frames, header.largest_frame), (1, (1, 1)));
        let animated = read_bytes(&gif_bytes(16, 16, 8, 25), 10).unwrap().unwrap();
        assert_eq!(animated.frames, 8);
        assert_eq!(animated.duration, Duration::from_secs(2));
        // Under 20 ms is shown for 100 ms, as browsers do.
        let racing = read_bytes(&gif_bytes(16, 16, 3, 1), 10).unwrap().unwrap();
        assert_eq!(racing.duration, Duration::from_millis(300));
    }

    #[test]
    fn counting_stops_at_the_number_asked_for_and_takes_no_time() {
        let many = gif_bytes(640, 480, 100_000, 4);
        let started = std::time::Instant::now();
        let header = read_bytes(&many, 1801).unwrap().unwrap();
        assert_eq!(header.frames, 1801);
        let all = read_bytes(&gif_bytes(640, 480, 3000, 4), u64::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(all.frames, 3000);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_apng_is_measured_from_its_chunks() {
        let header = read_bytes(&apng_bytes(16384, 3), 10).unwrap().unwrap();
        assert_eq!(
            (header.codec, header.width, header.frames),
            ("apng", 16384, 3)
        );
        assert_eq!(header.duration, Duration::from_millis(300));
        let still = read_bytes(&apng_bytes(16384, 0), 10).unwrap().unwrap();
        assert_eq!((still.codec, still.frames), ("png", 1));
    }

    #[test]
    fn a_jpeg_and_a_webp_are_measured_from_their_headers() {
        // SOI, an APP0 segment, then SOF0 with a height of 8192 and a width of 4096.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0];
        jpeg.extend([0xFF, 0xC0, 0, 11, 8, 0x20, 0, 0x10, 0, 1, 1, 0x11, 0]);
        let header = read_bytes(&jpeg, 10).unwrap().unwrap();
        assert_eq!(
            (header.codec, header.width, header.height),
            ("jpeg", 4096, 8192)
        );
        // A VP8X canvas of 10000x20 with the animation flag and one 10000x20 frame of 50 ms.
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        webp.extend([10, 0, 0, 0, 0x02, 0, 0, 0]);
        webp.extend([0x0F, 0x27, 0, 19, 0, 0]);
        webp.extend(b"ANMF");
        webp.extend([
            16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0F, 0x27, 0, 19, 0, 0, 50, 0, 0, 0,
        ]);
        let header = read_bytes(&webp, 10).unwrap().unwrap();
        assert_eq!((header.width, header.height, header.frames), (10000, 20, 1));
        assert!(header.check(InputBounds::default()).is_err());
        assert!(read_bytes(b"ID3\x04 not a picture", 10).is_none());
    }

    #[test]
    fn the_bombs_are_refused_by_their_headers() {
        let bounds = InputBounds::default();
        let refused = |bytes: &[u8]| {
            read_bytes(bytes, 1801)
                .unwrap()
                .unwrap()
                .check(bounds)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(&gif_bytes(65535, 65535, 1, 0)).starts_with("the picture is 65535x65535"),);
        assert!(
            refused(&gif_bytes(16384, 16384, 2, 0)).starts_with("the animation is 16384x16384")
        );
        assert!(refused(&apng_bytes(16384, 2)).starts_with("the animation is 16384x16384"));
        assert!(refused(&gif_bytes(16, 16, 3000, 4)).contains("more than 1800 frames"));
        let ok = read_bytes(&gif_bytes(640, 360, 100, 4), 1801)
            .unwrap()
            .unwrap();
        assert!(ok.check(bounds).is_ok());
    }
}
