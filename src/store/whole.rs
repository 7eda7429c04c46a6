//! Every role of a store under the one name it had before the roles were split: for code
//! that holds a [`Store`](super::Store) and wants all of it through one import (the tests, a
//! tool). The service and the sessions ask each role for what they need, and a node without
//! a cluster does not ask the cluster at all; here a store without one answers as a node
//! alone is: nothing to register or lease against, every session placed on itself, no
//! other node to list, ask or place on.

use std::future::Future;
use std::time::Duration;

use super::cluster::{Cluster, NodeInfo, NodeLoad, NodeView, Placement, Replaced, WakeUps};
use super::error::StoreError;
use super::events::{EventLog, FeedEvent};
use super::journal::{Admission, Journal, OpenSession, Whereabouts};

/// A store's journal, event log and, when it has one, cluster, as one trait. See each role
/// ([`Journal`], [`EventLog`], [`Cluster`]) for what its methods do.
pub trait SessionStore: Journal + EventLog {
    /// The cluster role, when the store is shared by nodes.
    fn cluster_role(&self) -> Option<&impl Cluster>;

    fn admit(
        &self,
        id: &str,
        room: &str,
        robot: &str,
    ) -> impl Future<Output = Result<Admission, StoreError>> + Send {
        Journal::admit(self, id, room, robot)
    }
    fn set_state(
        &self,
        id: &str,
        state: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Journal::set_state(self, id, state)
    }
    fn set_call(
        &self,
        id: &str,
        call_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Journal::set_call(self, id, call_id)
    }
    fn set_task(
        &self,
        id: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Journal::set_task(self, id, task_id)
    }
    fn set_publish_task(
        &self,
        id: &str,
        task_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Journal::set_publish_task(self, id, task_id)
    }
    fn finish(
        &self,
        id: &str,
        result: &str,
        note: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Journal::finish(self, id, result, note)
    }
    fn teardown_pending(
        &self,
        id: &str,
        result: &str,
        note: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        Journal::teardown_pending(self, id, result, note)
    }
    fn active_for(
        &self,
        room: &str,
        robot: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        Journal::active_for(self, room, robot)
    }
    fn open_sessions(&self) -> impl Future<Output = Result<Vec<OpenSession>, StoreError>> + Send {
        Journal::open_sessions(self)
    }
    fn call_of(&self, id: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        Journal::call_of(self, id)
    }
    fn result_of(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(String, String)>, StoreError>> + Send {
        Journal::result_of(self, id)
    }
    fn fence(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send {
        Journal::fence(self, id)
    }
    fn claim(
        &self,
        id: &str,
        from: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        Journal::claim(self, id, from)
    }
    fn whereabouts(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Whereabouts>, StoreError>> + Send {
        Journal::whereabouts(self, id)
    }

    fn append_event(
        &self,
        session: &str,
        kind: &str,
        data: &str,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send {
        EventLog::append_event(self, session, kind, data)
    }
    fn events_after(
        &self,
        session: &str,
        after: i64,
    ) -> impl Future<Output = Result<Vec<(i64, String, String)>, StoreError>> + Send {
        EventLog::events_after(self, session, after)
    }
    fn all_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<FeedEvent>, StoreError>> + Send {
        EventLog::all_events_after(self, after, limit)
    }
    fn last_event_seq(&self) -> impl Future<Output = Result<i64, StoreError>> + Send {
        EventLog::last_event_seq(self)
    }

    fn register_node(
        &self,
        info: &NodeInfo,
        lease: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.register_node(info, lease).await,
                None => Ok(()),
            }
        }
    }
    /// Alone, a node's lease never runs out: `true`.
    fn renew_lease(
        &self,
        lease: Duration,
        now: NodeLoad,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.renew_lease(lease, now).await,
                None => Ok(true),
            }
        }
    }
    fn forget_nodes_gone_for(
        &self,
        gone_for: Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.forget_nodes_gone_for(gone_for).await,
                None => Ok(0),
            }
        }
    }
    /// Alone: none.
    fn nodes(&self) -> impl Future<Output = Result<Vec<NodeView>, StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.nodes().await,
                None => Ok(Vec::new()),
            }
        }
    }
    fn leave(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.leave().await,
                None => Ok(()),
            }
        }
    }
    /// Alone, a session admitted is placed here.
    fn admit_placing(
        &self,
        id: &str,
        room: &str,
        robot: &str,
        request: &str,
        cost: u32,
    ) -> impl Future<Output = Result<Placement, StoreError>> + Send {
        async move {
            if let Some(c) = self.cluster_role() {
                return c.admit_placing(id, room, robot, request, cost).await;
            }
            Ok(match Journal::admit(self, id, room, robot).await? {
                Admission::Admitted => Placement::Here,
                Admission::Busy { existing } => Placement::Busy { existing },
            })
        }
    }
    fn placed_here(&self) -> impl Future<Output = Option<WakeUps>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.placed_here().await,
                None => None,
            }
        }
    }
    fn take_placed(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.take_placed().await,
                None => Ok(Vec::new()),
            }
        }
    }
    fn replace_stranded(
        &self,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Replaced>, StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.replace_stranded(lease).await,
                None => Ok(Vec::new()),
            }
        }
    }
    /// Alone, a webhook's session is this node's own, or none.
    fn session_by_cloud_id(
        &self,
        call_id: Option<&str>,
        task_id: Option<&str>,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        async move {
            match self.cluster_role() {
                Some(c) => c.session_by_cloud_id(call_id, task_id).await,
                None => Ok(None),
            }
        }
    }
}
