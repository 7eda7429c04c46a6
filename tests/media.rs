//! The media engine with real pipelines and real readers: what a puller receives.

use std::time::{Duration, Instant};

use crate::common::*;
use callfeed::media::contract::{Contract, Profile};
use callfeed::media::input::InputSpec;
use callfeed::media::live::{LiveSettings, LiveStream, Loops, MediaEvent};
use callfeed::media::observer::{MediaTally, ObserveSpec, Observer, Pace};
use callfeed::media::topology::Topologies;

fn topologies() -> Topologies {
    Topologies::builtin().unwrap()
}

/// Waits for an event matching `want`, or panics at the deadline.
async fn wait_event(
    events: &mut tokio::sync::broadcast::Receiver<MediaEvent>,
    deadline: Duration,
    want: impl Fn(&MediaEvent) -> bool,
) -> MediaEvent {
    tokio::time::timeout(deadline, async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return e,
                Ok(e) => eprintln!("event: {e:?}"),
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await
    .expect("the event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_source_becomes_a_contract_stream() {
    let spec = InputSpec::parse("test:ball+tone=880").unwrap();
    let stream = LiveStream::start(
        spec,
        LiveSettings::new(Contract::new(Profile::P360)),
        &topologies(),
    )
    .unwrap();
    let (_server, url) = serve_live(&stream).await;
    // An independent reader, paced as a player.
    let seen = observe_until(&url, 60, Duration::from_secs(10)).await;
    assert_eq!((seen.width, seen.height), (640, 360), "{seen:?}");
    assert!((seen.fps - 30.0).abs() < 1.5, "{seen:?}");
    assert!((seen.dominant_hz.unwrap() - 880.0).abs() < 5.0, "{seen:?}");
    assert_eq!(seen.size_changes, 0);

    // A reader joining late starts with the headers and a keyframe.
    let tags = read_flv(&url, Duration::from_millis(1500)).await;
    let media: Vec<&FlvTag> = tags.iter().filter(|t| t.kind != 18 && !t.config).collect();
    assert!(
        tags.iter().any(|t| t.kind == 9 && t.config),
        "AVC header first"
    );
    assert!(
        tags.iter().any(|t| t.kind == 8 && t.config),
        "AAC header first"
    );
    let first_video = media.iter().find(|t| t.kind == 9).unwrap();
    assert!(
        first_video.keyframe,
        "late reader starts on a keyframe: {tags:?}"
    );
    let stats = stream.stats();
    assert!(stats.frames_out > 60 && stats.restarts == 0, "{stats:?}");
    // A 30 fps source feeds a 30 fps stream: pictures are not sent twice, give or take the
    // scheduling of a busy test machine.
    assert!(stats.repeated_frames * 4 < stats.frames_out, "{stats:?}");
    stream.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_input_is_counted_as_repeated_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let clip = Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 15,
        tone_hz: 440,
    };
    let path = clip.write(dir.path(), "fifteen-fps.mp4");
    let spec = InputSpec::parse(path.to_str().unwrap()).unwrap();
    let mut stream = LiveStream::start(
        spec,
        LiveSettings::new(Contract::new(Profile::P360)),
        &topologies(),
    )
    .unwrap();
    assert_eq!(stream.wait().await.unwrap(), "input finished");
    // 15 pictures a second in a 30 fps stream: every other frame is a repeat.
    let stats = stream.stats();
    let share = stats.repeated_frames as f64 / stats.frames_out as f64;
    assert!((0.4..=0.6).contains(&share), "{share}: {stats:?}");
    assert!(stats.frames_in >= 28 && stats.frames_in <= 31, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looped_file_has_one_continuous_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let clip = Clip {
        seconds: 1,
        width: 320,
        height: 240,
        fps: 30,
        tone_hz: 440,
    };
    let path = clip.write(dir.path(), "one-second.mp4");
    let spec = InputSpec::parse(path.to_str().unwrap()).unwrap();
    let mut settings = LiveSettings::new(Contract::new(Profile::P360));
    settings.loops = Loops::Times(3);
    let mut stream = LiveStream::start(spec, settings, &topologies()).unwrap();
    let mut events = stream.events();
    let (_server, url) = serve_live(&stream).await;
    let reader = tokio::spawn(async move { read_flv(&url, Duration::from_secs(15)).await });
    let reason = stream.wait().await.unwrap();
    assert_eq!(reason, "input finished");
    let tags = reader.await.unwrap();
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == 9 && !t.config)
        .map(|t| t.timestamp_ms)
        .collect();
    let backwards: Vec<_> = video.windows(2).filter(|w| w[1] <= w[0]).collect();
    assert!(
        backwards.is_empty(),
        "monotonic video timestamps: {backwards:?} of {}",
        video.len()
    );
    let worst_gap = video.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(worst_gap <= 100, "a gap of {worst_gap} ms");
    // The last frame lasts one frame time too.
    let duration = f64::from(video.last().unwrap() - video.first().unwrap() + 33) / 1000.0;
    // A play is restarted by building its pipeline again; the picture holds meanwhile, so
    // each of the two loop points may add one frame time on a busy machine.
    assert!(
        (duration - 3.0).abs() <= 3.0 * 0.02 + 2.0 * 0.034,
        "three one-second plays took {duration} s"
    );
    let mut finished = 0;
    while let Ok(e) = events.try_recv() {
        if matches!(e, MediaEvent::ItemFinished { .. }) {
            finished += 1;
        }
    }
    assert_eq!(finished, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_source_goes_to_the_slate_and_comes_back() {
    // The source under test is itself a live stream behind a valve we control.
    let upstream = LiveStream::start(
        InputSpec::parse("test:ball+tone=440").unwrap(),
        LiveSettings::new(Contract::new(Profile::P360)),
        &topologies(),
    )
    .unwrap();
    let valve = Valve::start(upstream.hub()).await;
    let spec = InputSpec::parse(&valve.url()).unwrap();
    let stream = LiveStream::start(
        spec,
        LiveSettings::new(Contract::new(Profile::P360)),
        &topologies(),
    )
    .unwrap();
    let mut events = stream.events();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        *e == MediaEvent::FirstMedia
    })
    .await;
    let (_server, url) = serve_live(&stream).await;
    let closed_at = Instant::now();
    valve.close();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, MediaEvent::OnSlate { .. })
    })
    .await;
    assert!(
        closed_at.elapsed() < Duration::from_secs(4),
        "slate after {:?}",
        closed_at.elapsed()
    );
    // On the slate the output goes on, with the same caps.
    let tally = MediaTally::new(Instant::now());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let observer = Observer::start(
        ObserveSpec::new(url, Pace::Realtime, None),
        tally.clone(),
        tx,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.snapshot().video_frames < 30 {
        assert!(Instant::now() < deadline, "{:?}", tally.snapshot());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    valve.open();
    wait_event(&mut events, Duration::from_secs(20), |e| {
        *e == MediaEvent::BackOnInput
    })
    .await;
    let seen = tally.snapshot();
    observer.stop().await;
    assert_eq!(
        (seen.width, seen.height, seen.size_changes),
        (640, 360, 0),
        "{seen:?}"
    );
    assert_eq!(seen.gaps_over_500ms, 0, "{seen:?}");
    assert!(stream.stats().slate_frames > 0);
    stream.stop().await.unwrap();
    upstream.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_push_survives_its_server_going_away() {
    use callfeed::media::rtmp::{RtmpEvent, RtmpOutput};
    let mut nginx = Nginx::start();
    let stream = LiveStream::start(
        InputSpec::parse("test:ball+tone=440").unwrap(),
        LiveSettings::new(Contract::new(Profile::P360)),
        &topologies(),
    )
    .unwrap();
    let url = nginx.url("cam1");
    let output = RtmpOutput::start(stream.hub(), url.clone()).unwrap();
    let mut events = output.events();
    let wait = |events: &mut tokio::sync::broadcast::Receiver<RtmpEvent>,
                want: fn(&RtmpEvent) -> bool| {
        let mut events = events.resubscribe();
        async move {
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Ok(e) = events.recv().await
                        && want(&e)
                    {
                        return e;
                    }
                }
            })
            .await
            .expect("the RTMP event in time")
        }
    };
    let publishing = wait(&mut events, |e| *e == RtmpEvent::Publishing);
    publishing.await;
    let seen = observe_until(&url, 30, Duration::from_secs(15)).await;
    assert_eq!((seen.width, seen.height), (640, 360), "{seen:?}");
    assert!((seen.dominant_hz.unwrap() - 440.0).abs() < 5.0, "{seen:?}");

    // The server dies and comes back on the same port: the push resumes by itself.
    let port = nginx.port;
    let lost = wait(&mut events, |e| matches!(e, RtmpEvent::Lost { .. }));
    nginx.kill();
    lost.await;
    let back = wait(&mut events, |e| *e == RtmpEvent::Publishing);
    let nginx = Nginx::start_on(port);
    back.await;
    let seen = observe_until(&url, 30, Duration::from_secs(15)).await;
    assert_eq!(
        (seen.width, seen.height),
        (640, 360),
        "{seen:?}\n{}",
        nginx.error_log()
    );
    output.stop().await;
    stream.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_server_that_never_answers_is_reported_unreachable_with_its_attempts() {
    use callfeed::media::rtmp::{RtmpEvent, RtmpOutput};
    let stream = LiveStream::start(
        InputSpec::parse("test:black+silence").unwrap(),
        LiveSettings::new(Contract::new(Profile::Audio)),
        &topologies(),
    )
    .unwrap();
    let port = closed_port();
    let output =
        RtmpOutput::start(stream.hub(), format!("rtmp://127.0.0.1:{port}/live/x")).unwrap();
    let mut events = output.events();
    let second = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(RtmpEvent::Lost {
                attempt,
                unreachable,
                retry_in_ms,
                ..
            }) = events.recv().await
                && attempt >= 2
            {
                return (unreachable, retry_in_ms);
            }
        }
    })
    .await
    .expect("two attempts reported");
    assert!(second.0, "a closed port is unreachable, not a lost push");
    assert!(second.1 > 0, "it retries after a backoff");
    output.stop().await;
    stream.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_inputs_are_brought_to_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    // A 44.1 kHz mono mp3 into a video profile: stereo 48 kHz AAC, and a slate for video.
    let mp3 = dir.path().join("mono.mp3");
    assert!(
        std::process::Command::new("gst-launch-1.0")
            .args([
                "-q",
                "audiotestsrc",
                "num-buffers=60",
                "freq=660",
                "!",
                "audio/x-raw,rate=44100,channels=1",
                "!",
                "lamemp3enc",
                "!",
                "filesink"
            ])
            .arg(format!("location={}", mp3.display()))
            .status()
            .unwrap()
            .success()
    );
    // A 4K 60 fps clip into 360p: scaled and rate-limited to 30 fps.
    let uhd = Clip {
        seconds: 1,
        width: 3840,
        height: 2160,
        fps: 60,
        tone_hz: 440,
    }
    .write(dir.path(), "uhd.mp4");
    for (path, hz) in [(mp3, 660.0), (uhd, 440.0)] {
        let spec = InputSpec::parse(path.to_str().unwrap()).unwrap();
        let mut settings = LiveSettings::new(Contract::new(Profile::P360));
        settings.loops = Loops::Forever;
        let stream = LiveStream::start(spec, settings, &topologies()).unwrap();
        let (_server, url) = serve_live(&stream).await;
        let seen = observe_until(&url, 45, Duration::from_secs(20)).await;
        assert_eq!(
            (seen.width, seen.height, seen.size_changes),
            (640, 360, 0),
            "{path:?}: {seen:?}"
        );
        assert!((seen.fps - 30.0).abs() < 1.5, "{path:?}: {seen:?}");
        assert!(
            (seen.dominant_hz.unwrap_or(0.0) - hz).abs() < 5.0,
            "{path:?}: {seen:?}"
        );
        stream.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conforming_file_is_remuxed_without_decoding() {
    use callfeed::media::inspect as probe;
    let dir = tempfile::tempdir().unwrap();
    let clip = Clip {
        seconds: 1,
        width: 1280,
        height: 720,
        fps: 30,
        tone_hz: 440,
    };
    let path = clip.write(dir.path(), "hd.mp4");
    let spec = InputSpec::parse(path.to_str().unwrap()).unwrap();
    let contract = Contract::new(Profile::P720);
    let report = probe::probe(&spec, contract).unwrap();
    assert!(report.passthrough, "{report:?}");
    let mut settings = LiveSettings::new(contract);
    settings.loops = Loops::Times(2);
    let mut stream =
        LiveStream::start_passthrough(path, report.container.as_deref().unwrap(), settings)
            .unwrap();
    assert!(stream.stats().passthrough);
    let (_server, url) = serve_live(&stream).await;
    let reader = tokio::spawn(async move { read_flv(&url, Duration::from_secs(10)).await });
    assert_eq!(stream.wait().await.unwrap(), "input finished");
    let tags = reader.await.unwrap();
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == 9 && !t.config)
        .map(|t| t.timestamp_ms)
        .collect();
    assert_eq!(video.len(), 60, "two plays of 30 frames, untouched");
    assert!(
        video.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 100),
        "{video:?}"
    );
    let duration = f64::from(video.last().unwrap() - video.first().unwrap() + 33) / 1000.0;
    assert!((duration - 2.0).abs() <= 2.0 * 0.02, "{duration}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_plays_its_items_in_turn_from_the_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let a = Clip {
        seconds: 2,
        width: 320,
        height: 240,
        fps: 30,
        tone_hz: 440,
    }
    .write(dir.path(), "a.mp4");
    let b = Clip {
        seconds: 1,
        width: 320,
        height: 240,
        fps: 30,
        tone_hz: 880,
    }
    .write(dir.path(), "b.mp4");
    let spec = InputSpec::parse(&format!("playlist:{},{}", a.display(), b.display())).unwrap();
    let mut settings = LiveSettings::new(Contract::new(Profile::P360));
    settings.start = Some(Duration::from_secs(1));
    let mut stream = LiveStream::start(spec, settings, &topologies()).unwrap();
    let mut events = stream.events();
    let (_server, url) = serve_live(&stream).await;
    let reader = tokio::spawn(async move { read_flv(&url, Duration::from_secs(10)).await });
    assert_eq!(stream.wait().await.unwrap(), "input finished");
    let tags = reader.await.unwrap();
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == 9 && !t.config)
        .map(|t| t.timestamp_ms)
        .collect();
    // One second of a (started 1 s in) and all of b.
    let duration = f64::from(video.last().unwrap() - video.first().unwrap() + 33) / 1000.0;
    assert!((duration - 2.0).abs() <= 0.15, "{duration}");
    let mut items = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let MediaEvent::ItemFinished { item, .. } = e {
            items.push(item);
        }
    }
    assert_eq!(items, [0, 1]);
}

