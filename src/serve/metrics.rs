//! The service's Prometheus metrics, and a [`CloudOps`] that counts and times every cloud
//! request.

use std::sync::Arc;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cloud::call::StartCallByRobot;
use crate::cloud::http::CloudError;
use crate::cloud::ingest::StartStreamIngest;
use crate::session::{CallStatus, CloudOps};

pub(crate) type Labels = Vec<(String, String)>;

/// The service's metrics.
pub struct Metrics {
    pub(crate) registry: Registry,
    pub(crate) sessions: Family<Labels, Gauge>,
    pub(crate) results: Family<Labels, Counter>,
    cloud_requests: Family<Labels, Counter>,
    cloud_seconds: Family<Labels, Histogram>,
    pub(crate) restarts: Counter,
    pub(crate) slate_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    pub(crate) bytes_served: Counter,
    pub(crate) webhooks: Family<Labels, Counter>,
    pub(crate) refused: Family<Labels, Counter>,
    /// This node's share of a cluster: `sum()` over nodes gives the cluster's.
    pub(crate) node_capacity: Gauge,
    pub(crate) node_load: Gauge,
    pub(crate) lease_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) reaped: Counter,
    pub(crate) fence_losses: Gauge,
    pub(crate) strays_stopped: Counter,
    /// Feeds by kind and state, and what arrives at each running one.
    pub(crate) feeds: Family<Labels, Gauge>,
    pub(crate) feed_kbps: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("callfeed");
        let sessions = Family::<Labels, Gauge>::default();
        let results = Family::<Labels, Counter>::default();
        let cloud_requests = Family::<Labels, Counter>::default();
        let cloud_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let restarts = Counter::default();
        let slate_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        let bytes_served = Counter::default();
        let webhooks = Family::<Labels, Counter>::default();
        let refused = Family::<Labels, Counter>::default();
        let node_capacity = Gauge::default();
        let node_load = Gauge::default();
        let lease_age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let reaped = Counter::default();
        let fence_losses = Gauge::default();
        let strays_stopped = Counter::default();
        let feeds = Family::<Labels, Gauge>::default();
        let feed_kbps = Family::<Labels, Gauge>::default();
        registry.register("feeds", "Feeds by kind and state", feeds.clone());
        registry.register(
            "feed_in_kbps",
            "What arrives at each feed from its publisher (or source), kbit/s",
            feed_kbps.clone(),
        );
        registry.register(
            "strays_stopped",
            "Calls and ingest tasks a start whose answer was lost had started, which this node stopped",
            strays_stopped.clone(),
        );
        registry.register(
            "fence_losses",
            "Cloud starts this node gave up because another node had taken the session over",
            fence_losses.clone(),
        );
        registry.register(
            "node_capacity",
            "Sessions this node runs at once, at most (sum over nodes: the cluster's)",
            node_capacity.clone(),
        );
        registry.register(
            "node_sessions",
            "Sessions this node runs now (sum over nodes: the cluster's)",
            node_load.clone(),
        );
        registry.register(
            "lease_age_seconds",
            "Time since this node last renewed its cluster lease (0 outside a cluster)",
            lease_age.clone(),
        );
        registry.register(
            "sessions_reaped",
            "Sessions of gone nodes this node took over and stopped (result node_lost)",
            reaped.clone(),
        );
        registry.register(
            "sessions_refused",
            "Session requests refused before anything started, by reason",
            refused.clone(),
        );
        registry.register("sessions", "Sessions by state", sessions.clone());
        registry.register(
            "session_results",
            "Ended sessions by result",
            results.clone(),
        );
        registry.register(
            "cloud_requests",
            "Cloud requests by operation and outcome (error code)",
            cloud_requests.clone(),
        );
        registry.register(
            "cloud_request_seconds",
            "Cloud request latency by operation",
            cloud_seconds.clone(),
        );
        registry.register(
            "pipeline_restarts",
            "Media input restarts",
            restarts.clone(),
        );
        registry.register(
            "slate_seconds",
            "Time streams spent on the slate",
            slate_seconds.clone(),
        );
        registry.register(
            "stream_bytes",
            "Bytes of stream produced for pullers",
            bytes_served.clone(),
        );
        registry.register(
            "webhooks",
            "Webhooks received by kind and verdict",
            webhooks.clone(),
        );
        Self {
            registry,
            sessions,
            results,
            cloud_requests,
            cloud_seconds,
            restarts,
            slate_seconds,
            bytes_served,
            webhooks,
            refused,
            node_capacity,
            node_load,
            lease_age,
            reaped,
            fence_losses,
            strays_stopped,
            feeds,
            feed_kbps,
        }
    }
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A [`CloudOps`] that counts and times every request.
pub struct Metered<C> {
    inner: C,
    metrics: Arc<Metrics>,
}

impl<C: CloudOps> Metered<C> {
    pub fn new(inner: C, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn measure<T>(
        &self,
        op: &str,
        f: impl std::future::Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        let started = Instant::now();
        let result = f.await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.code().unwrap_or_else(|| "transport".into()),
        };
        self.metrics
            .cloud_seconds
            .get_or_create(&labels(&[("op", op)]))
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .cloud_requests
            .get_or_create(&labels(&[("op", op), ("outcome", &outcome)]))
            .inc();
        result
    }
}

impl<C: CloudOps> CloudOps for Metered<C> {
    async fn start_call(&self, req: &StartCallByRobot) -> Result<String, CloudError> {
        self.measure("start_call_by_robot", self.inner.start_call(req))
            .await
    }
    async fn call_status(&self, call_id: &str, robot: &str) -> Result<CallStatus, CloudError> {
        self.measure("get_call_info", self.inner.call_status(call_id, robot))
            .await
    }
    async fn end_call(&self, call_id: &str) -> Result<(), CloudError> {
        self.measure("end_call", self.inner.end_call(call_id)).await
    }
    async fn start_ingest(&self, req: &StartStreamIngest) -> Result<String, CloudError> {
        self.measure("StartStreamIngest", self.inner.start_ingest(req))
            .await
    }
    async fn task_alive(&self, task_id: &str) -> Result<bool, CloudError> {
        self.measure("DescribeStreamIngest", self.inner.task_alive(task_id))
            .await
    }
    async fn stop_ingest(&self, task_id: &str) -> Result<(), CloudError> {
        self.measure("StopStreamIngest", self.inner.stop_ingest(task_id))
            .await
    }
    async fn update_ingest(
        &self,
        req: &crate::cloud::ingest::UpdateStreamIngest,
    ) -> Result<bool, CloudError> {
        self.measure("UpdateStreamIngest", self.inner.update_ingest(req))
            .await
    }
    async fn start_publish(
        &self,
        req: &crate::cloud::publish_cdn::StartPublishCdnStream,
    ) -> Result<String, CloudError> {
        self.measure("StartPublishCdnStream", self.inner.start_publish(req))
            .await
    }
    async fn stop_publish(&self, task_id: &str) -> Result<(), CloudError> {
        self.measure("StopPublishCdnStream", self.inner.stop_publish(task_id))
            .await
    }
}
