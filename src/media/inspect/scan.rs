//! The cheap preflight of a local file: demuxed and parsed, never decoded. GStreamer's
//! Discoverer loads and runs the decoders to describe a file (a tenth of a CPU-second and
//! tens of MB for a 1080p H.264 clip); for the files a phone, a camera or an encoder writes
//! (H.264 and AAC in MP4/MOV, M4A or FLV) and the sound files announcements are made of (MP3,
//! with or without its ID3 tag, PCM WAV, FLAC, Vorbis and Opus in Ogg) the parsers' caps and the container's tags say
//! all the probe needs, and the same pass measures the H.264 packets for the passthrough
//! verdict. Any other file is left to the Discoverer.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::report::VideoMeasures;
use super::report::{
    AudioStream, Found, VideoStream, caps_name as named, codec_name, cover_art, orientation,
};

/// Containers read this way.
const CONTAINERS: [&str; 9] = [
    "video/quicktime",
    "audio/x-m4a",
    "video/x-flv",
    "application/x-id3",
    "audio/mpeg",
    "audio/x-wav",
    "audio/x-flac",
    "audio/ogg",
    "application/ogg",
];

/// What the parsers post on the bus once every stream has passed its first packet, so the
/// tags sent ahead of it have been seen. parsebin shows all of a file's streams together,
/// before any packet flows (and says no `no-more-pads`).
const ALL_STREAMS: &str = "callfeed-scan-all-streams";

/// How long the parsers may take to pass every stream's first packet.
const PREROLL: gst::ClockTime = gst::ClockTime::from_seconds(5);

/// One stream as its parser describes it.
pub(super) struct ScannedStream {
    pub(super) caps: gst::Caps,
    /// The stream's own tags (language, rotation).
    pub(super) tags: gst::TagList,
}

/// A local file, parsed.
pub(super) struct Scanned {
    /// The container's media type.
    pub(super) container: String,
    pub(super) duration: Option<gst::ClockTime>,
    pub(super) seekable: bool,
    /// In the order the demuxer offers them, which is the order a decoder plays them in.
    pub(super) streams: Vec<ScannedStream>,
    /// The file's own tags (cover art, rotation for the whole file).
    pub(super) global_tags: gst::TagList,
    /// The first H.264 stream's packets, measured.
    pub(super) measures: Option<Result<VideoMeasures, String>>,
}

/// What the pad handler records: each pad (by its name's number) with its tags, the file's
/// tags, the sink of the first H.264 stream, and how many streams flow.
#[derive(Default)]
struct Seen {
    pads: Vec<(u32, gst::Pad, gst::TagList)>,
    global: gst::TagList,
    h264: Option<gst_app::AppSink>,
    /// How many audio and video streams have passed their first packet.
    flowing: usize,
    /// How many audio and video streams are shown: only they are waited for (a subtitle
    /// track may have no packet for minutes).
    playable: usize,
    /// How many streams the file says it has, where the demuxer shows them one by one.
    expected: usize,
}

/// The parsers running over a file, every stream past its first packet.
struct Parsed {
    pipeline: crate::media::NullOnDrop,
    parse: gst::Element,
    seen: Arc<Mutex<Seen>>,
}

/// Runs the parsers over `path` until every stream has passed its first packet (and its
/// tags have been seen).
fn parse(path: &Path) -> Result<Parsed, &'static str> {
    const BUILD: &str = "the parsers could not be set up";
    crate::media::init().map_err(|_| BUILD)?;
    let pipeline = gst::Pipeline::new();
    let source = crate::media::file_source(path).map_err(|_| BUILD)?;
    let parse = gst::ElementFactory::make("parsebin")
        .build()
        .map_err(|_| BUILD)?;
    pipeline.add_many([&source, &parse]).map_err(|_| BUILD)?;
    source.link(&parse).map_err(|_| BUILD)?;
    let pipeline = crate::media::NullOnDrop::new(pipeline);
    let seen = Arc::new(Mutex::new(Seen {
        expected: flv_streams(path).unwrap_or(0),
        ..Seen::default()
    }));
    attach(&parse, &pipeline, &seen);
    let bus = pipeline.bus().ok_or(BUILD)?;
    // Playing from the start, every sink draining and none prerolling (`async=false`): a
    // sink prerolling would hold the demuxer's one thread before the other streams had
    // their first packet.
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the file cannot be opened")?;
    let shown = bus
        .timed_pop_filtered(
            PREROLL,
            &[
                gst::MessageType::Application,
                gst::MessageType::Error,
                gst::MessageType::Eos,
            ],
        )
        .ok_or("no packet within 5 s")?;
    if !matches!(shown.view(), gst::MessageView::Application(_)) {
        return Err("the parsers failed");
    }
    Ok(Parsed {
        pipeline,
        parse,
        seen,
    })
}

