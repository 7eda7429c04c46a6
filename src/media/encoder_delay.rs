//! voaacenc's delay, made good in a transcoded MP4. Its output lags its input by 1600
//! samples (a frame of MDCT overlap and 576 samples of block-switching lookahead), it has no
//! way to be drained, and at EOS it drops whatever is short of a whole frame: a 1 s clip
//! lost its last 52 ms and began with 33 ms of silence. The encoder is fed silence at EOS
//! until every input sample is out, and the audio track's edit list then skips the delay
//! and ends at the input's last sample, as ffmpeg's encoders' files do.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_audio::AudioInfo;

/// Samples voaacenc's output lags its input (measured: a click at sample n decodes at
/// n + 1600, at 48 kHz and 128 kb/s).
const VOAACENC_DELAY: u64 = 1600;
/// Samples in one AAC frame.
const AAC_FRAME: u64 = 1024;

/// What one transcode's AAC encoder was given: counted, so its end can be flushed out of
/// it and its delay skipped.
#[derive(Clone, Default)]
pub(crate) struct AacTail(Arc<Mutex<Fed>>);

#[derive(Default)]
struct Fed {
    /// An encoder is watched (only one is: the probe on its pad holds this state).
    watching: bool,
    /// Bytes of the input's own audio (the silence fed after it is not counted).
    bytes: u64,
    /// Where the input's audio ends, for the silence that follows it.
    end: Option<gst::ClockTime>,
    /// The input's audio as the encoder took it, known at EOS.
    info: Option<AudioInfo>,
}

impl Fed {
    fn samples(&self) -> u64 {
        self.info
            .as_ref()
            .map_or(0, |i| self.bytes / u64::from(i.bpf().max(1)))
    }
}

