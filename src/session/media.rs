//! A session's media, made ready before anything rings: the input probed (under the
//! session's source guard), the plan chosen, the announcement transcoded or the live stream
//! started, and the URL published for the cloud to pull.

use std::time::Duration;

use super::SessionSpec;
use super::driver::DriverSettings;
use crate::media::contract::Contract;
use crate::media::input::InputSpec;
use crate::media::live::{LiveSettings, LiveStream, Loops};
use crate::media::topology::Topologies;

pub(super) enum Media {
    /// A file the cloud plays itself; `expected` is how long all plays take.
    Announcement {
        expected: Option<Duration>,
        /// One play.
        duration: Option<Duration>,
    },
    Live(LiveStream),
}

pub(super) struct Prepared {
    pub(super) media: Media,
    pub(super) url: String,
    pub(super) repeat_num: i32,
    /// The plan's name: announcement, passthrough, live or direct.
    pub(super) mode: &'static str,
    /// Why.
    pub(super) mode_reason: String,
}

/// Makes the media ready; `progress` gets the fraction done of a transcode (0..=1).
pub(super) async fn prepare(
    spec: &SessionSpec,
    settings: &DriverSettings,
    topologies: &Topologies,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<Prepared, String> {
    use crate::media::plan::{Mode, PlanOptions, plan};
    let input = spec.input.clone();
    let contract = Contract::new(spec.profile);
    let unprobed = spec.direct == crate::media::plan::Direct::Always;
    let report = match &input {
        // Handed over unprobed: the cloud may reach what this node cannot.
        InputSpec::Url(_) if unprobed => None,
        InputSpec::File(_) | InputSpec::Playlist(_) | InputSpec::Url(_) => {
            let probe_input = input.clone();
            let options = crate::media::probe::ProbeOptions {
                guard: spec.source_guard.clone(),
                audio_track: spec.audio_track.clone(),
                judge_direct: spec.direct == crate::media::plan::Direct::Auto,
            };
            Some(
                tokio::task::spawn_blocking(move || {
                    crate::media::probe::probe_with(&probe_input, contract, &options)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
            )
        }
        _ => None,
    };
    let publisher = &settings.publisher;
    let plan = plan(
        &input,
        report.as_ref(),
        PlanOptions {
            live: spec.live,
            start: None,
            file_output: true,
            direct: spec.direct,
        },
    );
    tracing::info!(mode = plan.name(), reason = %plan.reason, "media plan");
    let mode = plan.name();
    let mode_reason = plan.reason.clone();
    let (media, url, repeat_num) = match plan.mode {
        Mode::Announcement { path, .. } => {
            let report = report.as_ref().expect("an announcement was probed");
            let file = crate::media::announce::prepare(
                &path,
                report,
                None,
                contract,
                topologies,
                &settings.cache_dir,
                progress,
            )
            .await
            .map_err(|e| e.to_string())?;
            let expected = report
                .duration_ms
                .zip(spec.repeat)
                .map(|(ms, n)| Duration::from_millis(ms * u64::from(n)));
            let repeat_num = spec.repeat.map_or(-1, |n| n as i32);
            let url = publisher.publish_file(file, None);
            let duration = report.duration_ms.map(Duration::from_millis);
            (Media::Announcement { expected, duration }, url, repeat_num)
        }
        Mode::Direct { url } => {
            // The cloud plays it; a probed file's length says when it is done, and with no
            // length known the task's end is the media's end.
            let duration = report
                .as_ref()
                .and_then(|r| r.duration_ms)
                .map(Duration::from_millis);
            let expected = match (duration, spec.repeat) {
                (Some(one), Some(n)) => Some(one * n),
                (None, _) => Some(Duration::ZERO),
                (Some(_), None) => None,
            };
            let repeat_num = spec.repeat.map_or(-1, |n| n as i32);
            (Media::Announcement { expected, duration }, url, repeat_num)
        }
        mode => {
            let mut live = LiveSettings::new(contract);
            live.loops = match spec.repeat {
                Some(n) => Loops::Times(n.max(1)),
                None => Loops::Forever,
            };
            live.follow(report.as_ref(), None);
            live.source_guard = spec.source_guard.clone();
            // A file streamed live starts when the cloud first pulls it, so the callee
            // hears it from its start; live sources run as they come.
            live.hold_until_pulled = input.is_replayable();
            let stream = match mode {
                Mode::Passthrough { path, container } => {
                    LiveStream::start_passthrough(path, &container, live)
                }
                _ => LiveStream::start(input.clone(), live, topologies),
            }
            .map_err(|e| e.to_string())?;
            let url = publisher.publish_live(stream.hub(), None);
            (Media::Live(stream), url, -1)
        }
    };
    Ok(Prepared {
        media,
        url,
        repeat_num,
        mode,
        mode_reason,
    })
}
