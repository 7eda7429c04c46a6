//! Surround files written as the stereo contract MP4 (`push --mp4`) are as loud as ffmpeg's
//! own `-ac 2` downmix of the same file: what a user compares them with.

use std::path::{Path, PathBuf};

use crate::common::*;

fn callfeed() -> tokio::process::Command {
    callfeed_cli("callfeed-downmix-state")
}

/// `ffmpeg` writing `dir/name`.
fn make(dir: &Path, name: &str, args: &str) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&format!("{args} {}", path.display()));
    path
}

/// The mean volume of a file's audio as ffmpeg's `volumedetect` measures it, in dB.
fn mean_volume(path: &Path) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "info", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    log.lines()
        .find_map(|l| l.split("mean_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no volume for {path:?}: {log}"))
}

/// A file's audio channels as ffprobe reads them.
fn channels(path: &Path) -> u32 {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "stream=channels", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surround_is_downmixed_as_loud_as_ffmpeg_downmixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A 5.1 programme: a different tone in each of the six channels, as loud as each other
    // (dialogue in the centre, music and effects around it, a rumble in the LFE).
    let tones: String = [220, 330, 440, 55, 660, 770]
        .iter()
        .map(|f| format!(" -f lavfi -i sine=f={f}:d=3:sample_rate=48000"))
        .collect();
    let surround = format!("{tones} -filter_complex amerge=inputs=6,aformat=channel_layouts=5.1");
    let stereo = "-f lavfi -i sine=f=440:d=3:sample_rate=48000 -f lavfi -i sine=f=660:d=3:sample_rate=48000 \
                  -filter_complex amerge=inputs=2,aformat=channel_layouts=stereo";
    let cases = [
        make(d, "opus.mkv", &format!("{surround} -c:a libopus -b:a 256k")),
        make(d, "vorbis.ogg", &format!("{surround} -c:a libvorbis")),
        make(d, "eac3.mka", &format!("{surround} -c:a eac3")),
        make(d, "aac.m4a", &format!("{surround} -c:a aac")),
        // Stereo is left as it is: no downmix to be loud or quiet.
        make(d, "stereo.ogg", &format!("{stereo} -c:a libvorbis")),
    ];
    let mut measured = Vec::new();
    for file in &cases {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let ours = d.join(format!("{name}.callfeed.mp4"));
        let out = callfeed()
            .arg("push")
            .arg(file)
            .args(["--profile", "audio", "--mp4"])
            .arg(&ours)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert_eq!(channels(&ours), 2, "{name}");
        // ffmpeg's downmix of the same file, to the same codec.
        let reference = make(
            d,
            &format!("{name}.ffmpeg.m4a"),
            &format!("-i {} -ac 2 -c:a aac -b:a 128k", file.display()),
        );
        let (got, want) = (mean_volume(&ours), mean_volume(&reference));
        measured.push((name, got, want));
    }
    let report: Vec<String> = measured
        .iter()
        .map(|(name, got, want)| format!("{name}: callfeed {got:.1} dB, ffmpeg -ac 2 {want:.1} dB"))
        .collect();
    eprintln!("{}", report.join("\n"));
    for (name, got, want) in &measured {
        assert!(
            (got - want).abs() <= 1.0,
            "{name} is not as loud as ffmpeg's downmix:\n{}",
            report.join("\n")
        );
    }
}