impl AacTail {
    /// Watches the voaacenc in `bin`, if there is one (another encoder's delay is not
    /// known, and is left as it is); only the first one found in a transcode.
    pub(crate) fn watch(&self, bin: &gst::Bin) {
        let Some(encoder) = bin
            .iterate_recurse()
            .into_iter()
            .flatten()
            .find(|e| e.factory().is_some_and(|f| f.name().as_str() == "voaacenc"))
        else {
            return;
        };
        let Some(sink) = encoder.static_pad("sink") else {
            return;
        };
        {
            let mut fed = self.0.lock().expect("AAC tail lock");
            if fed.watching {
                tracing::debug!("a second AAC encoder in one transcode: its delay is kept");
                return;
            }
            fed.watching = true;
        }
        let fed = self.0.clone();
        sink.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |pad, info| {
                match &info.data {
                    Some(gst::PadProbeData::Buffer(buffer)) => {
                        let mut fed = fed.lock().expect("AAC tail lock");
                        if fed.info.is_none() {
                            fed.bytes += buffer.size() as u64;
                            if let Some(pts) = buffer.pts() {
                                fed.end = Some(pts + buffer.duration().unwrap_or_default());
                            }
                        }
                    }
                    Some(gst::PadProbeData::Event(event))
                        if event.type_() == gst::EventType::Eos =>
                    {
                        // Chained here, before the encoder sees EOS: the pad's stream
                        // lock is this thread's already, and the pad is not yet at EOS. A
                        // refused buffer (the pipeline stopping) leaves the tail as it was.
                        if let Some(silence) = flush_out(pad, &fed) {
                            let _ = pad.chain(silence);
                        }
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    /// Writes the audio track's edit list of the MP4 at `path` (written from what was
    /// watched): the encoder's delay skipped, the input's length kept. Nothing to do when
    /// no voaacenc was watched or it was given nothing.
    pub(crate) fn trim(&self, path: &Path) -> Result<(), String> {
        let fed = self.0.lock().expect("AAC tail lock");
        let (Some(info), samples) = (&fed.info, fed.samples()) else {
            return Ok(());
        };
        if samples == 0 {
            return Ok(());
        }
        skip_priming(path, VOAACENC_DELAY, samples, info.rate())
            .map_err(|e| format!("{}: the audio's edit list: {e}", path.display()))
    }
}

/// The silence that brings every sample the encoder was given out of it: up to the input's
/// last sample plus the encoder's delay, rounded up to a whole frame.
fn flush_out(pad: &gst::Pad, fed: &Mutex<Fed>) -> Option<gst::Buffer> {
    let caps = pad.current_caps()?;
    let info = AudioInfo::from_caps(&caps).ok()?;
    let mut fed = fed.lock().expect("AAC tail lock");
    let rate = u64::from(info.rate());
    let bpf = u64::from(info.bpf());
    fed.info = Some(info.clone());
    let samples = fed.samples();
    if samples == 0 || rate == 0 {
        return None;
    }
    let padding = (samples + VOAACENC_DELAY).div_ceil(AAC_FRAME) * AAC_FRAME - samples;
    let mut buffer = gst::Buffer::with_size((padding * bpf) as usize).ok()?;
    {
        let buffer = buffer.get_mut()?;
        let start = fed
            .end
            .unwrap_or_else(|| gst::ClockTime::from_nseconds(samples * 1_000_000_000 / rate));
        buffer.set_pts(start);
        buffer.set_duration(gst::ClockTime::from_nseconds(
            padding * 1_000_000_000 / rate,
        ));
        let mut map = buffer.map_writable().ok()?;
        info.format_info().fill_silence(map.as_mut_slice());
    }
    Some(buffer)
}

/// Rewrites the edit list of the first audio track of the MP4 at `path`: `delay` samples
/// skipped, `samples` played, at `rate`. The boxes keep their sizes: only numbers change.
fn skip_priming(path: &Path, delay: u64, samples: u64, rate: u32) -> Result<(), String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| e.to_string())?;
    let (offset, mut moov) = read_moov(&mut file).map_err(|e| e.to_string())?;
    edit_moov(&mut moov, delay, samples, u64::from(rate))?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(&moov))
        .and_then(|_| file.sync_data())
        .map_err(|e| e.to_string())
}

/// The file's `moov` box, whole, and where it starts.
fn read_moov(file: &mut std::fs::File) -> std::io::Result<(u64, Vec<u8>)> {
    let len = file.metadata()?.len();
    let mut at = 0;
    while at + 8 <= len {
        let mut header = [0u8; 16];
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(&mut header[..8])?;
        let size = match u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) {
            0 => len - at,
            1 => {
                file.read_exact(&mut header[8..])?;
                u64::from_be_bytes(header[8..].try_into().expect("8 bytes"))
            }
            n => u64::from(n),
        };
        if size < 8 || at + size > len {
            break;
        }
        if &header[4..8] == b"moov" {
            let mut moov = vec![0; size as usize];
            file.seek(SeekFrom::Start(at))?;
            file.read_exact(&mut moov)?;
            return Ok((at, moov));
        }
        at += size;
    }
    Err(std::io::Error::other("no moov box"))
}

/// An MP4 box in a buffer: its type, where its content starts and where it ends.
#[derive(Clone, Copy)]
struct Mp4Box {
    kind: [u8; 4],
    content: usize,
    end: usize,
}

impl Mp4Box {
    /// The boxes inside this one.
    fn children(self, data: &[u8]) -> Vec<Mp4Box> {
        let mut found = Vec::new();
        let mut at = self.content;
        while at + 8 <= self.end {
            let (size, header) = match read(data, at, 4) {
                Some(1) => (read(data, at + 8, 8).unwrap_or(0), 16),
                Some(0) => ((self.end - at) as u64, 8),
                Some(n) => (n, 8),
                None => break,
            };
            let Ok(size) = usize::try_from(size) else {
                break;
            };
            if size < header || at + size > self.end {
                break;
            }
            let kind = data[at + 4..at + 8].try_into().expect("4 bytes");
            found.push(Mp4Box {
                kind,
                content: at + header,
                end: at + size,
            });
            at += size;
        }
        found
    }

    fn child(self, data: &[u8], kind: &[u8; 4]) -> Result<Mp4Box, String> {
        self.children(data)
            .into_iter()
            .find(|b| &b.kind == kind)
            .ok_or_else(|| format!("no {} box", String::from_utf8_lossy(kind)))
    }

    /// A full box's version (0: 32-bit times, 1: 64-bit).
    fn version(self, data: &[u8]) -> Result<u8, String> {
        data.get(self.content)
            .copied()
            .ok_or("a box cut short".into())
    }