/// Each stream's caps (which carry a video's size from the container or the bitstream)
/// and the tags of the file and of its streams, from the parsers alone, whatever the
/// container: nothing is decoded.
pub(crate) fn streams(path: &Path) -> Result<(Vec<gst::Caps>, gst::TagList), &'static str> {
    // Kept playing while the pads are read: a pad stopped forgets its caps.
    let parsed = parse(path)?;
    let seen = parsed.seen.lock().expect("scan lock");
    let mut tags = seen.global.clone();
    let mut caps = Vec::new();
    for (_, pad, stream_tags) in &seen.pads {
        caps.extend(pad.current_caps());
        tags = tags.merge(stream_tags, gst::TagMergeMode::Keep);
    }
    Ok((caps, tags))
}

/// `path` parsed, or why not when it is not a file this path reads (another container or
/// codec, or anything unexpected): the Discoverer then looks, and names any problem.
pub(super) fn scan(path: &Path) -> Result<Scanned, &'static str> {
    let Parsed {
        pipeline,
        parse,
        seen,
    } = parse(path)?;
    let container = container_type(&parse).ok_or("no container type found")?;
    if !CONTAINERS.contains(&container.as_str()) {
        return Err("another container");
    }
    let (mut pads, global, h264) = {
        let mut seen = seen.lock().expect("scan lock");
        let pads = std::mem::take(&mut seen.pads);
        (pads, seen.global.clone(), seen.h264.take())
    };
    pads.sort_by_key(|(n, _, _)| *n);
    let mut streams = Vec::new();
    for (_, pad, tags) in pads {
        let caps = pad.current_caps().ok_or("a stream without caps")?;
        if !parsed_alone(&container, &caps) {
            return Err("a stream its parser does not describe fully in this container");
        }
        streams.push(ScannedStream { caps, tags });
    }
    if streams.is_empty() {
        return Err("no streams");
    }
    let duration = pipeline.query_duration::<gst::ClockTime>();
    let mut seeking = gst::query::Seeking::new(gst::Format::Time);
    let seekable = pipeline.query(&mut seeking) && seeking.result().0;
    let measures = h264.map(|sink| super::measure::read_h264(&sink, &pipeline, None));
    Ok(Scanned {
        container,
        duration,
        seekable,
        streams,
        global_tags: global,
        measures,
    })
}

/// The streams an FLV file's header announces (flvdemux adds its pads as each stream's
/// first tag arrives, so the first stream flows before the second is shown).
fn flv_streams(path: &Path) -> Option<usize> {
    use std::io::Read;
    let mut header = [0u8; 5];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    let flags = (&header[..3] == b"FLV").then_some(header[4])?;
    Some(usize::from(flags & 0x04 != 0) + usize::from(flags & 0x01 != 0))
}

/// What parsebin's own typefind found the file to be.
fn container_type(parse: &gst::Element) -> Option<String> {
    let typefind = parse
        .downcast_ref::<gst::Bin>()?
        .iterate_elements()
        .into_iter()
        .flatten()
        .find(|e| e.factory().is_some_and(|f| f.name() == "typefind"))?;
    let caps = typefind.property::<Option<gst::Caps>>("caps")?;
    caps.structure(0).map(|s| s.name().to_string())
}

fn caps_name(caps: &gst::CapsRef) -> &str {
    caps.structure(0).map_or("", |s| s.name().as_str())
}