/// Needs a camera, which build machines lack: `cargo test --test tests media:: -- --ignored`
/// where `/dev/video0` exists. (Without one, the v4l2 description is unit-tested in
/// `media::input`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a camera at /dev/video0"]
async fn a_camera_becomes_a_contract_stream() {
    let spec = InputSpec::parse("v4l2:/dev/video0").unwrap();
    let stream = LiveStream::start(
        spec,
        LiveSettings::new(Contract::new(Profile::P360)),
        &topologies(),
    )
    .unwrap();
    let (_server, url) = serve_live(&stream).await;
    let seen = observe_until(&url, 30, Duration::from_secs(15)).await;
    assert_eq!((seen.width, seen.height), (640, 360), "{seen:?}");
    stream.stop().await.unwrap();
}

fn gst_make(pipeline: &str) {
    let ok = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(pipeline.split_whitespace())
        .status()
        .unwrap()
        .success();
    assert!(ok, "{pipeline}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_file_format_becomes_the_same_contract() {
    use callfeed::media::inspect as probe;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let tone = "audiotestsrc num-buffers=50 samplesperbuffer=1024 freq=660 ! audio/x-raw,rate=44100,channels=2";
    let ball = "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1";
    gst_make(&format!("{tone} ! wavenc ! filesink location={d}/a.wav"));
    gst_make(&format!("{tone} ! flacenc ! filesink location={d}/a.flac"));
    gst_make(&format!(
        "{tone} ! audioconvert ! voaacenc ! mp4mux ! filesink location={d}/a.m4a"
    ));
    gst_make(&format!(
        "{ball} ! x264enc speed-preset=ultrafast ! h264parse ! matroskamux name=m ! filesink location={d}/v.mkv {tone} ! audioresample ! opusenc ! m."
    ));
    gst_make(&format!(
        "{ball} ! vp8enc deadline=1 ! webmmux name=m ! filesink location={d}/v.webm {tone} ! audioconvert ! vorbisenc ! m."
    ));
    gst_make(&format!(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,width=800,height=600 ! jpegenc ! filesink location={d}/still.jpg"
    ));
    // An animated GIF of one second: looped, it is seeked back to its start.
    ffmpeg(&format!(
        "-f lavfi -i testsrc=size=160x120:rate=10:duration=1 {d}/anim.gif"
    ));
    // A stream whose resolution changes halfway: two TS segments of different sizes, joined.
    gst_make(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! x264enc speed-preset=ultrafast ! mpegtsmux ! filesink location={d}/part1.ts"
    ));
    gst_make(&format!(
        "videotestsrc num-buffers=30 ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! x264enc speed-preset=ultrafast ! mpegtsmux ! filesink location={d}/part2.ts"
    ));
    let mut joined = std::fs::read(dir.path().join("part1.ts")).unwrap();
    joined.extend(std::fs::read(dir.path().join("part2.ts")).unwrap());
    std::fs::write(dir.path().join("varsize.ts"), joined).unwrap();
    let samples = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/media-samples/tone-440hz-2s.ogg"
    );
    for (file, tone_hz) in [
        (format!("{d}/a.wav"), Some(660.0)),
        (format!("{d}/a.flac"), Some(660.0)),
        (format!("{d}/a.m4a"), Some(660.0)),
        (samples.to_owned(), Some(440.0)),
        (format!("{d}/v.mkv"), Some(660.0)),
        (format!("{d}/v.webm"), Some(660.0)),
        (format!("{d}/still.jpg"), None),
        (format!("{d}/anim.gif"), None),
        (format!("{d}/varsize.ts"), None),
    ] {
        let spec = InputSpec::parse(&file).unwrap();
        let contract = Contract::new(Profile::P360);
        let report = probe::probe(&spec, contract).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut settings = LiveSettings::new(contract);
        settings.loops = Loops::Forever;
        settings.still_image = report.video.as_ref().is_some_and(|v| v.still_image);
        let stream = LiveStream::start(spec, settings, &topologies()).unwrap();
        let (_server, url) = serve_live(&stream).await;
        let seen = observe_until(&url, 40, Duration::from_secs(20)).await;
        assert_eq!(
            (seen.width, seen.height, seen.size_changes),
            (640, 360, 0),
            "{file}: {seen:?}"
        );
        assert!((seen.fps - 30.0).abs() < 1.5, "{file}: {seen:?}");
        if let Some(hz) = tone_hz {
            assert!(
                (seen.dominant_hz.unwrap_or(0.0) - hz).abs() < 5.0,
                "{file}: {seen:?}"
            );
        }
        let stats = stream.stats();
        assert!(stats.restarts == 0, "{file}: {stats:?}");
        // The input's own pictures were shown, not black: a still too.
        assert!(
            report.video.is_none() || (stats.frames_in > 0 && stats.slate_frames == 0),
            "{file}: {stats:?}"
        );
        stream.stop().await.unwrap();
    }
}

