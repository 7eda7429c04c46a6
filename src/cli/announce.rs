//! `callfeed announce`: a file made into the contract's announcement MP4 once, in the cache
//! every session uses, and its path printed, so it can be put on your own storage (a CDN)
//! and played from there. A file that already meets the contract is its own announcement.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::progress;
use crate::cloud::InvalidArgument;
use crate::config::Config;
use crate::media::contract::{Contract, Profile};
use crate::media::input::InputSpec;

#[derive(Args)]
pub(super) struct AnnounceArgs {
    /// The file (audio, video or a picture) to make the announcement of.
    input: String,
    /// The output profile.
    #[arg(long, default_value = "720p", value_parser = super::args::profile_values())]
    profile: Profile,
    /// Still image shown for an audio-only file in a video profile, instead of its cover art;
    /// black otherwise.
    #[arg(long, value_name = "IMAGE")]
    slate: Option<PathBuf>,
    /// A file's audio track: its number as `callfeed probe` lists them (0 is the first) or
    /// its language code (`en`, `eng`); the first when not given.
    #[arg(long, value_name = "N|LANG")]
    audio_track: Option<crate::media::inspect::tracks::AudioTrack>,
    #[command(flatten)]
    input_size: super::args::InputSizeArgs,
}

pub(super) async fn run(config: &Config, args: AnnounceArgs) -> anyhow::Result<ExitCode> {
    let spec = InputSpec::parse(&args.input)?;
    let InputSpec::File(path) = &spec else {
        anyhow::bail!(InvalidArgument::new(
            "input",
            &args.input,
            "a local file (an announcement is made from a file; URLs and live sources are pushed with `callfeed push`)"
        ));
    };
    let contract = Contract::new(args.profile);
    let topologies = crate::media::topology::Topologies::load(&config.pipelines)?;
    let options = crate::media::inspect::ProbeOptions {
        audio_track: args.audio_track.clone().unwrap_or_default(),
        bounds: args.input_size.into(),
        ..Default::default()
    };
    let probed = spec.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::media::inspect::probe_with(&probed, contract, &options)
    })
    .await??;
    if report.passthrough {
        eprintln!(
            "{} already meets the {} contract",
            path.display(),
            args.profile
        );
    }
    let cache = crate::media::announce::default_cache_dir();
    let announcement = progress::transcoding(
        format!("no announcement was made of {}", path.display()),
        async |progress| {
            crate::media::announce::prepare(
                path,
                &report,
                args.slate.as_deref(),
                contract,
                &topologies,
                &cache,
                progress,
            )
            .await
        },
    )
    .await?;
    println!("{}", announcement.display());
    Ok(ExitCode::SUCCESS)
}
