//! What the observer reads out of a play: the `level` and `spectrum` elements' messages
//! (the call's level and tone, and the last tenth of a second's), and the cue points in the
//! bytes its source pulls, heard when the sound after them is.

use std::sync::Mutex;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use super::{ANALYSIS_RATE, MediaTally, SPECTRUM_BANDS, TONE_FLOOR_DB};

/// Reads the cue points of the bytes the source pulls (an FLV stream's), as they come.
impl MediaTally {
    /// Reads the cue points of the bytes `decode`'s source pulls (an FLV stream's).
    pub(super) fn read_cues_of(&self, decode: &gst::Element) {
        read_cues(decode, self);
    }

    /// Reads a `level` or `spectrum` element message.
    pub(super) fn analyse(&self, structure: &gst::StructureRef) {
        analyse(self, structure);
    }
}

fn read_cues(decode: &gst::Element, tally: &MediaTally) {
    let tally = tally.clone();
    decode.connect("source-setup", false, move |values| {
        let source = values.get(1).and_then(|v| v.get::<gst::Element>().ok())?;
        let pad = source.static_pad("src")?;
        let reader = Mutex::new(crate::media::cues::CueReader::default());
        let tally = tally.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
                && let Ok(map) = buffer.map_readable()
            {
                let cues = reader
                    .lock()
                    .map(|mut r| r.feed(map.as_slice()))
                    .unwrap_or_default();
                if !cues.is_empty() {
                    tally.with(|t| t.pending_cues.extend(cues));
                }
            }
            gst::PadProbeReturn::Ok
        });
        None
    });
}

/// Reads a `level` or `spectrum` element message into the tally.
fn analyse(tally: &MediaTally, structure: &gst::StructureRef) {
    match structure.name().as_str() {
        "level" => {
            let Ok(rms) = structure.get::<glib::ValueArray>("rms") else {
                return;
            };
            let db: Vec<f64> = rms.iter().filter_map(|v| v.get::<f64>().ok()).collect();
            if let Some(db) = db.first() {
                let db = db.max(-120.0);
                tally.with(|t| {
                    t.media.level_now_db = Some((db * 10.0).round() / 10.0);
                    t.level_power_sum += 10f64.powf(db / 10.0);
                    t.level_count += 1;
                    let mean = t.level_power_sum / t.level_count as f64;
                    t.media.audio_level_db = Some((10.0 * mean.log10() * 10.0).round() / 10.0);
                });
            }
        }
        "spectrum" => {
            let Ok(magnitudes) = structure.get::<gst::List>("magnitude") else {
                return;
            };
            let db: Vec<f32> = magnitudes
                .iter()
                .filter_map(|v| v.get::<f32>().ok())
                .collect();
            let Some((band, &peak)) = db.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
            else {
                return;
            };
            if peak <= TONE_FLOOR_DB {
                tally.with(|t| t.media.tone_now_hz = None);
                return;
            }
            // Bin k of the element's FFT (2 * bands - 2 points) is k * rate / nfft; a parabola
            // through the peak and its neighbours finds the tone between two bins.
            let offset = match (band.checked_sub(1).map(|i| db[i]), db.get(band + 1)) {
                (Some(a), Some(&c)) => {
                    let denominator = a - 2.0 * peak + c;
                    if denominator.abs() > f32::EPSILON {
                        f64::from(0.5 * (a - c) / denominator)
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            };
            let bin_hz = f64::from(ANALYSIS_RATE) / f64::from(2 * SPECTRUM_BANDS - 2);
            let hz = (band as f64 + offset.clamp(-0.5, 0.5)) * bin_hz;
            tally.with(|t| {
                t.media.tone_now_hz = Some(hz.round());
                let vote = t.dominant_votes.entry(band as u32).or_default();
                vote.0 += 1;
                vote.1 += hz;
                let (votes, sum) = t
                    .dominant_votes
                    .values()
                    .max_by(|a, b| a.0.cmp(&b.0))
                    .copied()
                    .expect("just voted");
                t.media.dominant_hz = Some((sum / votes as f64).round());
            });
        }
        _ => {}
    }
}
