//! Animated pictures (GIF, APNG, animated WebP) played as video with their own timing.
//!
//! GStreamer 1.22 cannot: `avdec_gif` drops the demuxer's timestamps (every frame at 0, so
//! one picture then black), `pngdec` and `webpdec` decode only the first frame, and the
//! Discoverer fails on an animated WebP. The `image` crate composes each frame (disposal,
//! blending) and gives its delay; an `appsrc` plays the frames, seekable, so loops and
//! `--start` work as for any file. A picture with one frame stays a still.
//!
//! What an animation is (its size, frames and length) is read from its headers
//! (`header`), never by decoding it: a 3,000-frame GIF is measured in milliseconds, and
//! one too large or too long is refused before a frame is composed.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use image::{AnimationDecoder, ImageDecoder, ImageFormat};

use super::bounds::InputBounds;
use super::header;

struct Opened {
    width: u32,
    height: u32,
    frames: image::Frames<'static>,
}

/// The frames of `path`, decoded by the `image` crate within `bounds` (its limits are a
/// second line behind the header check [`source`] makes); `None` for a picture that does
/// not animate or cannot be opened.
fn open(path: &Path, bounds: InputBounds) -> Option<Opened> {
    let reader = image::ImageReader::new(BufReader::new(File::open(path).ok()?))
        .with_guessed_format()
        .ok()?;
    let format = reader.format()?;
    let reader = reader.into_inner();
    let limits = bounds.image_limits();
    let ((width, height), frames) = match format {
        ImageFormat::Gif => {
            let mut decoder = image::codecs::gif::GifDecoder::new(reader).ok()?;
            decoder.set_limits(limits).ok()?;
            (decoder.dimensions(), decoder.into_frames())
        }
        ImageFormat::Png => {
            let decoder = image::codecs::png::PngDecoder::with_limits(reader, limits).ok()?;
            if !decoder.is_apng().ok()? {
                return None;
            }
            (decoder.dimensions(), decoder.apng().ok()?.into_frames())
        }
        ImageFormat::WebP => {
            let mut decoder = image::codecs::webp::WebPDecoder::new(reader).ok()?;
            if !decoder.has_animation() {
                return None;
            }
            decoder.set_limits(limits).ok()?;
            (decoder.dimensions(), decoder.into_frames())
        }
        _ => return None,
    };
    Some(Opened {
        width,
        height,
        frames,
    })
}

/// Whether `path` is a picture with more than one frame (from its headers: nothing is
/// decoded).
pub(crate) fn is_animated(path: &Path) -> bool {
    header::read(path, 2).is_some_and(|h| h.is_ok_and(|h| h.is_animated()))
}

/// A source element playing the animated picture at `path` once, as raw RGBA frames with
/// their own timing, on a static `src` pad. Seeking back replays it. One larger or longer
/// than `bounds` allow is refused before a frame is decoded.
pub(crate) fn source(path: &Path, bounds: InputBounds) -> Result<gst::Element, String> {
    let not_animated = || format!("{} is not an animated picture", path.display());
    header::read(path, super::bounds::FRAMES_COUNTED)
        .ok_or_else(not_animated)??
        .check(bounds)
        .map_err(|e| e.to_string())?;
    let opened = open(path, bounds).ok_or_else(not_animated)?;
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGBA")
        .field("width", opened.width as i32)
        .field("height", opened.height as i32)
        .field("framerate", gst::Fraction::new(0, 1))
        .build();
    drop(opened);
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .stream_type(gst_app::AppStreamType::Seekable)
        .build();
    let feeder = Arc::new(Feeder::spawn(path.to_path_buf(), bounds)?);
    let seeker = feeder.clone();
    appsrc.set_callbacks(
        gst_app::AppSrcCallbacks::builder()
            .need_data(move |src, _| feeder.push_next(src))
            .seek_data(move |_, at| seeker.restart(at))
            .build(),
    );
    // Behind a capsfilter, the source's pad answers a caps query with the frames' caps
    // (an appsrc says ANY until it runs), so the branch for it is chosen as for a decoder.
    let filter = gst::ElementFactory::make("capsfilter")
        .property("caps", &caps)
        .build()
        .map_err(|e| e.to_string())?;
    let bin = gst::Bin::new();
    bin.add_many([appsrc.upcast_ref(), &filter])
        .map_err(|e| e.to_string())?;
    appsrc.link(&filter).map_err(|e| e.to_string())?;
    let pad = filter.static_pad("src").ok_or("no capsfilter pad")?;
    let ghost = gst::GhostPad::builder_with_target(&pad)
        .map_err(|e| e.to_string())?
        .name("src")
        .build();
    bin.add_pad(&ghost).map_err(|e| e.to_string())?;
    Ok(bin.upcast())
}

/// A frame for generation `.0`; `None` is the end of the animation.
type Decoded = (u64, Option<gst::Buffer>);

/// The decoding thread's handle. The `image` crate's frame iterator cannot move between
/// threads, so one thread of its own decodes, a frame or two ahead, and hands buffers over
/// a channel; a seek starts a new generation and the frames of older ones are dropped.
struct Feeder {
    generation: AtomicU64,
    commands: Mutex<mpsc::Sender<(u64, u64)>>,
    frames: Mutex<mpsc::Receiver<Decoded>>,
}

