//! HTTP serving: the stream endpoints a cloud puller reads. (The control API joins here.)

pub mod api;
pub mod http;
pub mod streams;