    /// The timescale of an `mvhd` or `mdhd` box.
    fn timescale(self, data: &[u8]) -> Result<u64, String> {
        let at = if self.version(data)? == 1 { 20 } else { 12 };
        read(data, self.content + at, 4)
            .filter(|t| *t > 0)
            .ok_or("no timescale".into())
    }

    /// Where the duration of an `mvhd`, `tkhd` or `mdhd` box is, and its width.
    fn duration_field(self, data: &[u8]) -> Result<(usize, usize), String> {
        let v1 = self.version(data)? == 1;
        let at = match (&self.kind, v1) {
            (b"tkhd", true) => 28,
            (b"tkhd", false) => 20,
            (_, true) => 24,
            (_, false) => 16,
        };
        Ok((self.content + at, if v1 { 8 } else { 4 }))
    }
}

fn read(data: &[u8], at: usize, width: usize) -> Option<u64> {
    let bytes = data.get(at..at + width)?;
    Some(bytes.iter().fold(0, |n, b| n << 8 | u64::from(*b)))
}

fn write(data: &mut [u8], at: usize, width: usize, value: u64) -> Result<(), String> {
    let bytes = data.get_mut(at..at + width).ok_or("a box cut short")?;
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (value >> (8 * (width - 1 - i))) as u8;
    }
    Ok(())
}

/// `samples` at `rate` in units of `scale`, rounded.
fn scaled(samples: u64, scale: u64, rate: u64) -> u64 {
    (samples * scale + rate / 2) / rate
}

