//! `callfeed load`: many full sessions (call, ingest, media, teardown) at a given rate, to
//! size a deployment or load-test an app, with per-stage latency percentiles: run in this
//! process, or through the HTTP API of the nodes of a deployment ([`api`]).

pub mod api;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::media::topology::Topologies;
use crate::session::driver::{self, Controls, DriverSettings, Report, Status};
use crate::session::state::Outcome;
use crate::session::{CloudOps, SessionRequest, SessionSpec};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub calls: u32,
    /// Sessions started per second.
    pub rate: f64,
    /// Sessions running at once, at most.
    pub concurrency: u32,
    /// Each session's request; callee, room and robot are made unique per session.
    pub template: SessionRequest,
    /// The relay sessions push to when the template names none (`[relay]`).
    pub relay: Option<crate::publish::relay::Relay>,
}

/// Percentiles of one stage, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(mut values: Vec<u64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let at =
            |q: f64| values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1];
        Self {
            count: values.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: *values.last().expect("not empty"),
        }
    }
}

/// The outcome of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub calls: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Sessions by result (completed, rejected, not_answered, failed, ...).
    pub results: BTreeMap<String, u32>,
    /// Failures by the cloud's error code (`transport` when there was none).
    pub failures_by_code: BTreeMap<String, u32>,
    pub wall_seconds: f64,
    pub sessions_per_second: f64,
    pub ring_ms: Percentiles,
    pub answer_ms: Percentiles,
    pub ingest_ms: Percentiles,
    /// From the callee answering to the first decoded frame in the room (emulator only).
    pub answer_to_first_media_ms: Option<Percentiles>,
    /// Whole sessions, from start to torn down.
    pub session_ms: Percentiles,
}

/// Live counters for a progress display.
#[derive(Debug, Clone, Default)]
pub struct LoadProgress {
    pub started: u32,
    pub finished: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub running: u32,
}

/// Finds, for a finished session, the ms from StartStreamIngest to the first decoded frame in
/// its room, where that is known (the emulator's observer).
pub type FirstMediaLookup = Arc<dyn Fn(&Report) -> Option<u64> + Send + Sync>;

/// What one session came to, whether it ran in this process or on a node of a deployment.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// `completed`, `failed`, `rejected`...
    pub result: String,
    /// The cloud's error code (or the API's refusal) when it failed.
    pub error_code: Option<String>,
    pub timings: driver::Timings,
    /// From StartStreamIngest to the first decoded frame in the room, where known.
    pub first_media_ms: Option<u64>,
}

impl Finished {
    fn from_report(r: &Report, first_media: &FirstMediaLookup) -> Self {
        Self {
            result: r.outcome.name().to_owned(),
            error_code: r.error_code.clone(),
            timings: r.timings.clone(),
            first_media_ms: first_media(r),
        }
    }

    fn completed(&self) -> bool {
        self.result == "completed"
    }
}

/// Counts a finished session in the progress shown.
fn count_finished(progress: &watch::Sender<LoadProgress>, ok: bool) {
    progress.send_modify(|p| {
        p.running = p.running.saturating_sub(1);
        p.finished += 1;
        if ok {
            p.succeeded += 1;
        } else {
            p.failed += 1;
        }
    });
}

/// Runs the plan. `first_media` maps a finished session's report to the ms from StartStreamIngest
/// to the first decoded frame in its room, where that is known (the emulator's observer).
pub async fn run<C: CloudOps + 'static>(
    plan: LoadPlan,
    cloud: Arc<C>,
    settings: DriverSettings,
    topologies: Topologies,
    progress: watch::Sender<LoadProgress>,
    mut stop: watch::Receiver<bool>,
    first_media: FirstMediaLookup,
) -> LoadReport {
    let started = Instant::now();
    let (stop_all, _) = watch::channel(false);
    let stop_all = Arc::new(stop_all);
    let progress = Arc::new(progress);
    let mut tasks = Vec::new();
    let mut pacer = Pacer::new(&plan);
    while let Some((_, permit, request)) = pacer.next(&mut stop).await {
        let spec = match request
            .validate(
                &crate::media::policy::InputPolicy::Unrestricted,
                &topologies,
                plan.relay.as_ref(),
                settings.input_bounds,
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "load: invalid session");
                break;
            }
        };
        progress.send_modify(|p| {
            p.started += 1;
            p.running += 1;
        });
        tasks.push(tokio::spawn(drive_session(
            spec,
            cloud.clone(),
            settings.clone(),
            topologies.clone(),
            stop_all.subscribe(),
            permit,
            progress.clone(),
        )));
    }
    // Ctrl-C: every session still running is ended cleanly, all the same.
    let stopper = {
        let stop_all = stop_all.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            if stop.changed().await.is_ok() {
                let _ = stop_all.send(true);
            }
        })
    };
    let mut finished = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            finished.push(Finished::from_report(&r, &first_media));
        }
    }
    stopper.abort();
    summarize(&finished, started.elapsed().as_secs_f64())
}