impl Feeder {
    fn spawn(path: PathBuf, bounds: InputBounds) -> Result<Self, String> {
        let (commands, requests) = mpsc::channel();
        let (decoded, frames) = mpsc::sync_channel(2);
        std::thread::Builder::new()
            .name("callfeed-animation".into())
            .spawn(move || decode_plays(&path, bounds, &requests, &decoded))
            .map_err(|e| e.to_string())?;
        commands
            .send((0, 0))
            .map_err(|_| "the animation decoder did not start".to_owned())?;
        Ok(Self {
            generation: AtomicU64::new(0),
            commands: Mutex::new(commands),
            frames: Mutex::new(frames),
        })
    }

    fn push_next(&self, src: &gst_app::AppSrc) {
        let generation = self.generation.load(Ordering::Acquire);
        let next = {
            let frames = self.frames.lock().expect("animation frames lock");
            loop {
                match frames.recv() {
                    Ok((g, _)) if g != generation => continue,
                    Ok((_, frame)) => break frame,
                    Err(_) => break None,
                }
            }
        };
        let _ = match next {
            Some(buffer) => src.push_buffer(buffer).map(|_| ()),
            None => src.end_of_stream().map(|_| ()),
        };
    }

    fn restart(&self, at: u64) -> bool {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.commands
            .lock()
            .expect("animation commands lock")
            .send((generation, at))
            .is_ok()
    }
}

/// How one play of the animation ended.
enum Played {
    /// Every frame was handed over.
    Ended,
    /// A seek asked for a new play.
    Interrupted((u64, u64)),
    /// The source is gone.
    Gone,
}

/// The decoding thread: one play per command (a generation and the time to start from),
/// until the source is gone.
fn decode_plays(
    path: &Path,
    bounds: InputBounds,
    requests: &mpsc::Receiver<(u64, u64)>,
    decoded: &mpsc::SyncSender<Decoded>,
) {
    let mut next = requests.recv().ok();
    while let Some((generation, from)) = next.take() {
        match play(path, bounds, generation, from, requests, decoded) {
            Played::Interrupted(request) => next = Some(request),
            Played::Ended => {
                if decoded.send((generation, None)).is_err() {
                    return;
                }
                next = requests.recv().ok();
            }
            Played::Gone => return,
        }
    }
}

fn play(
    path: &Path,
    bounds: InputBounds,
    generation: u64,
    from: u64,
    requests: &mpsc::Receiver<(u64, u64)>,
    decoded: &mpsc::SyncSender<Decoded>,
) -> Played {
    let Some(opened) = open(path, bounds) else {
        return Played::Ended;
    };
    let mut pts = Duration::ZERO;
    for frame in opened.frames {
        if let Ok(request) = requests.try_recv() {
            return Played::Interrupted(request);
        }
        let Ok(frame) = frame else {
            return Played::Ended;
        };
        let (numer, denom) = frame.delay().numer_denom_ms();
        let delay = Duration::from_secs_f64(f64::from(numer) / f64::from(denom.max(1)) / 1000.0);
        let shown = header::shown_for(delay);
        let picture = gst::Buffer::from_mut_slice(frame.into_buffer().into_raw());
        for (at, lasting) in showings(pts, shown) {
            if (at + lasting).as_nanos() as u64 <= from {
                continue;
            }
            // A shallow copy: the showings of one frame share its pixels.
            if decoded
                .send((generation, Some(timed(picture.copy(), at, lasting))))
                .is_err()
            {
                return Played::Gone;
            }
        }
        pts += shown;
    }
    Played::Ended
}

/// The steady rate an animation's frames are sent at. The frame rate converters show a
/// frame only until about halfway to the next one, so a frame held for a second (a GIF's
/// last frame often is) sent once would lose half of it; sent on a steady grid, every
/// frame is shown for its whole delay.
const SHOWINGS_PER_SECOND: u32 = 30;

/// When a frame shown from `pts` for `shown` is sent, and for how long each time: at `pts`,
/// then on each tick of the steady grid until it ends.
fn showings(pts: Duration, shown: Duration) -> Vec<(Duration, Duration)> {
    let tick = Duration::from_secs(1) / SHOWINGS_PER_SECOND;
    let end = pts + shown;
    let mut starts = vec![pts];
    let mut k = (pts.as_nanos() / tick.as_nanos()) as u32 + 1;
    while tick * k < end {
        starts.push(tick * k);
        k += 1;
    }
    let ends = starts.iter().skip(1).copied().chain([end]);
    starts.iter().zip(ends).map(|(&s, e)| (s, e - s)).collect()
}

fn timed(mut buffer: gst::Buffer, pts: Duration, shown: Duration) -> gst::Buffer {
    let b = buffer.make_mut();
    b.set_pts(gst::ClockTime::from_nseconds(pts.as_nanos() as u64));
    b.set_duration(gst::ClockTime::from_nseconds(shown.as_nanos() as u64));
    buffer
}
