//! The cluster's role in PostgreSQL: nodes with leases on the database clock, placement (see
//! `placement.rs`), a `LISTEN` connection that wakes a node a session was placed on, and
//! the webhook's question of which session holds a CallId.

use std::time::Duration;

use tokio_postgres::NoTls;

use super::super::cluster::{Cluster, NodeInfo, NodeLoad, NodeView, Placement, Replaced, WakeUps};
use super::super::error::StoreError;
use super::super::owner::process_identity;
use super::{PLACED_CHANNEL, PostgresStore};

impl Cluster for PostgresStore {
    async fn register_node(&self, info: &NodeInfo, lease: Duration) -> Result<(), StoreError> {
        let me = process_identity();
        let secs = lease.as_secs_f64();
        let capacity = i32::try_from(info.capacity).unwrap_or(i32::MAX);
        self.exec(
            "INSERT INTO nodes (id, api_url, capacity, lease_until, stream_base, token_fingerprint)
             VALUES ($1, $2, $3, now() + $4 * interval '1 second', $5, $6)
             ON CONFLICT (id) DO UPDATE SET api_url = $2, capacity = $3, draining = false,
               stream_base = $5, token_fingerprint = $6,
               renewed_at = now(), lease_until = now() + $4 * interval '1 second'",
            &[
                &me,
                &info.api_url,
                &capacity,
                &secs,
                &info.stream_base,
                &info.token_fingerprint,
            ],
        )
        .await
        .map(drop)
    }

    async fn renew_lease(&self, lease: Duration, now: NodeLoad) -> Result<bool, StoreError> {
        let me = process_identity();
        let secs = lease.as_secs_f64();
        let load = i32::try_from(now.sessions).unwrap_or(i32::MAX);
        let (draining, busy) = (now.draining, now.busy);
        // A lease that ran out is extended too (after a store outage every lease has): the
        // sessions taken over meanwhile are fenced. Only a node row removed as long gone
        // means the node must start afresh.
        self.exec(
            "UPDATE nodes SET renewed_at = now(), lease_until = now() + $2 * interval '1 second',
               load = $3, draining = $4, busy = $5
             WHERE id = $1",
            &[&me, &secs, &load, &draining, &busy],
        )
        .await
        .map(|n| n == 1)
    }

    async fn forget_nodes_gone_for(&self, gone_for: Duration) -> Result<u64, StoreError> {
        let me = process_identity();
        self.exec(
            "DELETE FROM nodes WHERE id <> $1 AND lease_until < now() - $2 * interval '1 second'",
            &[&me, &gone_for.as_secs_f64()],
        )
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        let rows = self
            .query(
                "SELECT id, api_url, capacity, load, draining,
                        (extract(epoch FROM now() - renewed_at) * 1000)::bigint,
                        lease_until > now(), busy, stream_base
                 FROM nodes ORDER BY started_at, id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| NodeView {
                id: r.get(0),
                api_url: r.get(1),
                capacity: u32::try_from(r.get::<_, i32>(2)).unwrap_or(0),
                load: u32::try_from(r.get::<_, i32>(3)).unwrap_or(0),
                draining: r.get(4),
                lease_age_ms: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
                live: r.get(6),
                busy: r.get(7),
                stream_base: r.get(8),
            })
            .collect())
    }

    async fn leave(&self) -> Result<(), StoreError> {
        let me = process_identity();
        self.exec("DELETE FROM nodes WHERE id = $1", &[&me])
            .await
            .map(drop)
    }

    async fn admit_placing(
        &self,
        id: &str,
        room: &str,
        robot: &str,
        request: &str,
        cost: u32,
    ) -> Result<Placement, StoreError> {
        self.place(id, room, robot, request, cost).await
    }

    async fn placed_here(&self) -> Option<WakeUps> {
        use futures::StreamExt;
        let (client, mut connection) = self.config.connect(NoTls).await.ok()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let me = process_identity();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(n) = message
                    && n.payload() == me
                    && tx.send(()).is_err()
                {
                    return;
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {PLACED_CHANNEL}"))
            .await
            .ok()?;
        Some(WakeUps {
            rx,
            _connection: Box::new(client),
        })
    }

    async fn take_placed(&self) -> Result<Vec<(String, String)>, StoreError> {
        let me = process_identity();
        let rows = self
            .query(
                "UPDATE sessions SET state = 'preparing', updated_at = now()
                 WHERE owner = $1 AND state = 'placed' AND result IS NULL
                 RETURNING id, request",
                &[&me],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
            .collect())
    }

    async fn replace_stranded(&self, lease: Duration) -> Result<Vec<Replaced>, StoreError> {
        self.place_again(lease).await
    }

    async fn session_by_cloud_id(
        &self,
        call_id: Option<&str>,
        task_id: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let rows = self
            .query(
                "SELECT id FROM sessions WHERE result IS NULL
                   AND (call_id = $1 OR task_id = $2) LIMIT 1",
                &[&call_id, &task_id],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }
}
