//! HTTP serving: the sessions API, the webhook receivers, metrics, the stream endpoints a
//! cloud puller reads, and the bounded HTTP server they all run on.

pub mod api;
pub mod http;
pub mod metrics;
pub mod streams;
pub mod webhooks;
