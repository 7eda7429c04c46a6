//! Every session's events, numbered across sessions, so an event stream can be replayed and
//! resumed (`Last-Event-ID`) on any node.

use std::future::Future;

use super::error::StoreError;

/// One recorded event of some session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub seq: i64,
    pub session: String,
    pub kind: String,
    pub data: String,
}

/// Where sessions' events are kept, in the order they were recorded.
pub trait EventLog: Send + Sync {
    /// Records one of a session's events; its sequence number (increasing, also across
    /// sessions), which `Last-Event-ID` names.
    fn append_event(
        &self,
        session: &str,
        kind: &str,
        data: &str,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;
    /// A session's events after sequence number `after`, oldest first: (seq, kind, data).
    fn events_after(
        &self,
        session: &str,
        after: i64,
    ) -> impl Future<Output = Result<Vec<(i64, String, String)>, StoreError>> + Send;
    /// Every session's events after sequence number `after`, oldest first, at most `limit`:
    /// what the console's one stream for all sessions follows.
    fn all_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send;
    /// The newest event's sequence number (0: none yet).
    fn last_event_seq(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
}
