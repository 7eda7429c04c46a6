//! Feeds: encoders push RTMP to callfeed's server (ffmpeg stands in for OBS), and what a
//! feed's calls receive is what the publisher sent; keys, limits and hostile publishers.

mod capacity;
mod cli;
mod hostile;
mod passthrough;
pub(crate) mod publishers;
mod rtmp_server;
mod rtsp;
mod sessions;
mod srt;
mod stay;
mod whip;
