//! `callfeed serve`: the control API, the webhook receivers, metrics and health.
//!
//! `POST /v1/sessions` starts a session (the same options as `callfeed call`, as JSON),
//! `GET /v1/sessions[/{id}]` reads them, `DELETE /v1/sessions/{id}` ends one, `PATCH` changes
//! a running one and `/v1/sessions/{id}/queue` plays items one after another (`changes`),
//! `GET /v1/sessions/{id}/events` follows one as Server-Sent Events, `GET /v1/events` follows
//! them all (the console's stream, see `all_events`); `/v1/feeds` makes, shows and ends feeds
//! (see `feeds`). A bearer token guards `/v1`; the console's
//! login cookie opens `/v1/events` alone; one client holds only so many event streams
//! (`budget`). The rules of [`exposure`](super::exposure) come first. Webhooks from the call
//! engine and TRTC are verified and make the session look at the cloud at once. SIGTERM
//! drains: no new sessions, every running one ended cleanly.
//!
//! A request is validated whole (fields, the input policy, the media's existence) before a
//! session is admitted; admission is one journal insert, so one room gets one session; at
//! most `max_sessions` run at once; ended sessions are forgotten after `keep_ended` (the
//! journal keeps them).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::http::StatusCode;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

use super::metrics::{Metered, Metrics};
use super::webhooks::WebhookChecks;
use crate::session::CloudOps;
use crate::session::driver::DriverSettings;
use crate::store::Store;
use service::{IN_TASK_TEARDOWN_RETRY, REQUEST_LIMIT};

mod all_events;
mod auth;
mod budget;
mod changes;
mod create;
mod elsewhere;
mod error;
mod events;
mod feed_nodes;
mod feeds;
mod hooks;
mod logins;
mod lost_starts;
mod nodes;
mod probes;
mod recording;
mod recovery;
mod room;
mod service;
mod sessions;
mod strays;
mod viewers;
mod whip;

pub use budget::DEFAULT_MAX_EVENT_STREAMS;
pub(crate) use error::problem;
pub use service::{RoomView, Service, ServiceConfig, default_max_sessions};

