//! What watches a node: `/metrics` (Prometheus text) and `/readyz` (503 while it drains).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;

use super::error::ApiError;
use super::service::Service;
use crate::serve::metrics::labels;
use crate::session::CloudOps;
use crate::session::driver::Phase;

pub(super) async fn metrics<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
) -> Result<impl IntoResponse, ApiError> {
    let (load, _) = svc.load();
    svc.metrics.node_load.set(i64::from(load));
    svc.metrics
        .node_capacity
        .set(i64::try_from(svc.max_sessions).unwrap_or(i64::MAX));
    svc.metrics
        .fence_losses
        .set(i64::try_from(svc.journal.fence_losses()).unwrap_or(i64::MAX));
    if let Some(lease) = &svc.cluster {
        svc.metrics
            .lease_age
            .set(lease.since_renewal().as_secs_f64());
    }
    {
        let sessions = svc.sessions.lock();
        let mut by_phase: HashMap<Phase, i64> = HashMap::new();
        for e in sessions.values() {
            *by_phase.entry(e.phase()).or_default() += 1;
        }
        svc.metrics.sessions.clear();
        for (phase, n) in by_phase {
            svc.metrics
                .sessions
                .get_or_create(&labels(&[("state", phase.name())]))
                .set(n);
        }
    }
    let feeds = svc.feeds().list();
    svc.metrics.feeds.clear();
    svc.metrics.feed_kbps.clear();
    for feed in &feeds {
        let kind_state = [("kind", feed.kind.name()), ("state", feed.state.name())];
        svc.metrics.feeds.get_or_create(&labels(&kind_state)).inc();
        svc.metrics
            .feed_kbps
            .get_or_create(&labels(&[("feed", feed.id.as_str())]))
            .set(i64::try_from(feed.figures.kbps).unwrap_or(i64::MAX));
    }
    let mut text = String::new();
    encode(&mut text, &svc.metrics.registry).map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

pub(super) async fn ready<C: CloudOps + 'static>(
    State(svc): State<Arc<Service<C>>>,
) -> Result<&'static str, ApiError> {
    if svc.draining.load(Ordering::SeqCst) {
        Err(ApiError::problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
        ))
    } else {
        Ok("ready")
    }
}
