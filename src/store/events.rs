//! Every session's events, numbered across sessions, so an event stream can be replayed and
//! resumed (`Last-Event-ID`) on any node.

/// One recorded event of some session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub seq: i64,
    pub session: String,
    pub kind: String,
    pub data: String,
}
