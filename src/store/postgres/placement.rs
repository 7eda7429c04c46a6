//! Where the cluster puts a session: the node with the most free room of the admitting
//! node's token, chosen under one advisory lock so placements count each other, and placed
//! again when the chosen node never picked it up.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::super::cluster::{Placement, Replaced, STRANDED_NOTE};
use super::super::error::StoreError;
use super::super::journal::Journal;
use super::super::owner::process_identity;
use super::{PLACED_CHANNEL, PLACEMENT_LOCK, PostgresStore, TIMEOUT};

/// The node a session goes to: live, not draining, taking `$1`'s token, passing `$3` by, and
/// with the most room left of at least `$2` units (`$1` itself on a tie); nodes over their
/// CPU limit count only when `$4`.
const CHOOSE_NODE: &str = "SELECT n.id, n.api_url FROM nodes n
       LEFT JOIN sessions s ON s.owner = n.id AND s.result IS NULL
     WHERE n.lease_until > now() AND NOT n.draining AND (NOT n.busy OR $4)
       AND n.id IS DISTINCT FROM $3
       AND n.token_fingerprint = (SELECT token_fingerprint FROM nodes WHERE id = $1)
     GROUP BY n.id
     HAVING n.capacity - coalesce(sum(s.cost), 0) >= $2
     ORDER BY n.capacity - coalesce(sum(s.cost), 0) DESC, (n.id = $1) DESC, n.id
     LIMIT 1";

impl PostgresStore {
    /// See [`Cluster::admit_placing`](super::super::cluster::Cluster::admit_placing).
    pub(super) async fn place(
        &self,
        id: &str,
        room: &str,
        robot: &str,
        request: &str,
        cost: u32,
    ) -> Result<Placement, StoreError> {
        let me = process_identity();
        let cost = i64::from(cost);
        let mut client = self.client().await?;
        let placed = tokio::time::timeout(TIMEOUT, async {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PLACEMENT_LOCK])
                .await?;
            let none: Option<String> = None;
            let chosen = tx
                .query_opt(CHOOSE_NODE, &[&me, &cost, &none, &false])
                .await?;
            let Some(row) = chosen else {
                // Would a node over its CPU limit have had the room?
                let cpu_bound = tx
                    .query_opt(CHOOSE_NODE, &[&me, &cost, &none, &true])
                    .await?
                    .is_some();
                return Ok(Err(Some(cpu_bound)));
            };
            let (node, api_url): (String, String) = (row.get(0), row.get(1));
            let state = if node == me { "preparing" } else { "placed" };
            if node != me {
                // Delivered at commit: the chosen node starts it at once rather than at its
                // next look.
                tx.execute("SELECT pg_notify($1, $2)", &[&PLACED_CHANNEL, &node])
                    .await?;
            }
            let inserted = tx
                .execute(
                    "INSERT INTO sessions (id, room, robot, state, owner, request, cost)
                     VALUES ($1, $2, $3, $4, $5, $6, $7::bigint)",
                    &[&id, &room, &robot, &state, &node, &request, &cost],
                )
                .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    Ok(Ok((node, api_url)))
                }
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(Err(None)),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|_| self.timed_out())?
        .map_err(|e| self.failed(e))?;
        drop(client);
        Ok(match placed {
            Err(Some(cpu_bound)) => Placement::Full { cpu_bound },
            Ok((node, _)) if node == me => Placement::Here,
            Ok((_, api_url)) => Placement::There { api_url },
            Err(None) => {
                let existing = self.active_for(room, robot).await?.unwrap_or_default();
                Placement::Busy { existing }
            }
        })
    }

    /// See [`Cluster::replace_stranded`](super::super::cluster::Cluster::replace_stranded).
    pub(super) async fn place_again(&self, lease: Duration) -> Result<Vec<Replaced>, StoreError> {
        let me = process_identity();
        let secs = lease.as_secs_f64();
        let mut client = self.client().await?;
        let replaced = tokio::time::timeout(TIMEOUT, async {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PLACEMENT_LOCK])
                .await?;
            let stranded = tx
                .query(
                    "SELECT s.id, s.owner, s.cost::bigint FROM sessions s
                       LEFT JOIN nodes n ON n.id = s.owner
                     WHERE s.result IS NULL AND s.state = 'placed'
                       AND (n.id IS NULL OR n.lease_until < now()
                            OR s.updated_at < now() - $1 * interval '1 second')
                       AND (n.id IS NULL OR n.token_fingerprint =
                            (SELECT token_fingerprint FROM nodes WHERE id = $2))
                     ORDER BY s.created_at
                     FOR UPDATE OF s SKIP LOCKED",
                    &[&secs, &me],
                )
                .await?;
            let mut done = Vec::new();
            for row in stranded {
                let (id, owner, cost): (String, Option<String>, i64) =
                    (row.get(0), row.get(1), row.get(2));
                let chosen = tx
                    .query_opt(CHOOSE_NODE, &[&me, &cost, &owner, &false])
                    .await?;
                let to = match chosen {
                    Some(node) => {
                        let (node, api_url): (String, String) = (node.get(0), node.get(1));
                        tx.execute(
                            "UPDATE sessions SET owner = $2, updated_at = now() WHERE id = $1",
                            &[&id, &node],
                        )
                        .await?;
                        tx.execute("SELECT pg_notify($1, $2)", &[&PLACED_CHANNEL, &node])
                            .await?;
                        Some(api_url)
                    }
                    None => {
                        tx.execute(
                            "UPDATE sessions SET result = 'refused', note = $2, state = 'ended',
                               updated_at = now() WHERE id = $1",
                            &[&id, &STRANDED_NOTE],
                        )
                        .await?;
                        None
                    }
                };
                done.push(Replaced { id, to });
            }
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(done)
        })
        .await
        .map_err(|_| self.timed_out())?
        .map_err(|e| self.failed(e))?;
        Ok(replaced)
    }
}
