//! What `callfeed push --mp4` does to the user's files: the input is never destroyed, an
//! existing file is never overwritten without `--force`, an output is written whole or not
//! at all, and options it cannot honour are refused, naming what is wrong. And what
//! `callfeed announce` makes: the cached announcement, made once, its path printed.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::*;
use tokio::process::Command;

fn callfeed() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callfeed"));
    cmd.env_remove("CALLFEED_CONFIG").kill_on_drop(true);
    cmd
}

async fn push_mp4(input: &Path, out: &Path, extra: &[&str]) -> Output {
    callfeed()
        .arg("push")
        .arg(input)
        .arg("--mp4")
        .arg(out)
        .args(["--profile", "audio"])
        .args(extra)
        .output()
        .await
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Files in `dir` other than `keep`.
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/media-samples/tone-440hz-2s.ogg"
);

#[tokio::test]
async fn the_input_is_never_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("x.ogg");
    std::fs::copy(SAMPLE, &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    std::os::unix::fs::symlink(&input, dir.path().join("link.ogg")).unwrap();
    for out in [input.clone(), dir.path().join("link.ogg")] {
        for extra in [&[][..], &["--force"][..]] {
            let run = push_mp4(&input, &out, extra).await;
            assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
            assert!(
                stderr(&run).contains("destroy the input"),
                "{}",
                stderr(&run)
            );
            assert_eq!(
                std::fs::read(&input).unwrap(),
                before,
                "the input is intact"
            );
        }
    }
}

#[tokio::test]
async fn an_existing_output_is_replaced_only_with_force_and_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    std::fs::write(&out, b"the user's own file").unwrap();
    let run = push_mp4(Path::new(SAMPLE), &out, &[]).await;
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("--force"), "{}", stderr(&run));
    assert_eq!(std::fs::read(&out).unwrap(), b"the user's own file");
    let run = push_mp4(Path::new(SAMPLE), &out, &["--force"]).await;
    assert!(run.status.success(), "{}", stderr(&run));
    let written = std::fs::read(&out).unwrap();
    assert_eq!(&written[4..8], b"ftyp", "an MP4 replaced it");
    assert!(
        others(dir.path(), &["out.mp4"]).is_empty(),
        "no partial file is left: {:?}",
        others(dir.path(), &["out.mp4"])
    );
}

#[tokio::test]
async fn options_it_cannot_honour_are_refused_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder").join("out.mp4");
    let run = push_mp4(Path::new(SAMPLE), &missing, &[]).await;
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("no-such-folder") && stderr(&run).contains("does not exist"),
        "the output folder is named: {}",
        stderr(&run)
    );
    assert!(!stderr(&run).contains("input"), "{}", stderr(&run));
    let out = dir.path().join("out.mp4");
    for extra in [&["--loop", "3"][..], &["--start", "1"][..]] {
        let run = push_mp4(Path::new(SAMPLE), &out, extra).await;
        assert_eq!(run.status.code(), Some(2), "{extra:?}: {}", stderr(&run));
        assert!(
            stderr(&run).contains("--loop or --start"),
            "{}",
            stderr(&run)
        );
        assert!(!out.exists());
    }
}

#[tokio::test]
async fn a_file_with_nothing_in_it_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    // A valid 44-byte WAV header with no samples.
    let mut header = Vec::new();
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&36u32.to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&8000u32.to_le_bytes());
    header.extend_from_slice(&16000u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&0u32.to_le_bytes());
    std::fs::write(&empty, header).unwrap();
    let out = dir.path().join("out.mp4");
    let run = push_mp4(&empty, &out, &[]).await;
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("empty.wav") && err.contains("no samples or frames"),
        "{err}"
    );
    assert!(!out.exists(), "nothing was written");
}

#[tokio::test]
async fn an_interrupted_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough to be interrupted mid-transcode.
    let clip = Clip {
        seconds: 20,
        width: 640,
        height: 360,
        fps: 30,
        tone_hz: 440,
    }
    .write(dir.path(), "long.mp4");
    let out = dir.path().join("out.mp4");
    let mut child = callfeed()
        .arg("push")
        .arg(&clip)
        .arg("--mp4")
        .arg(&out)
        .args(["--profile", "360p"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt once the partial file exists: the transcode is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !others(dir.path(), &["long.mp4"])
        .iter()
        .any(|n| n.contains("partial"))
    {
        assert!(Instant::now() < deadline, "no transcode started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("it stops on Ctrl-C")
        .unwrap();
    assert!(!status.success());
    assert!(!out.exists(), "no output was left");
    assert!(
        others(dir.path(), &["long.mp4"]).is_empty(),
        "no partial file was left: {:?}",
        others(dir.path(), &["long.mp4"])
    );
}

async fn announce(input: &Path, cache: &Path, profile: &str) -> Output {
    callfeed()
        .arg("announce")
        .arg(input)
        .args(["--profile", profile])
        .env("XDG_CACHE_HOME", cache)
        .output()
        .await
        .unwrap()
}

/// Width, height and codec of each stream of `file`, as ffprobe reads it.
fn stream_shapes(file: &Path) -> String {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn announce_makes_the_announcement_once_and_prints_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = announce(Path::new(SAMPLE), &cache, "360p").await;
    assert!(run.status.success(), "{}", stderr(&run));
    let made = std::path::PathBuf::from(String::from_utf8_lossy(&run.stdout).trim());
    assert!(made.starts_with(&cache), "in the sessions' cache: {made:?}");
    // The contract: 360p H.264 with the tone as AAC at 48 kHz.
    assert_eq!(stream_shapes(&made), "h264,640,360\naac,48000");
    let first = std::fs::metadata(&made).unwrap().modified().unwrap();
    // Asked again, the same file is the answer, not a second transcode.
    let again = announce(Path::new(SAMPLE), &cache, "360p").await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        made.to_str().unwrap()
    );
    assert_eq!(std::fs::metadata(&made).unwrap().modified().unwrap(), first);

    // A file that already meets the contract is its own announcement.
    let conforming = dir.path().join("conforming.mp4");
    ffmpeg(&format!(
        "-f lavfi -i testsrc=s=640x360:r=30:d=2 -f lavfi -i sine=d=2:sample_rate=48000 \
         -pix_fmt yuv420p -c:v libx264 -profile:v main -bf 0 -g 30 -b:v 600k -c:a aac {}",
        conforming.display()
    ));
    let run = announce(&conforming, &cache, "360p").await;
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        conforming.to_str().unwrap()
    );
    assert!(
        stderr(&run).contains("already meets the 360p contract"),
        "{}",
        stderr(&run)
    );

    // Only a file makes an announcement; a URL is named as the problem.
    let run = announce(Path::new("https://cdn.example.com/a.mp4"), &cache, "360p").await;
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(stderr(&run).contains("a local file"), "{}", stderr(&run));
}
