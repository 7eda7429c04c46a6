//! `callfeed serve`: the sessions API, the webhook receivers and metrics. Its listener is the
//! bounded [`server`](crate::server); session streams are mounted on it by a
//! [`publish`](crate::publish) server.

pub mod api;
pub mod cluster;
pub mod console;
pub mod exposure;
pub mod metrics;
pub mod outbound;
pub mod webhooks;
