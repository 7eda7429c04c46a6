//! What every figure runs against: the inputs made once per run, a local nginx-rtmp, and the
//! two tools' command lines, written as templates in the figure table.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const CALLFEED: &str = env!("CARGO_BIN_EXE_callfeed");
/// The ffmpeg command a user would write for a live push of the 720p profile, given what
/// callfeed's encoder is given: the same preset, bitrate, 1 s GOP, one x264 thread, and AAC
/// at 48 kHz stereo.
const FFMPEG_LIVE: &str = "-vf scale=1280:720 -r 30 -c:v libx264 -preset veryfast -tune zerolatency -b:v 2M -maxrate 2M -bufsize 2M -g 30 -bf 0 -threads 1 -c:a aac -ar 48000 -ac 2 -b:a 128k -f flv";
/// ffmpeg's own moving 720p30 test pattern and a 440 Hz tone.
const FFMPEG_TEST_SOURCE: &str =
    "-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000";

/// The two tools every comparison runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    Callfeed,
    Ffmpeg,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh stream name, so no two runs share an nginx stream.
pub(crate) fn stream_name(prefix: &str) -> String {
    format!("{prefix}{}", rand::random::<u32>())
}

pub(crate) struct Nginx {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = dir.path().display();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log {p}/error.log warn;
events {{ worker_connections 1024; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; }} }} }}"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .args(["-c", &format!("{p}/nginx.conf"), "-p", &p.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx with the RTMP module (make setup)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            child,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The inputs, callfeed's cache and nginx, shared by every figure of a run.
pub(crate) struct Bench {
    pub nginx: Nginx,
    pub cache: PathBuf,
    /// The inputs' folder, as a string for command lines.
    pub dir: String,
    _work: tempfile::TempDir,
}

impl Bench {
    /// Makes the inputs (the same for both tools) and starts nginx.
    pub(crate) fn prepare() -> Self {
        let work = tempfile::tempdir().unwrap();
        let w = work.path().display().to_string();
        assert!(
            !w.contains(char::is_whitespace),
            "the command templates split on whitespace: {w}"
        );
        let cache = work.path().join("cache");
        eprintln!("preparing inputs");
        gst(&format!(
            "videotestsrc num-buffers=600 pattern=ball ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
             ! x264enc speed-preset=veryfast bframes=0 key-int-max=30 ! video/x-h264,profile=constrained-baseline ! h264parse \
             ! queue ! mp4mux faststart=true name=m ! filesink location={w}/clip720.mp4 \
             audiotestsrc num-buffers=940 samplesperbuffer=1024 freq=440 ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! voaacenc ! aacparse ! queue ! m."
        ));
        gst(&format!(
            "audiotestsrc num-buffers=500 samplesperbuffer=960 freq=440 ! audio/x-raw,rate=48000,channels=2 ! wavenc ! filesink location={w}/announcement.wav"
        ));
        // What users have: a detailed moving picture (not a test pattern, which flatters
        // decoders and encoders alike) as a camera or phone writes it, 1080p H.264 High with
        // B-frames and AAC at 44.1 kHz; the same picture at 720p as a hardware encoder writes
        // it (Main, no B-frames: passthrough material); and a 44.1 kHz mono mp3 voice track.
        ffmpeg(&format!(
            "-f lavfi -i mandelbrot=size=1920x1080:rate=30 -f lavfi -i sine=frequency=330:sample_rate=44100 -t 10 \
             -pix_fmt yuv420p -c:v libx264 -preset veryfast -profile:v high -bf 2 -g 60 -b:v 6M \
             -c:a aac -ac 2 -b:a 128k -movflags +faststart {w}/real1080high.mp4"
        ));
        ffmpeg(&format!(
            "-f lavfi -i mandelbrot=size=1280x720:rate=30 -f lavfi -i sine=frequency=330:sample_rate=48000 -t 10 \
             -pix_fmt yuv420p -c:v libx264 -preset veryfast -profile:v main -bf 0 -g 30 -b:v 1800k -maxrate 2M -bufsize 2M \
             -c:a aac -ac 2 -ar 48000 -b:a 128k -movflags +faststart {w}/main720.mp4"
        ));
        ffmpeg(&format!(
            "-f lavfi -i sine=frequency=440:sample_rate=44100:duration=10 -ac 1 -c:a libmp3lame -b:a 96k {w}/voice.mp3"
        ));
        Self {
            nginx: Nginx::start(),
            cache,
            dir: w,
            _work: work,
        }
    }

    /// The announcement both tools push in the audio and fan-out figures.
    pub(crate) fn wav(&self) -> String {
        format!("{}/announcement.wav", self.dir)
    }

    /// The 1080p H.264 High clip with B-frames.
    pub(crate) fn real_clip(&self) -> String {
        format!("{}/real1080high.mp4", self.dir)
    }

    /// The command line a template stands for, with `url` where it says `{url}`. Placeholders
    /// are whole words: `{clip}` (H.264 constrained baseline + AAC MP4), `{real}` (1080p H.264 High with B-frames of a
    /// detailed moving picture, AAC 44.1 kHz), `{main}` (720p H.264 Main without B-frames,
    /// AAC 48 kHz), `{wav}`, `{mp3}` (44.1 kHz mono), `{url}`, and ffmpeg's `{ffmpeg_live}`
    /// (the encoder and FLV options) and `{ffmpeg_test_source}` (its own 720p30 test pattern
    /// and 440 Hz tone).
    pub(crate) fn args(&self, template: &str, url: &str) -> Vec<String> {
        let mut args = Vec::new();
        for word in template.split_whitespace() {
            match word {
                "{clip}" => args.push(format!("{}/clip720.mp4", self.dir)),
                "{wav}" => args.push(self.wav()),
                "{real}" => args.push(self.real_clip()),
                "{main}" => args.push(format!("{}/main720.mp4", self.dir)),
                "{mp3}" => args.push(format!("{}/voice.mp3", self.dir)),
                "{url}" => args.push(url.to_owned()),
                "{ffmpeg_live}" => args.extend(FFMPEG_LIVE.split_whitespace().map(String::from)),
                "{ffmpeg_test_source}" => {
                    args.extend(FFMPEG_TEST_SOURCE.split_whitespace().map(String::from))
                }
                _ => {
                    assert!(!word.contains('{'), "unknown placeholder in {template}");
                    args.push(word.to_owned())
                }
            }
        }
        args
    }

    /// `tool` started as `template` says, for the stream at `url`.
    pub(crate) fn command(&self, tool: Tool, template: &str, url: &str) -> Command {
        let args = self.args(template, url);
        match tool {
            Tool::Callfeed => self.callfeed(args),
            Tool::Ffmpeg => {
                let mut c = Command::new("ffmpeg");
                c.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
                    .args(args);
                c
            }
        }
    }

    /// callfeed with these arguments, its cache in the run's folder and no config file.
    pub(crate) fn callfeed<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
    ) -> Command {
        let mut c = Command::new(CALLFEED);
        c.args(args)
            .env("XDG_CACHE_HOME", &self.cache)
            .env_remove("CALLFEED_CONFIG");
        c
    }
}

fn gst(pipeline: &str) {
    assert!(
        Command::new("gst-launch-1.0")
            .args(["-q", "-e"])
            .args(pipeline.split_whitespace())
            .status()
            .unwrap()
            .success(),
        "{pipeline}"
    );
}

fn ffmpeg(args: &str) {
    assert!(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args.split_whitespace())
            .status()
            .unwrap()
            .success(),
        "ffmpeg {args}"
    );
}