/// A stream its parser describes fully in `container`: H.264 and AAC in MP4/M4A/FLV, MP3
/// (or AAC, or FLAC) as a sound file of its own, PCM in WAV, FLAC, and Vorbis, Opus or FLAC
/// in Ogg.
fn parsed_alone(container: &str, caps: &gst::CapsRef) -> bool {
    let s = caps.structure(0);
    let int = |field: &str| s.and_then(|s| s.get::<i32>(field).ok());
    let aac = || caps_name(caps) == "audio/mpeg" && matches!(int("mpegversion"), Some(2 | 4));
    let mp3 = || {
        caps_name(caps) == "audio/mpeg" && int("mpegversion") == Some(1) && int("layer") == Some(3)
    };
    let named = |names: &[&str]| names.contains(&caps_name(caps));
    match container {
        "application/x-id3" | "audio/mpeg" => mp3() || aac() || named(&["audio/x-flac"]),
        "audio/x-wav" => named(&["audio/x-raw"]),
        "audio/x-flac" => named(&["audio/x-flac"]),
        "audio/ogg" | "application/ogg" => {
            named(&["audio/x-vorbis", "audio/x-opus", "audio/x-flac"])
        }
        _ => named(&["video/x-h264"]) || aac(),
    }
}

/// Each parsed pad is recorded with its tags; the first H.264 one feeds an appsink through a
/// queue (kept in `seen`), every other is drained.
fn attach(parse: &gst::Element, pipeline: &gst::Pipeline, seen: &Arc<Mutex<Seen>>) {
    let weak_pipeline = pipeline.downgrade();
    let seen = seen.clone();
    parse.connect_pad_added(move |_, pad| {
        let number = pad
            .name()
            .rsplit('_')
            .next()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        let playable = pad
            .current_caps()
            .unwrap_or_else(|| pad.query_caps(None))
            .structure(0)
            .is_some_and(|s| s.name().starts_with("audio/") || s.name().starts_with("video/"));
        {
            let mut seen = seen.lock().expect("scan lock");
            seen.pads.push((number, pad.clone(), gst::TagList::new()));
            seen.playable += usize::from(playable);
        }
        let tags_of = seen.clone();
        pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
            if let Some(gst::PadProbeData::Event(event)) = &info.data
                && let gst::EventView::Tag(tag) = event.view()
            {
                record_tags(&tags_of, pad, tag.tag());
            }
            gst::PadProbeReturn::Ok
        });
        let (counted, to_tell) = (seen.clone(), weak_pipeline.clone());
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if !playable {
                return gst::PadProbeReturn::Remove;
            }
            let all_flowing = {
                let mut seen = counted.lock().expect("scan lock");
                seen.flowing += 1;
                seen.flowing == seen.playable && seen.flowing >= seen.expected
            };
            if all_flowing && let Some(pipeline) = to_tell.upgrade() {
                let all = gst::Structure::new_empty(ALL_STREAMS);
                let _ = pipeline.post_message(gst::message::Application::new(all));
            }
            gst::PadProbeReturn::Remove
        });
        let Some(pipeline) = weak_pipeline.upgrade() else {
            return;
        };
        let is_h264 = pad
            .current_caps()
            .unwrap_or_else(|| pad.query_caps(None))
            .structure(0)
            .is_some_and(|s| s.name() == "video/x-h264");
        let first_h264 = is_h264 && seen.lock().expect("scan lock").h264.is_none();
        let linked = if first_h264 {
            let sink = gst_app::AppSink::builder()
                .sync(false)
                .async_(false)
                .max_buffers(64)
                .build();
            seen.lock().expect("scan lock").h264 = Some(sink.clone());
            link_through_queue(&pipeline, pad, sink.upcast_ref())
        } else {
            crate::media::pads::drain(&pipeline, pad)
        };
        if linked.is_none() {
            let _ = pipeline.post_message(
                gst::message::Error::builder(gst::CoreError::Negotiation, "cannot attach a pad")
                    .src(&pipeline)
                    .build(),
            );
        }
    });
}

fn link_through_queue(pipeline: &gst::Pipeline, pad: &gst::Pad, sink: &gst::Element) -> Option<()> {
    let queue = gst::ElementFactory::make("queue").build().ok()?;
    pipeline.add_many([&queue, sink]).ok()?;
    queue.link(sink).ok()?;
    sink.sync_state_with_parent().ok()?;
    queue.sync_state_with_parent().ok()?;
    pad.link(&queue.static_pad("sink")?).ok()?;
    Some(())
}

