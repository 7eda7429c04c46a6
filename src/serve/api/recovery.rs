//! What a node stops in the cloud that no running session of its own looks after: an earlier
//! run's sessions (a crash, a kill), its own teardowns the cloud has not confirmed, and, in a
//! cluster, the sessions of nodes whose lease ran out.

use std::sync::Arc;

use super::Service;
use crate::session::CloudOps;
use crate::session::driver;
use crate::session::teardown::{Recovered, recover, recover_until_done};
use crate::store::{OpenSession, process_identity};

impl<C: CloudOps + 'static> Service<C> {
    /// Stops what an earlier run left in the cloud (a crash, a kill, or a teardown the cloud
    /// never confirmed): one round now, whose results are returned, then rounds in the
    /// background, with backoff, for as long as the service runs. Those rounds also take
    /// over this service's own sessions whose teardown outlasted their task.
    pub async fn recover(self: &Arc<Self>) -> Vec<(String, String)> {
        let limit = self.driver.teardown_timeout;
        // Another node's sessions only once this node has held its lease a full lease long.
        let cluster = self.cluster.clone();
        // A session placed on a gone node had nothing started: it is placed again (see
        // `create::replace_stranded`), not reaped.
        let gone = move |s: &OpenSession| {
            s.orphaned()
                && !s.placed
                && (s.owner_gone != Some(true) || cluster.as_ref().is_none_or(|c| c.may_reap()))
        };
        let first = recover(&self.journal, &*self.cloud, limit, &gone).await;
        let svc = Arc::downgrade(self);
        let me = process_identity();
        let journal = self.journal.clone();
        let cloud = self.cloud.clone();
        let look_every = self
            .cluster
            .as_ref()
            .map_or(crate::session::teardown::LOOK_EVERY, |c| c.look_every());
        let rounds = tokio::spawn(async move {
            // Of this node's own sessions, only those whose task ended with the teardown
            // unconfirmed (their result pending): one placed here and not yet picked up, or
            // being picked up, or whose result waits for the store to come back, is not
            // this loop's.
            let claim = |s: &OpenSession| {
                gone(s)
                    || (s.owner.as_deref() == Some(me.as_str())
                        && s.pending.is_some()
                        && svc.upgrade().is_some_and(|svc| !svc.is_running(&s.id)))
            };
            let confirmed = |r: &Recovered| {
                if let Some(svc) = svc.upgrade() {
                    svc.confirmed(r);
                }
            };
            recover_until_done(&journal, &*cloud, limit, claim, confirmed, look_every).await;
        });
        if let Some(old) = self.recovery.lock().replace(rounds.abort_handle()) {
            old.abort();
        }
        first
            .into_iter()
            .map(|r| match r {
                Ok(r) => (r.session_id, r.note),
                Err((id, e)) => (id, format!("teardown pending, retrying: {e}")),
            })
            .collect()
    }

    /// Recovery confirmed a session's teardown: its report says so now.
    fn confirmed(&self, r: &Recovered) {
        if r.result == "node_lost" {
            self.metrics.reaped.inc();
        }
        if let Some(e) = self.sessions.lock().get(&r.session_id) {
            e.report.send_modify(|report| {
                if let Some(report) = report {
                    report.teardown = driver::Teardown::Confirmed;
                }
            });
            // Its event stream ended with the pending report: followers learn of this one.
            if let Some(report) = e.report.borrow().clone() {
                let (journal, woken) = (self.journal.clone(), self.any_recorded.clone());
                let (id, data) = (r.session_id.clone(), serde_json::to_string(&report));
                tokio::spawn(async move {
                    let data = data.unwrap_or_default();
                    let written =
                        crate::store::EventLog::append_event(&*journal, &id, "report", &data);
                    if let Err(e) = written.await {
                        tracing::warn!(session = %id, error = %e, "cannot record a session event");
                    }
                    woken.notify_waiters();
                });
            }
        }
    }
}
