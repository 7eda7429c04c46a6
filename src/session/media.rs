//! A session's media, made ready before anything rings: the input probed (under the
//! session's source guard), the plan chosen, the announcement transcoded or the live stream
//! started, and the URL published for the cloud to pull.

use std::time::Duration;

use super::SessionSpec;
use super::settings::DriverSettings;
use super::state::Stage;
use crate::media::contract::Contract;
use crate::media::input::InputSpec;
use crate::media::inspect::ProbeReport;
use crate::media::live::{LiveSettings, LiveStream, Loops};
use crate::media::topology::Topologies;
use crate::publish::relay::RelayLink;

pub(super) enum Media {
    /// A file the cloud plays itself; `expected` is how long all plays take.
    Announcement {
        expected: Option<Duration>,
        /// One play.
        duration: Option<Duration>,
    },
    Live(LiveStream),
    /// A feed's stream, shared with the other sessions on it: the session only holds it.
    Feed(crate::feed::FeedLease),
}

pub(super) struct Prepared {
    pub(super) media: Media,
    pub(super) url: String,
    pub(super) repeat_num: i32,
    /// The plan's name: announcement, passthrough, live or direct.
    pub(super) mode: &'static str,
    /// Why.
    pub(super) mode_reason: String,
    /// The push to the relay the cloud pulls `url` from, when the session has one.
    pub(super) relay: Option<RelayLink>,
    /// How long one play of the input lasts, when it is a file that says.
    pub(super) duration: Option<Duration>,
}

impl Prepared {
    /// Whether the session's media is a stream of its own that takes changes in place.
    pub(super) fn changes_in_place(&self) -> bool {
        matches!(&self.media, Media::Live(s) if s.takes_changes())
    }
}

/// Makes the media ready; `progress` gets the fraction done of a transcode (0..=1), and
/// `now_ms` tells the session's clock. An error names the stage that failed.
pub(super) async fn prepare(
    spec: &SessionSpec,
    session_id: &str,
    settings: &DriverSettings,
    topologies: &Topologies,
    progress: &(dyn Fn(f64) + Sync),
    now_ms: &(dyn Fn() -> u64 + Sync),
) -> Result<Prepared, (Stage, String)> {
    let failed = |reason: String| (Stage::Prepare, reason);
    use crate::media::plan::{Mode, PlanOptions, plan};
    let spoken = words_spoken(spec, settings).await.map_err(failed)?;
    let spec = &spoken;
    if let InputSpec::Feed(id) = &spec.input {
        return on_feed(id, spec, session_id, settings).await;
    }
    let input = spec.input.clone();
    let contract = Contract::new(spec.profile);
    let report = probe(spec, settings, contract).await.map_err(failed)?;
    let publisher = &settings.publisher;
    let plan = plan(
        &input,
        report.as_ref(),
        PlanOptions {
            live: spec.live || spec.start.is_some(),
            start: spec.start,
            // Through a relay a file is pushed as a stream: the node serves nothing.
            file_output: spec.relay.is_none(),
            direct: spec.direct,
        },
    );
    tracing::info!(mode = plan.name(), reason = %plan.reason, "media plan");
    let mode = plan.name();
    let mode_reason = plan.reason.clone();
    let mut relay = None;
    let (media, url, repeat_num) = match plan.mode {
        Mode::Announcement { path, .. } => {
            let report = report.as_ref().expect("an announcement was probed");
            announcement(
                &path, report, spec, settings, topologies, contract, progress,
            )
            .await
            .map_err(failed)?
        }
        Mode::Direct { url } => {
            // The cloud plays it, and the task's end is the media's end: a URL's length is
            // its header's claim (an interrupted upload declares more than it holds), and
            // starting the task again would replay it from the start. Its length only
            // tells where the play is.
            let duration = report
                .as_ref()
                .and_then(|r| r.duration_ms)
                .map(Duration::from_millis);
            let expected = spec.repeat.map(|_| Duration::ZERO);
            let repeat_num = spec.repeat.map_or(-1, |n| n as i32);
            (Media::Announcement { expected, duration }, url, repeat_num)
        }
        // The relay takes the stream: a test push first, so a refused key fails here.
        mode if spec.relay.is_some() => {
            let target = spec.relay.as_ref().expect("checked");
            let endpoints = crate::publish::relay::check(target, session_id, spec.lasts_up_to())
                .await
                .map_err(|reason| (Stage::Relay, reason))?;
            let checked_ms = now_ms();
            let stream = start_live(mode, spec, report.as_ref(), topologies).map_err(failed)?;
            let link = RelayLink::new(endpoints, stream.hub(), checked_ms);
            let url = link.play_url().to_owned();
            relay = Some(link);
            (Media::Live(stream), url, -1)
        }
        mode => {
            let stream = start_live(mode, spec, report.as_ref(), topologies).map_err(failed)?;
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
        relay,
        duration: report
            .as_ref()
            .and_then(|r| r.duration_ms)
            .map(Duration::from_millis),
    })
}