impl<C: CloudOps + 'static> Service<C> {
    pub fn new(cloud: C, journal: Arc<Store>, config: ServiceConfig) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        let max_sessions = config.max_sessions.max(1);
        let viewers = logins::Viewers::new(config.token.as_ref());
        let exposure = super::exposure::Exposure::new(
            config.token.is_none(),
            config.listen,
            config.public_url.as_deref(),
        );
        let service = Arc::new(Self {
            cloud: Arc::new(Metered::new(cloud, metrics.clone())),
            journal,
            topologies: config.topologies.clone(),
            driver: DriverSettings {
                teardown_retry_for: Some(IN_TASK_TEARDOWN_RETRY),
                // Pulled feeds work without an RTMP server: a node always has a registry.
                feeds: Some(config.driver.feeds.clone().unwrap_or_else(|| {
                    crate::feed::Feeds::new(crate::feed::FeedSettings {
                        max_feeds: crate::feed::DEFAULT_MAX_FEEDS,
                        topologies: config.topologies.clone(),
                        rtmp_base: None,
                        srt: None,
                        whip: None,
                    })
                })),
                ..config.driver
            },
            token: config.token,
            policy: config.policy,
            relay: config.relay,
            cluster: config.cluster,
            drain_grace: config.drain_grace,
            costs: config.costs,
            drain_asked: Notify::new(),
            peers: reqwest::Client::builder()
                .connect_timeout(elsewhere::CONNECT_TIMEOUT)
                .build()
                .unwrap_or_default(),
            webhooks: config
                .webhooks
                .then(|| WebhookChecks::new(config.sdkappid, config.webhook_keys)),
            metrics,
            sessions: Mutex::new(HashMap::new()),
            any_recorded: Arc::new(Notify::new()),
            viewers,
            exposure: Arc::new(exposure),
            streams: budget::StreamBudget::new(config.max_event_streams),
            room_view: config.room_view,
            outbound: config
                .event_webhook
                .map(crate::serve::outbound::Outbound::start),
            default_monitor: config.default_monitor,
            draining: AtomicBool::new(false),
            slots: Arc::new(Semaphore::new(max_sessions)),
            max_sessions,
            keep_ended: config.keep_ended,
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            recovery: Mutex::new(None),
            lost_starts: lost_starts::LostStarts::default(),
        });
        if service.cluster.is_some() {
            tokio::spawn(create::pick_up_placed(Arc::downgrade(&service)));
        }
        service
    }

    pub fn router(self: &Arc<Self>) -> axum::Router {
        use axum::routing::{get, post};
        // A whole request that is not over in time is cut off: one byte every few seconds
        // would otherwise hold a connection for days. Event streams are exempt.
        let bounded = || {
            tower_http::timeout::TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_LIMIT,
            )
        };
        // One client holds only so many event streams (`budget`); inside `auth`, which
        // says who the client is.
        let streams = || axum::middleware::from_fn_with_state(self.clone(), auth::limit::<C>);
        let api = axum::Router::new()
            .route(
                "/v1/sessions",
                post(create::create::<C>)
                    .layer(bounded())
                    .get(sessions::list::<C>),
            )
            .route(
                "/v1/sessions/{id}",
                get(sessions::one::<C>)
                    .delete(sessions::stop::<C>)
                    .patch(changes::update::<C>),
            )
            .route(
                "/v1/sessions/{id}/queue",
                post(changes::enqueue::<C>).delete(changes::clear_queue::<C>),
            )
            .route(
                "/v1/sessions/{id}/events",
                get(events::stream::<C>).layer(streams()),
            )
            .route("/v1/nodes", get(nodes::list::<C>))
            .route("/v1/drain", post(nodes::drain::<C>))
            .route("/v1/sessions/{id}/nudge", post(hooks::nudge::<C>))
            .route("/v1/sessions/{id}/room", get(room::seen::<C>))
            .route("/v1/sessions/{id}/recording", get(recording::file::<C>))
            .route("/v1/events", get(all_events::stream::<C>).layer(streams()))
            .route(
                "/v1/feeds",
                post(feeds::create::<C>)
                    .layer(bounded())
                    .get(feeds::list::<C>),
            )
            .route(
                "/v1/feeds/{id}",
                get(feeds::one::<C>).delete(feeds::delete::<C>),
            )
            .route("/v1/feeds/{id}/key", post(feeds::rotate_key::<C>))
            .route("/v1/feeds/{id}/preview", post(feeds::preview::<C>))
            .route(
                "/v1/feeds/{id}/events",
                get(feeds::events::<C>).layer(streams()),
            )
            .route("/v1/console/login", post(viewers::login::<C>))
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                auth::auth::<C>,
            ));
        // What a browser reaches: the API, the console and metrics are answered only under
        // the rules of `exposure` (our own host names without a token, JSON bodies, no CORS).
        let guarded = axum::Router::new()
            .merge(api)
            .merge(super::console::routes())
            .route("/metrics", get(probes::metrics::<C>))
            .route("/v1/console/hello", get(viewers::hello::<C>))
            // Open: it only signs out the login its own cookie names.
            .route("/v1/events/logout", post(viewers::logout::<C>))
            .layer(axum::middleware::from_fn_with_state(
                self.exposure.clone(),
                super::exposure::guard,
            ));
        let mut router = axum::Router::new().merge(guarded);
        // The cloud's webhooks are checked by their own signature or token, and probes may
        // name the node however their platform does: neither is under the Host rule.
        if self.webhooks.is_some() {
            router = router
                .route(
                    "/webhooks/call",
                    post(hooks::call_webhook::<C>).layer(bounded()),
                )
                .route(
                    "/webhooks/trtc",
                    post(hooks::trtc_webhook::<C>).layer(bounded()),
                );
        }
        // WHIP publishers show a feed's key, not the API's token, from any host and origin.
        router = router
            .route(
                "/v1/whip/{id}",
                post(whip::publish::<C>)
                    .layer::<_, std::convert::Infallible>(axum::extract::DefaultBodyLimit::max(
                        crate::media::whip::MAX_OFFER_BYTES + 1,
                    ))
                    .layer(bounded())
                    .options(whip::options),
            )
            .route(
                "/v1/whip/{id}/{resource}",
                axum::routing::delete(whip::stop::<C>)
                    .patch(whip::patch)
                    .options(whip::options),
            );
        router
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(probes::ready::<C>))
            .with_state(self.clone())
    }
}
