//! Event streams (`GET /v1/sessions/{id}/events`, `GET /v1/events`) are long responses: each
//! holds a connection for as long as its client likes. So one client may hold only so many at
//! once, counted by what let it in: the API token, the console logins (their cookies,
//! together), or, on a node without a token, the peer's address. One over is answered 429 with `Retry-After`; a stream's
//! place is given back when its response ends or its client goes away.
//!
//! `/v1/events` carries every session, so a client following many needs one stream, not many.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Event streams one client may hold open at once, unless set otherwise.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 32;

/// What let a request in; set by `auth` as a request extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Client {
    /// The API token (every holder of it is one client).
    Token,
    /// The console logins, all together: each login is minted with the token, so counting
    /// them apart would let a token holder open any number of streams.
    Consoles,
    /// A node without a token: the peer's address (IPv6 by /64).
    Peer(IpAddr),
}

/// Open event streams by client.
pub(super) struct StreamBudget {
    max: usize,
    open: Mutex<HashMap<Client, usize>>,
}

impl StreamBudget {
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// How many streams one client may hold.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// A place for one more stream of `client`, unless it holds its cap.
    pub(super) fn take(self: &Arc<Self>, client: Client) -> Option<StreamPlace> {
        let mut open = self.open.lock();
        let held = open.entry(client.clone()).or_default();
        if *held >= self.max {
            return None;
        }
        *held += 1;
        Some(StreamPlace {
            budget: self.clone(),
            client,
        })
    }
}

/// One open stream's place; given back when dropped.
pub(super) struct StreamPlace {
    budget: Arc<StreamBudget>,
    client: Client,
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        let mut open = self.budget.open.lock();
        if let Some(held) = open.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.client);
            }
        }
    }
}
