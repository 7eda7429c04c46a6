//! `callfeed voices`: the voices `tts:` inputs may name (`?voice=`), from the node's speech
//! engine (eSpeak NG).

use std::process::ExitCode;

use clap::Args;

use super::output::print_json;
use crate::media::speech::{EspeakNg, SpeechEngine};

#[derive(Args)]
pub(super) struct VoicesArgs {
    /// Print them as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(args: VoicesArgs) -> anyhow::Result<ExitCode> {
    let voices = EspeakNg.voices().await?;
    if args.json {
        print_json(&serde_json::to_value(&voices)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // A reader that stops early (`| head`) is not an error.
    let _ = table(&voices);
    Ok(ExitCode::SUCCESS)
}

fn table(voices: &[crate::media::speech::Voice]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<24} {:<12} gender", "voice (?voice=)", "language")?;
    for voice in voices {
        writeln!(
            out,
            "{:<24} {:<12} {}",
            voice.name, voice.language, voice.gender
        )?;
    }
    writeln!(
        out,
        "\n{} voices. Without ?voice= (or ?lang=), eSpeak NG's default voice and rate speak.",
        voices.len()
    )
}