/// Issues a run's sessions: one each `1 / rate` seconds, at most `concurrency` running at
/// once, each with its own callee, room and robot, until all are issued or a stop.
struct Pacer<'a> {
    plan: &'a LoadPlan,
    tick: tokio::time::Interval,
    permits: Arc<Semaphore>,
    run_id: String,
    issued: u32,
}

impl<'a> Pacer<'a> {
    fn new(plan: &'a LoadPlan) -> Self {
        Self {
            plan,
            tick: tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate.max(0.001))),
            permits: Arc::new(Semaphore::new(plan.concurrency.max(1) as usize)),
            run_id: uuid::Uuid::new_v4().simple().to_string()[..6].to_owned(),
            issued: 0,
        }
    }

    /// The next session's number, its place among the running (held until it ends) and its
    /// request; `None` once all are issued or `stop` changes.
    async fn next(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<(u32, tokio::sync::OwnedSemaphorePermit, SessionRequest)> {
        if self.issued == self.plan.calls {
            return None;
        }
        tokio::select! {
            _ = self.tick.tick() => {}
            _ = stop.changed() => return None,
        }
        let permit = tokio::select! {
            p = self.permits.clone().acquire_owned() => p.expect("semaphore open"),
            _ = stop.changed() => return None,
        };
        let i = self.issued;
        self.issued += 1;
        Some((
            i,
            permit,
            unique_request(&self.plan.template, &self.run_id, i),
        ))
    }
}

/// The template with its callee, room and robot made unique to session `i` of run `run_id`.
fn unique_request(template: &SessionRequest, run_id: &str, i: u32) -> SessionRequest {
    let mut request = template.clone();
    request.to = vec![format!("load{run_id}c{i}")];
    request.room = format!("load{run_id}r{i}");
    request.robot = format!("load{run_id}b{i}");
    request
}

/// One session, start to torn down; its concurrency permit is given back as soon as it ends.
async fn drive_session<C: CloudOps>(
    spec: SessionSpec,
    cloud: Arc<C>,
    settings: DriverSettings,
    topologies: Topologies,
    stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
    progress: Arc<watch::Sender<LoadProgress>>,
) -> Report {
    let (status, _) = watch::channel(Status::default());
    let report = driver::run(
        uuid::Uuid::new_v4().to_string(),
        spec,
        &*cloud,
        None,
        settings,
        topologies,
        Controls {
            status,
            stop,
            nudge: Arc::new(tokio::sync::Notify::new()),
            changes: None,
        },
    )
    .await;
    drop(permit);
    count_finished(&progress, report.outcome == Outcome::Completed);
    report
}

/// The run's counts and per-stage percentiles; `wall` is the run's length in seconds.
fn summarize(reports: &[Finished], wall: f64) -> LoadReport {
    let diff = |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| b.saturating_sub(a));
    let mut results = BTreeMap::new();
    let mut failures_by_code = BTreeMap::new();
    let mut succeeded = 0;
    for r in reports {
        *results.entry(r.result.clone()).or_insert(0) += 1;
        if r.completed() {
            succeeded += 1;
        } else if r.result == "failed" {
            *failures_by_code
                .entry(r.error_code.clone().unwrap_or_else(|| "transport".into()))
                .or_insert(0) += 1;
        }
    }
    let first_media_values: Vec<u64> = reports
        .iter()
        .filter_map(|r| {
            let media = r.first_media_ms?;
            let wait = diff(r.timings.answered_ms, r.timings.ingest_started_ms).unwrap_or(0);
            Some(media + wait)
        })
        .collect();
    let failed = reports.len() as u32 - succeeded;
    LoadReport {
        calls: reports.len() as u32,
        succeeded,
        failed,
        results,
        failures_by_code,
        wall_seconds: (wall * 1000.0).round() / 1000.0,
        sessions_per_second: ((f64::from(succeeded) / wall) * 100.0).round() / 100.0,
        ring_ms: Percentiles::of(
            reports
                .iter()
                .filter_map(|r| diff(r.timings.prepared_ms, r.timings.call_started_ms))
                .collect(),
        ),
        answer_ms: Percentiles::of(
            reports
                .iter()
                .filter_map(|r| diff(r.timings.call_started_ms, r.timings.answered_ms))
                .collect(),
        ),
        ingest_ms: Percentiles::of(
            reports
                .iter()
                .filter_map(|r| diff(r.timings.answered_ms, r.timings.ingest_started_ms))
                .collect(),
        ),
        answer_to_first_media_ms: (!first_media_values.is_empty())
            .then(|| Percentiles::of(first_media_values)),
        session_ms: Percentiles::of(reports.iter().filter_map(|r| r.timings.ended_ms).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Percentiles::of((1..=100).collect());
        assert_eq!(
            (p.p50, p.p95, p.p99, p.max, p.count),
            (50, 95, 99, 100, 100)
        );
        assert_eq!(Percentiles::of(vec![7]).p99, 7);
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    }
}