/// A stream's tags go with its pad, the file's with the file.
fn record_tags(seen: &Mutex<Seen>, pad: &gst::Pad, tags: &gst::TagListRef) {
    let mut seen = seen.lock().expect("scan lock");
    if tags.scope() == gst::TagScope::Global {
        seen.global = seen.global.merge(tags, gst::TagMergeMode::Keep);
    } else if let Some((_, _, kept)) = seen.pads.iter_mut().find(|(_, p, _)| p == pad) {
        *kept = kept.merge(tags, gst::TagMergeMode::Keep);
    }
}

/// A file the parsers alone described (see [`scan`](super::scan)).
pub(super) fn found(scanned: Scanned) -> Found {
    let global = Some(&scanned.global_tags);
    let mut video = None;
    let mut audio_streams = Vec::new();
    let mut entries = Vec::new();
    for stream in &scanned.streams {
        let (name, s) = named(Some(stream.caps.clone()));
        let codec = codec_name(&name, s.as_ref());
        let int = |field: &str| s.as_ref().and_then(|s| s.get::<i32>(field).ok());
        if name.starts_with("video/") {
            let fps = s
                .as_ref()
                .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
                .filter(|f| f.denom() > 0)
                .map_or(0.0, |f| f64::from(f.numer()) / f64::from(f.denom()));
            video.get_or_insert_with(|| VideoStream {
                codec: codec.clone(),
                profile: s.as_ref().and_then(|s| s.get::<String>("profile").ok()),
                width: int("width").unwrap_or(0) as u32,
                height: int("height").unwrap_or(0) as u32,
                fps,
                still_image: false,
                orientation: orientation(Some(&stream.tags)).or_else(|| orientation(global)),
            });
            entries.push(("video", codec, None));
        } else {
            audio_streams.push(AudioStream {
                codec: codec.clone(),
                rate: int("rate").unwrap_or(0) as u32,
                channels: int("channels").unwrap_or(0) as u32,
            });
            let language = stream
                .tags
                .get::<gst::tags::LanguageCode>()
                .map(|l| l.get().to_owned());
            entries.push(("audio", codec, language));
        }
    }
    let cover_art = cover_art(global).or_else(|| {
        scanned
            .streams
            .iter()
            .find_map(|s| cover_art(Some(&s.tags)))
    });
    Found {
        container: scanned.container,
        video,
        tracks: super::tracks::numbered(entries),
        audio_streams,
        cover_art,
        duration_ms: scanned.duration.map(|d| d.mseconds()),
        seekable: scanned.seekable,
        measures: scanned.measures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs ffmpeg in `dir` (inputs named there are found) and returns `dir/name`.
    fn make(dir: &Path, name: &str, args: &str) -> std::path::PathBuf {
        let ok = std::process::Command::new("ffmpeg")
            .current_dir(dir)
            .args(["-v", "error", "-y"])
            .args(args.split_whitespace())
            .arg(name)
            .status()
            .expect("ffmpeg (make setup)")
            .success();
        assert!(ok, "ffmpeg {args} {name}");
        dir.join(name)
    }

    const PICTURE: &str = "-f lavfi -i testsrc=s=640x360:r=30:d=2";
    const TONE: &str = "-f lavfi -i sine=d=2:sample_rate=48000";
    const H264_AAC: &str = "-pix_fmt yuv420p -c:v libx264 -bf 0 -c:a aac";

    #[test]
    fn the_parsers_describe_a_file_as_the_discoverer_does() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        make(
            d,
            "cover.png",
            "-f lavfi -i color=c=red:s=64x64 -frames:v 1",
        );
        let files = [
            make(
                d,
                "main.mp4",
                &format!("{PICTURE} {TONE} {H264_AAC} -profile:v main"),
            ),
            make(
                d,
                "phone.mp4",
                // ffmpeg's `rotate` is counter-clockwise, and honoured only when copying.
                "-i main.mp4 -c copy -metadata:s:v:0 rotate=270",
            ),
            make(
                d,
                "languages.mp4",
                &format!(
                    "{PICTURE} -f lavfi -i sine=f=300:d=2 -f lavfi -i sine=f=600:d=2 -map 0:v \
                     -map 1:a -map 2:a {H264_AAC} -metadata:s:a:0 language=eng -metadata:s:a:1 language=fre"
                ),
            ),
            make(
                d,
                "cover.m4a",
                &format!(
                    "{TONE} -i cover.png -map 0:a -map 1:v -c:a aac -c:v png -disposition:v attached_pic"
                ),
            ),
            make(d, "clip.flv", &format!("{PICTURE} {TONE} {H264_AAC}")),
            make(d, "voice.m4a", &format!("{TONE} -c:a aac")),
        ];
        let mut described = Vec::new();
        for path in files {
            let by_parsers = found(scan(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")));
            let uri = url::Url::from_file_path(&path).unwrap().to_string();
            let mut by_discoverer =
                super::super::discover::found(&uri, None, Default::default()).unwrap();
            by_discoverer.measures = by_discoverer
                .video
                .as_ref()
                .map(|_| super::super::measure::measure_h264(&path));
            assert_eq!(by_parsers, by_discoverer, "{path:?}");
            described.push(by_parsers);
        }
        // What the files were made to show, shown.
        let [main, phone, languages, cover, flv, voice] = &described[..] else {
            unreachable!()
        };
        let video = |f: &Found| f.video.clone().unwrap();
        assert_eq!(video(main).profile.as_deref(), Some("main"));
        assert!(main.measures.as_ref().unwrap().is_ok());
        assert_eq!(video(phone).orientation.as_deref(), Some("rotate-90"));
        let spoken: Vec<_> = languages
            .tracks
            .iter()
            .map(|t| t.language.clone())
            .collect();
        assert_eq!(spoken, [None, Some("en".into()), Some("fr".into())]);
        assert!(
            cover.cover_art.is_some() && cover.video.is_none(),
            "{cover:?}"
        );
        assert_eq!((video(flv).width, flv.audio_streams[0].rate), (640, 48000));
        assert_eq!(voice.duration_ms.map(|ms| ms / 100), Some(20));
    }

    #[test]
    fn sound_files_are_described_by_their_parsers() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mp3 = found(
            scan(&make(
                d,
                "tone.mp3",
                "-f lavfi -i sine=d=2:sample_rate=44100 -ac 1 -c:a libmp3lame -b:a 64k",
            ))
            .unwrap(),
        );
        assert_eq!(
            (
                mp3.audio_streams[0].codec.as_str(),
                mp3.audio_streams[0].rate
            ),
            ("mp3", 44100)
        );
        assert_eq!(mp3.audio_streams[0].channels, 1);
        assert!(
            mp3.duration_ms.is_some_and(|ms| ms.abs_diff(2000) < 100),
            "{mp3:?}"
        );
        let wav = found(scan(&make(d, "tone.wav", "-f lavfi -i sine=d=1 -ac 2")).unwrap());
        assert_eq!(wav.container, "audio/x-wav");
        assert_eq!(
            (
                wav.audio_streams[0].codec.as_str(),
                wav.audio_streams[0].channels
            ),
            ("pcm", 2)
        );
        assert_eq!(wav.duration_ms, Some(1000));
        for (name, args, codec) in [
            ("tone.flac", "-f lavfi -i sine=d=1 -ac 2", "flac"),
            (
                "tone.ogg",
                "-f lavfi -i sine=d=1 -ac 2 -c:a libvorbis",
                "vorbis",
            ),
            (
                "tone.opus",
                "-f lavfi -i sine=d=1 -ac 2 -c:a libopus",
                "opus",
            ),
        ] {
            let sound = found(scan(&make(d, name, args)).unwrap());
            assert_eq!(sound.audio_streams[0].codec, codec, "{name}");
            assert_eq!(sound.audio_streams[0].channels, 2, "{name}");
            assert!(
                sound.duration_ms.is_some_and(|ms| ms.abs_diff(1000) < 50),
                "{name}: {sound:?}"
            );
        }
    }

    #[test]
    fn other_files_are_left_to_the_discoverer() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for path in [
            make(d, "clip.mkv", &format!("{PICTURE} {TONE} {H264_AAC}")),
            make(
                d,
                "mp3.mp4",
                &format!("{PICTURE} {TONE} -pix_fmt yuv420p -c:v libx264 -c:a libmp3lame"),
            ),
            make(d, "tone.aiff", "-f lavfi -i sine=d=1"),
        ] {
            assert!(scan(&path).is_err(), "{path:?}");
        }
        assert!(scan(&d.join("missing.mp4")).is_err());
    }
}
