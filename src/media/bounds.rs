//! How large an input may be before anything decodes it. A picture's or a video's header
//! can name any size (an 85-byte GIF claims a 65535x65535 screen, 17 GB as RGBA), and an
//! animation any number of frames, each composed on its whole canvas: what the stream can
//! use is bounded by the largest profile, so anything much larger is refused at probe,
//! with the size, the limit and the fix, before it costs a node its memory.
//!
//! The vocabulary only: the checks are made where sizes are read (`header`, `sizes`).

use super::contract::Profile;

/// By default an input may be twice the largest profile per side (3840x2160 against
/// 1080p): a 4K clip or photo is scaled down, anything larger is refused.
pub const DEFAULT_INPUT_SCALE: u32 = 2;

/// The largest `--max-input-scale`: 7680x4320 (8K), 130 MB a decoded RGBA frame.
pub const MAX_INPUT_SCALE: u32 = 4;

/// An animation plays at most this many frames (a minute at 30 frames a second): each is
/// decoded, composed on the whole canvas and timed on its own.
pub const MAX_ANIMATION_FRAMES: u64 = 1_800;

/// Frames counted in an animation's headers: one past the most played, so a longer one is
/// told apart without reading the rest.
pub(crate) const FRAMES_COUNTED: u64 = MAX_ANIMATION_FRAMES + 1;

/// An animation's frames times its canvas area, at most: the pixels composed for one play
/// (every frame is composed on the whole canvas, however small it is). The `image` crate
/// composes 170 to 570 million of them a second (a release build: 300 frames of a real
/// 640x480 GIF in 0.5 s, 60 of 3840x2160 in 0.9 s), so one play, and one announcement
/// transcode, costs a core a few seconds at most: 540 frames of 1280x720, 1,600 of 640x480.
pub const MAX_FRAME_PIXELS: u64 = 500_000_000;

/// Decoders of the `image` crate keep a few canvases at once (the previous frame, the one
/// being composed, the frame as read): room for this many of the largest.
const IMAGE_CANVASES: u64 = 4;

/// How large an input may be: `scale` times the largest profile's size per side, either
/// way up (a portrait 2160x3840 clip is as large as a landscape one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputBounds {
    scale: u32,
    /// The longest text spoken (`tts:`), in characters.
    speech_chars: usize,
}

/// By default a `tts:` text is at most this long: a few minutes of speech.
pub const DEFAULT_SPEECH_CHARS: usize = 5_000;

impl Default for InputBounds {
    fn default() -> Self {
        Self {
            scale: DEFAULT_INPUT_SCALE,
            speech_chars: DEFAULT_SPEECH_CHARS,
        }
    }
}

/// Why an input is too large to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    #[error(
        "the {what} is {width}x{height}; the largest profile is {}x{} and inputs up to {}x{} are decoded: scale it down",
        largest.0, largest.1, limit.0, limit.1
    )]
    Size {
        /// `picture`, `animation`, `video`, `cover art`, `slate`, `frame`.
        what: &'static str,
        width: u32,
        height: u32,
        largest: (u32, u32),
        limit: (u32, u32),
    },
    #[error("the animation has more than {max} frames; at most {max} are played: make it shorter")]
    Frames { max: u64 },
    #[error(
        "the animation has {frames} frames of {width}x{height} ({} frame-pixels); at most {max} frame-pixels are played: make it shorter or smaller",
        frames * u64::from(*width) * u64::from(*height)
    )]
    FramePixels {
        frames: u64,
        width: u32,
        height: u32,
        max: u64,
    },
}

impl InputBounds {
    /// Bounds of `scale` times the largest profile per side (1 to [`MAX_INPUT_SCALE`]).
    pub fn new(scale: u32) -> Result<Self, String> {
        if (1..=MAX_INPUT_SCALE).contains(&scale) {
            Ok(Self {
                scale,
                speech_chars: DEFAULT_SPEECH_CHARS,
            })
        } else {
            Err(format!(
                "1 to {MAX_INPUT_SCALE} (times the largest profile per side; {DEFAULT_INPUT_SCALE} by default)"
            ))
        }
    }

    pub fn scale(self) -> u32 {
        self.scale
    }

    /// The same bounds with `tts:` texts of at most `chars` characters.
    pub fn with_speech_chars(self, chars: usize) -> Self {
        Self {
            speech_chars: chars,
            ..self
        }
    }

    pub fn speech_chars(self) -> usize {
        self.speech_chars
    }

