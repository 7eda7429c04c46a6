//! Announcements: a file transcoded once to a faststart MP4 that meets the contract, cached
//! by content hash and profile. Served with Range, the cloud can pace, seek and loop it
//! itself (`RepeatNum`), so one encode serves any number of rooms.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use sha2::{Digest, Sha256};

use super::contract::Contract;
use super::inspect::ProbeReport;
use super::live::EngineError;
use super::topology::Topologies;

/// Bumped whenever the encoder settings change, so old cache entries are not reused.
const CACHE_VERSION: &str = "v2";

/// Where transcoded announcements are kept.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("callfeed")
        .join("announcements")
}

fn content_hash(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(&hasher.finalize()[..16]))
}

/// The lock one target's transcode is made under, in this process.
fn in_flight(target: &Path) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex};
    static FLIGHTS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut flights = FLIGHTS.lock().expect("in-flight lock");
    // Forget finished flights: only this map and the caller hold a live one.
    flights.retain(|_, f| Arc::strong_count(f) > 1);
    flights.entry(target.to_path_buf()).or_default().clone()
}

/// The announcement of `input` under `contract`: the file itself when it already meets the
/// contract (as `report` says), else the cached MP4, transcoded first if needed; `slate` is
/// the picture of an input without video (its cover art otherwise). `progress` gets the
/// fraction done (0..=1) while transcoding.
pub async fn prepare(
    input: &Path,
    report: &ProbeReport,
    slate: Option<&Path>,
    contract: Contract,
    topologies: &Topologies,
    cache_dir: &Path,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<PathBuf, EngineError> {
    if report.passthrough {
        progress(1.0);
        return Ok(input.to_path_buf());
    }
    let fail = |reason: String| EngineError::Input {
        input: input.display().to_string(),
        reason,
    };
    let mut hash = content_hash(input).map_err(|e| fail(e.to_string()))?;
    if let Some(slate) = slate.filter(|_| report.video.is_none() && contract.video.is_some()) {
        let shown = content_hash(slate).map_err(|e| EngineError::Input {
            input: slate.display().to_string(),
            reason: e.to_string(),
        })?;
        hash = format!("{hash}-{}", &shown[..8]);
    }
    // Another audio track of the same file is another announcement.
    if let Some(track) = report.audio_track.filter(|n| *n > 0) {
        hash = format!("{hash}-a{track}");
    }
    std::fs::create_dir_all(cache_dir).map_err(|e| EngineError::Build {
        stage: "announcement cache",
        reason: format!("{}: {e}", cache_dir.display()),
    })?;
    let target = cache_dir.join(format!(
        "{hash}-{}-{CACHE_VERSION}.mp4",
        contract.profile.name()
    ));
    // Sessions of this process asking for the same announcement at once wait for one
    // transcode instead of each making their own.
    let flight = in_flight(&target);
    let _turn = flight.lock().await;
    if target.exists() {
        tracing::info!(cached = %target.display(), "announcement already transcoded");
        progress(1.0);
        return Ok(target);
    }
    // Other processes may share the cache: each writer has a partial file of its own, and
    // a reader sees the whole file or none.
    write_mp4(
        input, report, slate, contract, topologies, &target, progress,
    )
    .await?;
    Ok(target)
}

/// Transcodes `input` to an MP4 at `output`, written whole or not at all: into a temporary
/// file beside it, renamed into place only once complete, so a failed or interrupted run
/// leaves no partial file (and never a truncated one where something was). The partial
/// file's name is its writer's own, and it is removed however the write ends (an error, or
/// a session stopped mid-transcode).
pub async fn write_mp4(
    input: &Path,
    report: &ProbeReport,
    slate: Option<&Path>,
    contract: Contract,
    topologies: &Topologies,
    output: &Path,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(), EngineError> {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output.mp4".into());
    let partial = RemoveOnDrop(
        output.with_file_name(format!(".{name}.partial-{}", uuid::Uuid::new_v4().simple())),
    );
    // A file that meets the contract is its own announcement (see `prepare`): written, it
    // is remuxed, its bitstream unchanged, rather than decoded and encoded once more.
    if report.passthrough {
        remux(input, report, &partial.0, progress).await?;
    } else {
        let picture = super::picture::Picture::for_input(slate, Some(report));
        transcode(
            input,
            report,
            picture.as_ref(),
            contract,
            topologies,
            &partial.0,
            progress,
        )
        .await?;
    }
    std::fs::rename(&partial.0, output).map_err(|e| EngineError::Build {
        stage: "output",
        reason: format!("{}: {e}", output.display()),
    })
}

/// A file that is deleted when this goes out of scope (a no-op once it was renamed away).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Transcodes `input` to a faststart MP4 at `output`, as fast as the machine allows; an
/// input without video shows `picture` (else black).
pub async fn transcode(
    input: &Path,
    report: &ProbeReport,
    picture: Option<&super::picture::Picture>,
    contract: Contract,
    topologies: &Topologies,
    output: &Path,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(), EngineError> {
    let fail = |reason: String| EngineError::Input {
        input: input.display().to_string(),
        reason,
    };
    let build = |reason: String| EngineError::Build {
        stage: "transcode",
        reason,
    };
    super::init().map_err(|e| build(e.to_string()))?;
    let duration = report
        .duration_ms
        .map(Duration::from_millis)
        .unwrap_or_default();
    let uri =
        url::Url::from_file_path(std::fs::canonicalize(input).map_err(|e| fail(e.to_string()))?)
            .map_err(|_| fail("not a file path".into()))?;
    let rotated = report
        .video
        .as_ref()
        .is_some_and(|v| v.orientation.is_some());
    let (audio_chain, video_chain) =
        contract_chains(contract, topologies, rotated).map_err(build)?;
    let MadeUp {
        branches,
        shown_picture,
    } = made_up(
        report,
        picture,
        contract,
        duration,
        video_chain.as_deref(),
        &audio_chain,
    )?;
    // The input's URI and the output path are set as properties, never parsed.
    let description = format!("mp4mux name=mux faststart=true ! filesink name=out{branches}");
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| build("not a pipeline".into()))?;
    let pipeline = super::NullOnDrop::new(pipeline);
    let aac_tail = super::encoder_delay::AacTail::default();
    aac_tail.watch(pipeline.upcast_ref());
    let location = output
        .to_str()
        .ok_or_else(|| build(format!("`{}` is not a UTF-8 path", output.display())))?;
    pipeline
        .by_name("out")
        .ok_or_else(|| build("no file sink".into()))?
        .set_property("location", location);
    if let Some(frame) = shown_picture {
        feed_picture(&pipeline, contract, frame).map_err(build)?;
    }
    let decode = super::pads::decoder_for(
        uri.as_str(),
        &pipeline,
        super::pads::DecoderThreads::Auto,
        report.bounds,
    )
    .map_err(build)?;
    let mux = pipeline
        .by_name("mux")
        .ok_or_else(|| build("no muxer".into()))?;
    let weak_mux = mux.downgrade();
    let want_video = contract.video.is_some();
    let audio_pick = super::pads::AudioPick::new(report.audio_track.unwrap_or(0));
    let first_sample = report.start_ms.map(Duration::from_millis);
    let tail = aac_tail.clone();
    super::pads::attach_decoded_pads(&decode, &pipeline, move |kind| {
        let chain = if kind.starts_with("video/") && want_video {
            video_chain.clone()
        } else if kind.starts_with("audio/") && audio_pick.next_is_chosen() {
            Some(audio_chain.clone())
        } else {
            None
        };
        let Some(chain) = chain else {
            return Ok(None);
        };
        let mux = weak_mux.upgrade().ok_or("the muxer is gone")?;
        let bin = gst::parse::bin_from_description(&format!("queue ! {chain} ! queue"), true)
            .map_err(|e| e.to_string())?;
        super::pads::play_from(&bin, first_sample);
        tail.watch(&bin);
        Ok(Some(super::pads::Branch {
            element: bin.upcast(),
            downstream: Some(mux),
        }))
    });
    run_to_end(&pipeline, duration, progress)
        .await
        .map_err(|e| match e {
            Ended::Failed(reason) => fail(reason),
            Ended::Broken(reason) => build(reason),
        })?;
    aac_tail.trim(output).map_err(build)?;
    progress(1.0);
    Ok(())
}

/// The launch branches that make up what an input lacks, and the picture one of them shows.
struct MadeUp {
    /// Each begins with a space and ends in the muxer.
    branches: String,
    /// The frame the `picture` appsrc is given, when the input's picture is shown.
    shown_picture: Option<gst::Buffer>,
}

/// What the input lacks is made up: its picture (or black) or silence for its length.
fn made_up(
    report: &ProbeReport,
    picture: Option<&super::picture::Picture>,
    contract: Contract,
    duration: Duration,
    video_chain: Option<&str>,
    audio_chain: &str,
) -> Result<MadeUp, EngineError> {
    let mut branches = String::new();
    let mut shown_picture = None;
    if let (Some(v), None) = (contract.video, &report.video) {
        let frames = (duration.as_secs_f64() * f64::from(v.fps)).ceil().max(1.0) as u64;
        let source = match picture {
            Some(picture) => {
                let frame = picture.frame(&contract, report.bounds).map_err(|reason| {
                    EngineError::Input {
                        input: picture.describe(),
                        reason: format!("cannot be shown as the picture: {reason}"),
                    }
                })?;
                shown_picture = Some(frame);
                "appsrc name=picture ! imagefreeze".to_owned()
            }
            None => "videotestsrc pattern=black".to_owned(),
        };
        branches.push_str(&format!(
            " {source} num-buffers={frames} ! {} ! mux.",
            video_chain.unwrap_or_default()
        ));
    }
    if report.audio.is_none() {
        let buffers = (duration.as_secs_f64() * 50.0).ceil().max(1.0) as u64;
        branches.push_str(&format!(
            " audiotestsrc wave=silence samplesperbuffer={} num-buffers={buffers} ! {audio_chain} ! queue ! mux.",
            contract.audio_rate / 50
        ));
    }
    Ok(MadeUp {
        branches,
        shown_picture,
    })
}

/// Gives the pipeline's `picture` appsrc its one frame, in the contract's raw caps, and ends
/// its stream.
fn feed_picture(
    pipeline: &gst::Pipeline,
    contract: Contract,
    frame: gst::Buffer,
) -> Result<(), String> {
    let src = pipeline
        .by_name("picture")
        .and_then(|e| e.downcast::<gstreamer_app::AppSrc>().ok())
        .ok_or_else(|| "no picture source".to_owned())?;
    src.set_caps(
        contract
            .raw_video_caps()
            .and_then(|c| c.parse().ok())
            .as_ref(),
    );
    src.push_buffer(frame).map_err(|e| e.to_string())?;
    src.end_of_stream().map_err(|e| e.to_string())?;
    Ok(())
}

/// Remuxes a conforming `input` (H.264 and one AAC track in MP4/MOV or FLV) into a
/// faststart MP4 at `output`: demuxed and parsed, never decoded, so the packets are the
/// input's own.
async fn remux(
    input: &Path,
    report: &ProbeReport,
    output: &Path,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(), EngineError> {
    let build = |reason: String| EngineError::Build {
        stage: "remux",
        reason,
    };
    super::init().map_err(|e| build(e.to_string()))?;
    let pipeline = gst::Pipeline::new();
    let source = super::file_source(input).map_err(build)?;
    // Demuxed, and parsed only where the demuxer's packets do not say all a muxer needs
    // (an MP4's do: h264parse would put the parameter sets back in the first keyframe, and
    // the bitstream would no longer be the input's). decodebin, stopping there, shows
    // every stream at once, before the muxer starts: it takes no stream after that.
    let mut elementary = gst::Caps::builder("video/x-h264")
        .field("stream-format", "avc")
        .field("alignment", "au")
        .build();
    elementary.make_mut().append_structure(
        gst::Structure::builder("audio/mpeg")
            .field("mpegversion", 4)
            .field("stream-format", "raw")
            .build(),
    );
    let parse = gst::ElementFactory::make("decodebin")
        .property("caps", &elementary)
        .build()
        .map_err(|e| build(e.to_string()))?;
    let mux = gst::ElementFactory::make("mp4mux")
        .property("faststart", true)
        .build()
        .map_err(|e| build(e.to_string()))?;
    let location = output
        .to_str()
        .ok_or_else(|| build(format!("`{}` is not a UTF-8 path", output.display())))?;
    let sink = gst::ElementFactory::make("filesink")
        .property("location", location)
        .build()
        .map_err(|e| build(e.to_string()))?;
    pipeline
        .add_many([&source, &parse, &mux, &sink])
        .map_err(|e| build(e.to_string()))?;
    source.link(&parse).map_err(|e| build(e.to_string()))?;
    mux.link(&sink).map_err(|e| build(e.to_string()))?;
    let pipeline = super::NullOnDrop::new(pipeline);
    let weak_mux = mux.downgrade();
    let audio_pick = super::pads::AudioPick::new(report.audio_track.unwrap_or(0));
    let video_taken = std::sync::atomic::AtomicBool::new(false);
    super::pads::attach_decoded_pads(&parse, &pipeline, move |kind| {
        let wanted = if kind.starts_with("video/") {
            !video_taken.swap(true, std::sync::atomic::Ordering::AcqRel)
        } else {
            kind.starts_with("audio/") && audio_pick.next_is_chosen()
        };
        if !wanted {
            return Ok(None);
        }
        let mux = weak_mux.upgrade().ok_or("the muxer is gone")?;
        // The branch says what it carries, so the muxer gives it a pad of that kind.
        let carries = if kind.starts_with("video/") {
            "video/x-h264"
        } else {
            "audio/mpeg"
        };
        let bin =
            gst::parse::bin_from_description(&format!("queue ! capsfilter caps={carries}"), true)
                .map_err(|e| e.to_string())?;
        Ok(Some(super::pads::Branch {
            element: bin.upcast(),
            downstream: Some(mux),
        }))
    });
    let duration = report
        .duration_ms
        .map(Duration::from_millis)
        .unwrap_or_default();
    run_to_end(&pipeline, duration, progress)
        .await
        .map_err(|e| match e {
            Ended::Failed(reason) | Ended::Broken(reason) => EngineError::Input {
                input: input.display().to_string(),
                reason,
            },
        })?;
    progress(1.0);
    Ok(())
}

/// The launch chains a transcode brings raw audio and video through: normalised to the
/// contract and encoded. Only the topology's own words and checked numbers are in them.
fn contract_chains(
    contract: Contract,
    topologies: &Topologies,
    rotated: bool,
) -> Result<(String, Option<String>), String> {
    let render = |key: &str, values: &[(&str, &str)]| {
        topologies.render(key, values).map_err(|e| e.to_string())
    };
    let audio_chain = format!(
        "{} ! {}",
        render(
            "normalize.audio",
            &[
                ("rate", &contract.audio_rate.to_string()),
                ("channels", &contract.audio_channels.to_string())
            ]
        )?,
        render(
            "encode.audio",
            &[("audio_bps", &contract.audio_bps.to_string())]
        )?
    );
    let video_chain = match contract.video {
        Some(v) => Some(format!(
            "{} ! videorate ! video/x-raw,framerate={}/1 ! {}",
            render(
                super::topology::normalize_video_slot(rotated),
                &[
                    ("fps", &v.fps.to_string()),
                    ("width", &v.width.to_string()),
                    ("height", &v.height.to_string())
                ]
            )?,
            v.fps,
            topologies
                .render_video_encoder(&contract, &v, super::contract::EncoderThreads::Offline)
                .map_err(|e| e.to_string())?
        )),
        None => None,
    };
    Ok((audio_chain, video_chain))
}

/// How a transcode stopped short.
enum Ended {
    /// The input could not be read or decoded.
    Failed(String),
    /// The pipeline itself broke.
    Broken(String),
}

/// Plays `pipeline` as fast as it goes until EOS, reporting the fraction done of
/// `duration`.
async fn run_to_end(
    pipeline: &gst::Pipeline,
    duration: Duration,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(), Ended> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| Ended::Broken("no bus".into()))?;
    let mut messages = bus.stream();
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| Ended::Failed(e.to_string()))?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            msg = messages.next() => match msg.as_ref().map(|m| m.view()) {
                Some(gst::MessageView::Eos(_)) => return Ok(()),
                Some(gst::MessageView::Error(e)) => return Err(Ended::Failed(e.error().to_string())),
                None => return Err(Ended::Broken("bus closed".into())),
                _ => {}
            },
            _ = tick.tick() => {
                if let Some(p) = pipeline.query_position::<gst::ClockTime>()
                    && !duration.is_zero()
                {
                    progress((p.nseconds() as f64 / duration.as_nanos() as f64).min(1.0));
                }
            }
        }
    }
}
