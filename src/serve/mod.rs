//! HTTP serving: the sessions API, the webhook receivers, metrics, and the stream endpoints
//! a cloud puller reads.

pub mod api;
pub mod metrics;
pub mod streams;
pub mod webhooks;
