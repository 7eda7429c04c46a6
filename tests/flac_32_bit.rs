//! A FLAC file with 32-bit samples (FLAC 1.4 writes them; GStreamer 1.22 decodes none) is
//! refused at probe with what it holds and how to convert it, not "No valid frames decoded";
//! the same tone at 24 bits plays.

use std::path::Path;

use crate::common::*;

fn callfeed() -> tokio::process::Command {
    callfeed_cli("callfeed-flac-32-bit-state")
}

/// CRC-8 (polynomial 0x07) of a FLAC frame header.
fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |crc, b| {
        (0..8).fold(
            crc ^ b,
            |c, _| if c & 0x80 != 0 { c << 1 ^ 0x07 } else { c << 1 },
        )
    })
}

/// CRC-16 (polynomial 0x8005) of a whole FLAC frame.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, b| {
        (0..8).fold(crc ^ u16::from(*b) << 8, |c, _| {
            if c & 0x8000 != 0 {
                c << 1 ^ 0x8005
            } else {
                c << 1
            }
        })
    })
}

/// Writes `seconds` of a 440 Hz tone as a mono 48 kHz FLAC file with 32-bit samples, in
/// verbatim subframes (ffmpeg 5.1 cannot write 32-bit FLAC; `flac -t` passes this file).
fn write_32_bit_flac(path: &Path, seconds: u32) {
    const RATE: u32 = 48_000;
    const BLOCK: usize = 4096;
    let total = (RATE * seconds) as usize;
    let samples: Vec<i32> = (0..total)
        .map(|i| {
            let phase = 2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(RATE);
            (phase.sin() * 0.25 * f64::from(i32::MAX)) as i32
        })
        .collect();
    let mut out = b"fLaC".to_vec();
    // The last metadata block, STREAMINFO, 34 bytes: block sizes, frame sizes unknown,
    // then rate (20 bits), channels - 1 (3), bits - 1 (5), total samples (36); no MD5.
    out.extend([0x80, 0, 0, 34]);
    out.extend((BLOCK as u16).to_be_bytes());
    out.extend((BLOCK as u16).to_be_bytes());
    out.extend([0; 6]);
    let packed = u64::from(RATE) << 44 | 31 << 36 | total as u64;
    out.extend(packed.to_be_bytes());
    out.extend([0; 16]);
    for (number, block) in samples.chunks(BLOCK).enumerate() {
        // Fixed blocking; 4096 samples (code 12) or the count given after the header
        // (code 7); 48 kHz (code 10); mono; 32 bits (code 7); the frame number (< 128).
        let code = if block.len() == BLOCK { 12 } else { 7 };
        let mut frame = vec![0xff, 0xf8, code << 4 | 10, 7 << 1, number as u8];
        if code == 7 {
            frame.extend((block.len() as u16 - 1).to_be_bytes());
        }
        frame.push(crc8(&frame));
        // One verbatim subframe.
        frame.push(0x02);
        frame.extend(block.iter().flat_map(|s| s.to_be_bytes()));
        let crc = crc16(&frame);
        frame.extend(crc.to_be_bytes());
        out.extend(frame);
    }
    std::fs::write(path, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_32_bit_flac_is_named_and_refused_at_probe() {
    let dir = tempfile::tempdir().unwrap();
    let flac = dir.path().join("studio master.flac");
    write_32_bit_flac(&flac, 2);

    let out = callfeed().arg("probe").arg(&flac).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("32-bit samples"), "{err}");
    assert!(err.contains("convert it to 24-bit"), "{err}");
    // The command to run names the file, quoted for the shell.
    assert!(
        err.contains(&format!("ffmpeg -i '{}'", flac.display())),
        "{err}"
    );

    // Nothing is written from it either.
    let mp4 = dir.path().join("out.mp4");
    let out = callfeed()
        .arg("push")
        .arg(&flac)
        .args(["--profile", "audio", "--mp4"])
        .arg(&mp4)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("32-bit samples"), "{err}");
    assert!(!mp4.exists());

    // The same tone at 24 bits, as the message suggests, plays.
    let converted = dir.path().join("studio-master-24bit.flac");
    ffmpeg(&format!(
        "-f lavfi -i sine=f=440:d=2:sample_rate=48000 -c:a flac -sample_fmt s32 -bits_per_raw_sample 24 {}",
        converted.display()
    ));
    let out = callfeed()
        .arg("probe")
        .arg(&converted)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}