/// `spec` with its spoken words (`tts:`), if it has any, made into the file they are spoken
/// in: once, in the cache, for every session that says the same.
pub(super) async fn words_spoken(
    spec: &SessionSpec,
    settings: &DriverSettings,
) -> Result<SessionSpec, String> {
    let InputSpec::Speech(words) = &spec.input else {
        return Ok(spec.clone());
    };
    let engine = crate::media::speech::EspeakNg;
    let file = crate::media::speech::spoken_file(words, &settings.cache_dir, &engine)
        .await
        .map_err(|e| e.to_string())?;
    let mut spoken = spec.clone();
    spoken.input = InputSpec::File(file);
    // The cache's own file: no client's path to hold to a media root.
    spoken.source_guard = None;
    Ok(spoken)
}

/// A feed's stream taken for the session: once it is live, when the session rings only
/// then. Published as it is; the feed made it to its own profile.
async fn on_feed(
    id: &str,
    spec: &SessionSpec,
    session_id: &str,
    settings: &DriverSettings,
) -> Result<Prepared, (Stage, String)> {
    let feeds = settings.feeds.as_ref().ok_or_else(|| {
        (
            Stage::Prepare,
            "feeds run in `callfeed serve`: this process has none".to_string(),
        )
    })?;
    let lease = feeds
        .lease(id, session_id, spec.stays_after_feed)
        .map_err(|e| (Stage::Prepare, e.to_string()))?;
    if let Some(within) = spec.ring_when_live {
        lease.live(within).await.map_err(|e| (Stage::Media, e))?;
    }
    let url = settings.publisher.publish_live(lease.hub(), None);
    Ok(Prepared {
        media: Media::Feed(lease),
        url,
        repeat_num: -1,
        mode: "feed",
        mode_reason: format!("feed {id}: encoded once for every call on it"),
        relay: None,
        duration: None,
    })
}

/// The input probed, when it is something to probe: a file, a playlist, or a URL this node
/// is to read.
pub(super) async fn probe(
    spec: &SessionSpec,
    settings: &DriverSettings,
    contract: Contract,
) -> Result<Option<ProbeReport>, String> {
    let unprobed = spec.direct == crate::media::plan::Direct::Always;
    Ok(match &spec.input {
        // Handed over unprobed: the cloud may reach what this node cannot.
        InputSpec::Url(_) if unprobed => None,
        InputSpec::File(_) | InputSpec::Playlist(_) | InputSpec::Url(_) => {
            let probe_input = spec.input.clone();
            let options = crate::media::inspect::ProbeOptions {
                guard: spec.source_guard.clone(),
                audio_track: spec.audio_track.clone(),
                judge_direct: spec.direct == crate::media::plan::Direct::Auto,
                bounds: settings.input_bounds,
            };
            Some(
                tokio::task::spawn_blocking(move || {
                    crate::media::inspect::probe_with(&probe_input, contract, &options)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?,
            )
        }
        _ => None,
    })
}

/// The announcement made ready and published: the file at `path` transcoded to the
/// contract (or taken as it is), its URL, and how long its plays take.
async fn announcement(
    path: &std::path::Path,
    report: &ProbeReport,
    spec: &SessionSpec,
    settings: &DriverSettings,
    topologies: &Topologies,
    contract: Contract,
    progress: &(dyn Fn(f64) + Sync),
) -> Result<(Media, String, i32), String> {
    // An API client's file was admitted by its canonical path: one that no longer
    // is (a folder swapped for a link since) leads out of the media root.
    if spec
        .source_guard
        .as_ref()
        .is_some_and(crate::media::policy::SourceGuard::is_restricted)
        && std::fs::canonicalize(path).ok().as_deref() != Some(path)
    {
        return Err(format!(
            "input {}: the file changed since it was admitted (a link now stands in its path)",
            path.display()
        ));
    }
    let file = crate::media::announce::prepare(
        path,
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
    let url = settings.publisher.publish_file(file, None);
    let duration = report.duration_ms.map(Duration::from_millis);
    Ok((Media::Announcement { expected, duration }, url, repeat_num))
}

/// Starts the live stream (or passthrough) the plan chose.
fn start_live(
    mode: crate::media::plan::Mode,
    spec: &SessionSpec,
    report: Option<&ProbeReport>,
    topologies: &Topologies,
) -> Result<LiveStream, String> {
    let mut live = LiveSettings::new(Contract::new(spec.profile));
    live.loops = match spec.repeat {
        Some(n) => Loops::Times(n.max(1)),
        None => Loops::Forever,
    };
    live.follow(report, None);
    live.start = spec.start;
    live.source_guard = spec.source_guard.clone();
    // A file streamed live starts when it is first pulled (by the cloud, or by the push to
    // a relay just before the stream is bound), so the callee hears it from its start; live
    // sources run as they come.
    live.hold_until_pulled = spec.input.is_replayable();
    crate::media::stream::start(&mode, &spec.input, live, topologies).map_err(|e| e.to_string())
}