/// A `gst-launch-1.0` producer running beside the test, killed when dropped.
struct Producer(std::process::Child);

impl Producer {
    fn start(pipeline: &str) -> Self {
        Self(
            std::process::Command::new("gst-launch-1.0")
                .arg("-q")
                .args(pipeline.split_whitespace())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const LIVE_TS: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
    ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse ! queue ! mpegtsmux name=m alignment=7 \
    audiotestsrc is-live=true freq=770 ! audioconvert ! voaacenc ! aacparse ! queue ! m.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_and_srt_sources_become_contract_streams() {
    // HLS: a live playlist written by hlssink2 and served over HTTP.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let _hls = Producer::start(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse ! queue ! hlssink2 name=h \
         location={d}/seg%05d.ts playlist-location={d}/live.m3u8 target-duration=1 max-files=10 \
         audiotestsrc is-live=true freq=770 ! audioconvert ! voaacenc ! aacparse ! queue ! h.audio"
    ));
    let files = serve_dir(dir.path()).await;
    let playlist = dir.path().join("live.m3u8");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&playlist).map_or(true, |p| p.matches(".ts").count() < 2) {
        assert!(Instant::now() < deadline, "hlssink2 wrote no playlist");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SRT: a listener the engine calls.
    let port = closed_port();
    let _srt = Producer::start(&format!(
        "{LIVE_TS} m. ! srtsink uri=srt://127.0.0.1:{port}?mode=listener wait-for-connection=false"
    ));
    for input in [
        format!("{files}live.m3u8"),
        format!("srt://127.0.0.1:{port}"),
    ] {
        let spec = InputSpec::parse(&input).unwrap();
        let stream = LiveStream::start(
            spec,
            LiveSettings::new(Contract::new(Profile::P360)),
            &topologies(),
        )
        .unwrap();
        let (_server, url) = serve_live(&stream).await;
        let seen = observe_until(&url, 45, Duration::from_secs(25)).await;
        assert_eq!((seen.width, seen.height), (640, 360), "{input}: {seen:?}");
        assert!(
            (seen.dominant_hz.unwrap_or(0.0) - 770.0).abs() < 5.0,
            "{input}: {seen:?}"
        );
        stream.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_profile_stream_is_heard_by_a_late_reader() {
    let stream = LiveStream::start(
        InputSpec::parse("test:black+tone=440").unwrap(),
        LiveSettings::new(Contract::new(Profile::Audio)),
        &topologies(),
    )
    .unwrap();
    let (_server, url) = serve_live(&stream).await;
    let mut events = stream.events();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        *e == MediaEvent::FirstMedia
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tally = MediaTally::new(Instant::now());
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let observer = Observer::start(
        ObserveSpec::new(url, Pace::Realtime, None),
        tally.clone(),
        tx,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.snapshot().audio_ms < 1000 {
        assert!(Instant::now() < deadline, "{:?}", tally.snapshot());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = tally.snapshot();
    observer.stop().await;
    assert!((seen.dominant_hz.unwrap() - 440.0).abs() < 5.0, "{seen:?}");
    assert!(seen.first_media_ms.unwrap() < 2000, "{seen:?}");
    stream.stop().await.unwrap();
}