/// Edits `moov` (the whole box) so its first audio track skips `delay` samples and plays
/// `samples`, at `rate`. The track's duration is what its edits play; the movie's keeps
/// room for the delay too: GStreamer 1.22's qtdemux ends a track at the movie's duration
/// counted in the track's media time, and cut the last 33 ms at the exact figure (as it
/// cuts the last frame of ffmpeg's own AAC files).
fn edit_moov(moov: &mut [u8], delay: u64, samples: u64, rate: u64) -> Result<(), String> {
    let top = Mp4Box {
        kind: *b"moov",
        content: if read(moov, 0, 4) == Some(1) { 16 } else { 8 },
        end: moov.len(),
    };
    let data: &[u8] = moov;
    let mvhd = top.child(data, b"mvhd")?;
    let movie_scale = mvhd.timescale(data)?;
    let mut audio = None;
    let mut others_end = 0;
    for trak in top
        .children(data)
        .into_iter()
        .filter(|b| &b.kind == b"trak")
    {
        let mdia = trak.child(data, b"mdia")?;
        let hdlr = mdia.child(data, b"hdlr")?;
        let tkhd = trak.child(data, b"tkhd")?;
        if audio.is_none() && data.get(hdlr.content + 8..hdlr.content + 12) == Some(b"soun") {
            audio = Some((trak, tkhd, mdia.child(data, b"mdhd")?));
        } else {
            let (at, width) = tkhd.duration_field(data)?;
            others_end = others_end.max(read(data, at, width).unwrap_or(0));
        }
    }
    let (trak, tkhd, mdhd) = audio.ok_or("no audio track")?;
    let media_scale = mdhd.timescale(data)?;
    let elst = trak.child(data, b"edts")?.child(data, b"elst")?;
    let v1 = elst.version(data)? == 1;
    let (width, entry) = if v1 { (8, 20) } else { (4, 12) };
    let count = read(data, elst.content + 4, 4).unwrap_or(0) as usize;
    if count == 0 || elst.content + 8 + count * entry > elst.end {
        return Err("an empty edit list".into());
    }
    // The last edit plays the media; one before it is a late start, kept.
    let last = elst.content + 8 + (count - 1) * entry;
    let played = scaled(samples, movie_scale, rate);
    write(moov, last, width, played)?;
    write(moov, last + width, width, scaled(delay, media_scale, rate))?;
    let edited: u64 = (0..count)
        .map(|i| read(moov, elst.content + 8 + i * entry, width).unwrap_or(0))
        .sum();
    let (at, width) = tkhd.duration_field(moov)?;
    write(moov, at, width, edited)?;
    let (at, width) = mvhd.duration_field(moov)?;
    let media_end = edited + scaled(delay, movie_scale, rate);
    write(moov, at, width, others_end.max(media_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4box(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
        let mut b = ((content.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(content);
        b
    }

    fn be32(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// A version 0 track: its handler, its duration (movie timescale), its edits
    /// (duration, media time) and its media timescale.
    fn trak(handler: &[u8; 4], duration: u32, edits: &[(u32, i32)], scale: u32) -> Vec<u8> {
        let tkhd = mp4box(b"tkhd", &be32(&[0, 0, 0, 1, 0, duration, 0, 0]));
        let mut elst = be32(&[0, edits.len() as u32]);
        for (d, t) in edits {
            elst.extend(be32(&[*d, *t as u32, 0x1_0000]));
        }
        let edts = mp4box(b"edts", &mp4box(b"elst", &elst));
        let mdhd = mp4box(b"mdhd", &be32(&[0, 0, 0, scale, 0, 0]));
        let mut hdlr = be32(&[0, 0]);
        hdlr.extend_from_slice(handler);
        hdlr.extend(be32(&[0, 0, 0, 0]));
        let mdia = mp4box(b"mdia", &[mdhd, mp4box(b"hdlr", &hdlr)].concat());
        mp4box(b"trak", &[tkhd, edts, mdia].concat())
    }

    fn moov(traks: &[Vec<u8>]) -> Vec<u8> {
        let mvhd = mp4box(b"mvhd", &be32(&[0, 0, 0, 1000, 1045, 0x1_0000]));
        mp4box(b"moov", &[vec![mvhd], traks.to_vec()].concat().concat())
    }

    /// The numbers at `at` in `data`, 32 bits each.
    fn numbers(data: &[u8], at: usize, n: usize) -> Vec<u32> {
        (0..n)
            .map(|i| read(data, at + 4 * i, 4).unwrap() as u32)
            .collect()
    }

    fn find(data: &[u8], kind: &[u8; 4], nth: usize) -> usize {
        let at = data
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == kind)
            .nth(nth)
            .unwrap()
            .0;
        at + 4
    }

    #[test]
    fn the_audio_edit_skips_the_delay_and_plays_the_input_length() {
        // Video first (1 s), then the audio as mp4mux writes it: 49 frames, edit from 0.
        let mut data = moov(&[
            trak(b"vide", 1000, &[(1000, 0)], 30_000),
            trak(b"soun", 1045, &[(1045, 0)], 48_000),
        ]);
        edit_moov(&mut data, 1600, 48_000, 48_000).unwrap();
        let elst = find(&data, b"elst", 1);
        assert_eq!(numbers(&data, elst + 8, 2), [1000, 1600]);
        let tkhd = find(&data, b"tkhd", 1);
        assert_eq!(numbers(&data, tkhd + 20, 1), [1000]);
        // The movie keeps room for the skipped delay (33 ms).
        assert_eq!(numbers(&data, find(&data, b"mvhd", 0) + 16, 1), [1033]);
        // The video is untouched.
        let elst = find(&data, b"elst", 0);
        assert_eq!(numbers(&data, elst + 8, 2), [1000, 0]);
    }

    #[test]
    fn a_late_start_is_kept_before_the_audio_edit() {
        let mut data = moov(&[trak(b"soun", 1295, &[(250, -1), (1045, 0)], 48_000)]);
        edit_moov(&mut data, 1600, 48_000, 48_000).unwrap();
        let elst = find(&data, b"elst", 0);
        assert_eq!(
            numbers(&data, elst + 8, 5),
            [250, u32::MAX, 0x1_0000, 1000, 1600]
        );
        assert_eq!(numbers(&data, find(&data, b"tkhd", 0) + 20, 1), [1250]);
        assert_eq!(numbers(&data, find(&data, b"mvhd", 0) + 16, 1), [1283]);
    }

    #[test]
    fn a_movie_without_audio_is_refused() {
        let mut data = moov(&[trak(b"vide", 1000, &[(1000, 0)], 30_000)]);
        assert!(edit_moov(&mut data, 1600, 48_000, 48_000).is_err());
    }
}