    /// The largest profile's picture size.
    pub fn largest_profile() -> (u32, u32) {
        Profile::ALL
            .iter()
            .filter_map(|p| p.video())
            .map(|v| (v.width, v.height))
            .max_by_key(|(w, h)| u64::from(*w) * u64::from(*h))
            .expect("a video profile")
    }

    /// The largest input decoded, landscape (`(3840, 2160)` by default).
    pub fn max_size(self) -> (u32, u32) {
        let (w, h) = Self::largest_profile();
        (w * self.scale, h * self.scale)
    }

    /// Whether a `width`x`height` `what` fits, either way up.
    pub fn check(self, what: &'static str, width: u32, height: u32) -> Result<(), TooLarge> {
        let (long, short) = self.max_size();
        let fits = |a: u32, b: u32| a <= long && b <= short;
        if fits(width, height) || fits(height, width) {
            return Ok(());
        }
        Err(TooLarge::Size {
            what,
            width,
            height,
            largest: Self::largest_profile(),
            limit: (long, short),
        })
    }

    /// Whether an animation of `frames` frames on a `width`x`height` canvas is played
    /// (its size is checked apart). `frames` may be a count that stopped past the cap.
    pub fn check_animation(frames: u64, width: u32, height: u32) -> Result<(), TooLarge> {
        if frames > MAX_ANIMATION_FRAMES {
            return Err(TooLarge::Frames {
                max: MAX_ANIMATION_FRAMES,
            });
        }
        if frames * u64::from(width) * u64::from(height) > MAX_FRAME_PIXELS {
            return Err(TooLarge::FramePixels {
                frames,
                width,
                height,
                max: MAX_FRAME_PIXELS,
            });
        }
        Ok(())
    }

    /// The `image` crate's limits for decoders of inputs within these bounds: a second line
    /// behind the header checks, for anything they did not foresee (a GIF frame larger
    /// than its screen, say).
    pub fn image_limits(self) -> image::Limits {
        let (long, short) = self.max_size();
        let mut limits = image::Limits::default();
        // Per side, so the long side both ways: `check` judges the box itself.
        limits.max_image_width = Some(long);
        limits.max_image_height = Some(long);
        limits.max_alloc = Some(IMAGE_CANVASES * u64::from(long) * u64::from(short) * 4);
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_up_to_twice_the_largest_profile_are_decoded_either_way_up() {
        let bounds = InputBounds::default();
        assert_eq!(InputBounds::largest_profile(), (1920, 1080));
        assert_eq!(bounds.max_size(), (3840, 2160));
        for (w, h) in [(3840, 2160), (2160, 3840), (1, 1), (3840, 1)] {
            assert!(bounds.check("video", w, h).is_ok(), "{w}x{h}");
        }
        for (w, h) in [(8192, 8192), (3841, 2160), (2161, 3840), (65535, 65535)] {
            assert!(bounds.check("video", w, h).is_err(), "{w}x{h}");
        }
        let reason = bounds.check("picture", 8192, 8192).unwrap_err().to_string();
        assert_eq!(
            reason,
            "the picture is 8192x8192; the largest profile is 1920x1080 and inputs up to 3840x2160 are decoded: scale it down"
        );
        let wider = InputBounds::new(4).unwrap();
        assert!(wider.check("video", 7680, 4320).is_ok());
        assert!(InputBounds::new(0).is_err() && InputBounds::new(5).is_err());
    }

    #[test]
    fn an_animation_plays_a_bounded_number_of_frames_and_pixels() {
        assert!(InputBounds::check_animation(MAX_ANIMATION_FRAMES, 16, 16).is_ok());
        let many = InputBounds::check_animation(3000, 16, 16).unwrap_err();
        assert!(many.to_string().contains("more than 1800 frames"), "{many}");
        let large = InputBounds::check_animation(1700, 640, 480).unwrap_err();
        assert_eq!(
            large.to_string(),
            "the animation has 1700 frames of 640x480 (522240000 frame-pixels); at most 500000000 frame-pixels are played: make it shorter or smaller"
        );
        assert!(InputBounds::check_animation(300, 1280, 720).is_ok());
    }

    #[test]
    fn the_image_crate_is_limited_to_a_few_of_the_largest_canvases() {
        let limits = InputBounds::default().image_limits();
        assert_eq!(limits.max_image_width, Some(3840));
        assert_eq!(limits.max_alloc, Some(4 * 3840 * 2160 * 4));
    }
}
