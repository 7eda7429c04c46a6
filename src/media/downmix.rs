//! Surround audio brought to stereo as ffmpeg's `-ac 2` brings it (libswresample's matrix for
//! float input, ITU-R BS.775 coefficients). audioconvert's own matrix divides every row by
//! its sum so nothing can clip: a 5.1 film came out about 10 dB quieter than the same file
//! through ffmpeg, the dialogue in its centre channel most of all.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_audio::{AudioChannelPosition as Pos, AudioInfo};

/// -3 dB: ffmpeg's default centre and surround mix levels.
const MINUS_3DB: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// What one input channel adds to the left and to the right output, in ffmpeg's default
/// matrix. LFE is dropped (ffmpeg's `lfe_mix_level` is 0), and so are the height and
/// bottom channels, which ffmpeg's matrix has no place for either; the wide fronts, which it
/// does not name, go whole to their side as the other fronts do.
fn gains(position: Pos) -> (f32, f32) {
    match position {
        Pos::FrontLeft | Pos::FrontLeftOfCenter | Pos::WideLeft => (1.0, 0.0),
        Pos::FrontRight | Pos::FrontRightOfCenter | Pos::WideRight => (0.0, 1.0),
        Pos::FrontCenter => (MINUS_3DB, MINUS_3DB),
        Pos::RearLeft | Pos::SideLeft | Pos::SurroundLeft => (MINUS_3DB, 0.0),
        Pos::RearRight | Pos::SideRight | Pos::SurroundRight => (0.0, MINUS_3DB),
        // The surround level once more split between both sides.
        Pos::RearCenter => (MINUS_3DB * MINUS_3DB, MINUS_3DB * MINUS_3DB),
        _ => (0.0, 0.0),
    }
}

/// The stereo mix matrix (two rows, one column per input channel in the caps' order) for
/// audio with these caps, when it needs one: more than two channels whose positions the
/// caps give. Unpositioned audio has no positions to mix by.
fn matrix(caps: &gst::CapsRef) -> Option<[Vec<f32>; 2]> {
    let info = AudioInfo::from_caps(caps).ok()?;
    let positions = info.positions().filter(|p| p.len() > 2)?;
    let (left, right) = positions.iter().map(|p| gains(*p)).unzip();
    Some([left, right])
}

fn as_property(rows: &[Vec<f32>]) -> gst::Array {
    gst::Array::new(rows.iter().map(|row| gst::Array::new(row.iter().copied())))
}

/// An `audioconvert` mixing audio of `caps` to stereo by ffmpeg's matrix, to go in front of
/// a branch's own conversion; none when `caps` need no downmix (mono, stereo, unpositioned),
/// so those are left as they are. Should the caps change midstream, the matrix follows them
/// (audioconvert cannot go back to its default once a matrix is set).
pub(crate) fn in_front_of_branch(caps: &gst::CapsRef) -> Result<Option<gst::Element>, String> {
    if caps
        .structure(0)
        .is_none_or(|s| s.name().as_str() != "audio/x-raw")
    {
        return Ok(None);
    }
    let Some(rows) = matrix(caps) else {
        return Ok(None);
    };
    let mix = gst::ElementFactory::make("audioconvert")
        .property("mix-matrix", as_property(&rows))
        .build()
        .map_err(|e| e.to_string())?;
    let sink = mix
        .static_pad("sink")
        .ok_or("audioconvert has no sink pad")?;
    let weak = mix.downgrade();
    sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(event)) = &info.data
            && let gst::EventView::Caps(c) = event.view()
            && let Some(mix) = weak.upgrade()
        {
            mix.set_property("mix-matrix", as_property(&follow(c.caps())));
        }
        gst::PadProbeReturn::Ok
    });
    Ok(Some(mix))
}

/// The matrix for caps that arrive after the first: the downmix for surround, else what
/// audioconvert would have done by itself (stereo kept, mono on both sides, unpositioned
/// audio's first two channels).
fn follow(caps: &gst::CapsRef) -> [Vec<f32>; 2] {
    if let Some(rows) = matrix(caps) {
        return rows;
    }
    let channels = AudioInfo::from_caps(caps).map_or(2, |i| i.channels() as usize);
    let mut rows = [vec![0.0; channels], vec![0.0; channels]];
    match channels {
        0 => {}
        1 => rows.iter_mut().for_each(|r| r[0] = 1.0),
        _ => {
            rows[0][0] = 1.0;
            rows[1][1] = 1.0;
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(channels: i32, mask: u64) -> gst::Caps {
        gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("rate", 48_000)
            .field("channels", channels)
            .field("channel-mask", gst::Bitmask::new(mask))
            .build()
    }

    #[test]
    fn five_one_is_mixed_as_ffmpeg_mixes_it() {
        gst::init().unwrap();
        // FL FR FC LFE RL RR, GStreamer's order for this mask.
        let [l, r] = matrix(&caps(6, 0x3f)).unwrap();
        let h = MINUS_3DB;
        assert_eq!(l, [1.0, 0.0, h, 0.0, h, 0.0]);
        assert_eq!(r, [0.0, 1.0, h, 0.0, 0.0, h]);
        // 7.1 with a back centre instead of the rear pair: FL FR FC LFE RC SL SR.
        let mask = 0b1111 | 1 << 8 | 1 << 10 | 1 << 11;
        let [l, r] = matrix(&caps(7, mask)).unwrap();
        assert_eq!(l, [1.0, 0.0, h, 0.0, h * h, h, 0.0]);
        assert_eq!(r, [0.0, 1.0, h, 0.0, h * h, 0.0, h]);
    }

    #[test]
    fn stereo_mono_and_unpositioned_audio_are_left_alone() {
        gst::init().unwrap();
        for caps in [caps(2, 0x3), caps(1, 0), caps(6, 0)] {
            assert!(in_front_of_branch(&caps).unwrap().is_none(), "{caps}");
        }
        assert!(in_front_of_branch(&caps(6, 0x3f)).unwrap().is_some());
    }
}
