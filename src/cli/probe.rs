//! `callfeed probe`: what an input is, whether it can pass through untouched, and the
//! output contract it gets otherwise. Nothing is played.

use std::process::ExitCode;

use clap::Args;

use crate::media::contract::{Contract, Profile};
use crate::media::input::InputSpec;

#[derive(Args)]
pub(super) struct ProbeArgs {
    /// File, URL, playlist:, test: or device (see the README's input table).
    input: String,
    /// The output profile to judge it against.
    #[arg(long, default_value = "720p", value_parser = super::args::profile_values())]
    profile: Profile,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// A file's audio track: its number as `callfeed probe` lists them (0 is the first) or
    /// its language code (`en`, `eng`); the first when not given.
    #[arg(long, value_name = "N|LANG")]
    audio_track: Option<crate::media::inspect::tracks::AudioTrack>,
    #[command(flatten)]
    input_size: super::args::InputSizeArgs,
}

pub(super) async fn run(
    config: &crate::config::Config,
    args: ProbeArgs,
) -> anyhow::Result<ExitCode> {
    let spec = InputSpec::parse(&args.input)?;
    // A source input is probed by building it: a custom: one without its topology, or one
    // that does not take its argument, is named here.
    spec.check_sources(&crate::media::topology::Topologies::load(
        &config.pipelines,
    )?)?;
    let contract = Contract::new(args.profile);
    let probed = spec.clone();
    let options = crate::media::inspect::ProbeOptions {
        audio_track: args.audio_track.clone().unwrap_or_default(),
        // The plan shown is a session's, which hands a URL over when it can.
        judge_direct: true,
        bounds: args.input_size.into(),
        ..Default::default()
    };
    let report = tokio::task::spawn_blocking(move || {
        crate::media::inspect::probe_with(&probed, contract, &options)
    })
    .await??;
    // What a session would do with it (push decides the same way for its outputs).
    let plan = crate::media::plan::plan(
        &spec,
        Some(&report),
        crate::media::plan::PlanOptions {
            file_output: true,
            ..Default::default()
        },
    );
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["plan"] = serde_json::to_value(&plan)?;
        println!("{}", serde_json::to_string(&json)?);
    } else {
        println!("input       {} ({})", report.input, report.kind);
        if let Some(c) = &report.container {
            println!("container   {}", crate::media::inspect::container_label(c));
        }
        if let Some(d) = report.duration_ms {
            let declared = report
                .declared_duration_ms
                .map(|h| format!(" measured (its header declares {:.3} s)", h as f64 / 1000.0))
                .unwrap_or_default();
            println!("duration    {:.3} s{declared}", d as f64 / 1000.0);
        }
        if let Some(start) = report.start_ms {
            println!(
                "starts at   {:.3} s (its first sample: played from there)",
                start as f64 / 1000.0
            );
        }
        if let Some(v) = &report.video {
            println!(
                "video       {} {} {}x{} @ {:.2} fps{}{}",
                v.codec,
                v.profile.as_deref().unwrap_or(""),
                v.width,
                v.height,
                v.fps,
                if v.still_image { " (still image)" } else { "" },
                v.orientation
                    .as_deref()
                    .map(|o| format!(", orientation {o}"))
                    .unwrap_or_default()
            );
        }
        if let Some(a) = &report.audio {
            println!("audio       {} {} Hz, {} ch", a.codec, a.rate, a.channels);
        }
        if report.tracks.len() > 1 {
            for t in &report.tracks {
                println!(
                    "track       {} {} {}{}{}",
                    t.kind,
                    t.index,
                    t.codec,
                    t.language
                        .as_deref()
                        .map(|l| format!(" ({l})"))
                        .unwrap_or_default(),
                    match (t.chosen, t.kind) {
                        (true, _) => "  <- played",
                        (false, "subtitle" | "data") =>
                            "  (ignored: only audio and video are played)",
                        (false, "picture") => "  (cover art: shown only when there is no video)",
                        (false, _) => "",
                    }
                );
            }
        }
        if let Some(c) = &report.cover_art {
            println!("cover art   {} ({} bytes)", c.format, c.bytes);
        }
        println!("contract    {}", args.profile);
        // One verdict: for a URL it is whether the cloud takes it as it is.
        match &report.direct {
            Some((pullable, why)) => {
                println!(
                    "direct      {} — {why}",
                    if *pullable { "yes" } else { "no" }
                )
            }
            None => println!(
                "passthrough {} — {}",
                if report.passthrough { "yes" } else { "no" },
                report.reason
            ),
        }
        println!("plan        {} — {}", plan.name(), plan.reason);
    }
    Ok(ExitCode::SUCCESS)
}
