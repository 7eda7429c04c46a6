//! The cluster backend: every node's sessions in one PostgreSQL database. The room lock is a
//! unique index over unfinished sessions, so admission is one insert wherever it arrives; the
//! schema is versioned and migrated at start under an advisory lock, so nodes starting
//! together migrate it once.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::error::StoreError;
use super::events::{EventLog, FeedEvent};
use super::journal::{Admission, Journal, OpenSession, Whereabouts};
use super::owner::process_identity;

mod cluster;
mod placement;

/// The schema this callfeed writes; a database at a later version is refused.
const SCHEMA_VERSION: i64 = 4;

/// Each migration takes the schema from its index to the next version.
const MIGRATIONS: [&str; 4] = [
    "CREATE TABLE sessions (
       id TEXT PRIMARY KEY,
       created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
       updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
       room TEXT NOT NULL, robot TEXT NOT NULL, state TEXT NOT NULL,
       call_id TEXT, task_id TEXT, result TEXT, note TEXT, pending_result TEXT, owner TEXT);
     CREATE UNIQUE INDEX one_open_session_per_room ON sessions (room, robot) WHERE result IS NULL;
     CREATE INDEX sessions_by_call ON sessions (call_id);",
    // Version 2: nodes and their leases on the database clock; an epoch per session that
    // each takeover raises.
    "CREATE TABLE nodes (
       id TEXT PRIMARY KEY, api_url TEXT NOT NULL, stream_base TEXT NOT NULL DEFAULT '',
       capacity INTEGER NOT NULL,
       load INTEGER NOT NULL DEFAULT 0, draining BOOLEAN NOT NULL DEFAULT false,
       busy BOOLEAN NOT NULL DEFAULT false,
       started_at TIMESTAMPTZ NOT NULL DEFAULT now(), renewed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
       lease_until TIMESTAMPTZ NOT NULL);
     ALTER TABLE sessions ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
     -- What the node a session was placed on runs, and how much of a node's room it takes.
     ALTER TABLE sessions ADD COLUMN request TEXT;
     ALTER TABLE sessions ADD COLUMN cost INTEGER NOT NULL DEFAULT 1;
     -- Each session's events, numbered, so any node can replay and resume them.
     CREATE TABLE events (seq BIGSERIAL PRIMARY KEY, session TEXT NOT NULL, kind TEXT NOT NULL,
       data TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());
     CREATE INDEX events_by_session ON events (session, seq);",
    // Version 3: which API token a node takes (a fingerprint), so a session admitted under
    // one token is never run by a node that takes another.
    "ALTER TABLE nodes ADD COLUMN token_fingerprint TEXT NOT NULL DEFAULT '';",
    // Version 4: the relay to CDN a session's room monitor started, stopped with the rest
    // (by the sweeper too, when its node is lost).
    "ALTER TABLE sessions ADD COLUMN publish_task_id TEXT;",
];

/// How long connecting, and each statement, may take: a store that does not answer is an
/// error, not a hang.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Serialises migrations between nodes starting at once (an arbitrary, fixed key).
const MIGRATION_LOCK: i64 = 0x0ca1_1feed;

/// The unfinished session holding a room and robot.
const ACTIVE_FOR: &str =
    "SELECT id FROM sessions WHERE result IS NULL AND room = $1 AND robot = $2";

/// Serialises placements, so each counts the sessions the others placed.
const PLACEMENT_LOCK: i64 = 0x0ca1_1fee0;

pub struct PostgresStore {
    /// The URL as errors show it: no password.
    shown: String,
    /// How to connect (a listening connection is one of its own).
    config: tokio_postgres::Config,
    pool: Pool,
    /// Fence checks this process lost: a session another node had taken over.
    fence_losses: std::sync::atomic::AtomicU64,
}

/// Where placements are announced: the payload is the chosen node's id.
const PLACED_CHANNEL: &str = "callfeed_placed";

impl PostgresStore {
    /// Fence checks this process lost so far.
    pub fn fence_losses(&self) -> u64 {
        self.fence_losses.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shown)
            .finish()
    }
}

/// An error and what caused it, as one line: the pool's own message says little alone.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = crate::redact::redact_store_url(url);
        let failed = |reason: String| StoreError::Postgres {
            url: shown.clone(),
            reason,
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| failed(format!("not a PostgreSQL URL ({e})")))?;
        config.connect_timeout(TIMEOUT);
        config.application_name("callfeed");
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| failed(with_causes(&e)))?;
        let store = Self {
            shown,
            config,
            pool,
            fence_losses: std::sync::atomic::AtomicU64::new(0),
        };
        store.migrate().await?;
        Ok(store)
    }

    fn failed(&self, reason: impl std::error::Error) -> StoreError {
        StoreError::Postgres {
            url: self.shown.clone(),
            reason: with_causes(&reason),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Postgres {
            url: self.shown.clone(),
            reason: format!(
                "cannot connect ({}); check the URL (--store or CALLFEED_STORE) and that the server runs",
                with_causes(&e)
            ),
        })
    }

    /// Brings the schema to [`SCHEMA_VERSION`], or refuses a newer one.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.failed(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.failed(e))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS callfeed_schema (version BIGINT NOT NULL)")
            .await
            .map_err(|e| self.failed(e))?;
        let found: i64 = tx
            .query_opt("SELECT version FROM callfeed_schema", &[])
            .await
            .map_err(|e| self.failed(e))?
            .map_or(0, |row| row.get(0));
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                url: self.shown.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for migration in &MIGRATIONS[found as usize..] {
            tx.batch_execute(migration)
                .await
                .map_err(|e| self.failed(e))?;
        }
        tx.execute("DELETE FROM callfeed_schema", &[])
            .await
            .map_err(|e| self.failed(e))?;
        tx.execute(
            "INSERT INTO callfeed_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await
        .map_err(|e| self.failed(e))?;
        tx.commit().await.map_err(|e| self.failed(e))
    }

    fn timed_out(&self) -> StoreError {
        StoreError::Postgres {
            url: self.shown.clone(),
            reason: format!("no answer within {} s", TIMEOUT.as_secs()),
        }
    }

    async fn exec(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        tokio::time::timeout(TIMEOUT, client.execute(sql, args))
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.failed(e))
    }

    async fn query(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        tokio::time::timeout(TIMEOUT, client.query(sql, args))
            .await
            .map_err(|_| self.timed_out())?
            .map_err(|e| self.failed(e))
    }
}

impl Journal for PostgresStore {
    async fn admit(&self, id: &str, room: &str, robot: &str) -> Result<Admission, StoreError> {
        let client = self.client().await?;
        let owner = process_identity();
        let args: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&id, &room, &robot, &owner];
        let insert = client.execute(
            "INSERT INTO sessions (id, room, robot, state, owner) VALUES ($1, $2, $3, 'preparing', $4)",
            &args,
        );
        let inserted = tokio::time::timeout(TIMEOUT, insert)
            .await
            .map_err(|_| self.timed_out())?;
        match inserted {
            Ok(_) => Ok(Admission::Admitted),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // On the same connection: a second one from a pool all taken by admissions
                // would never come.
                let existing = client
                    .query_opt(ACTIVE_FOR, &[&room, &robot])
                    .await
                    .map_err(|e| self.failed(e))?
                    .map(|r| r.get(0))
                    .unwrap_or_default();
                Ok(Admission::Busy { existing })
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    async fn set_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET state = $2, updated_at = now() WHERE id = $1 AND owner = $3",
            &[&id, &state, &process_identity()],
        )
        .await
        .map(drop)
    }

    async fn set_call(&self, id: &str, call_id: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET call_id = $2, updated_at = now() WHERE id = $1 AND owner = $3",
            &[&id, &call_id, &process_identity()],
        )
        .await
        .map(drop)
    }

    async fn set_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET task_id = $2, updated_at = now() WHERE id = $1 AND owner = $3",
            &[&id, &task_id, &process_identity()],
        )
        .await
        .map(drop)
    }

    async fn set_publish_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET publish_task_id = $2, updated_at = now() WHERE id = $1 AND owner = $3",
            &[&id, &task_id, &process_identity()],
        )
        .await
        .map(drop)
    }

    async fn finish(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET result = $2, note = $3, state = 'ended', pending_result = NULL, updated_at = now() WHERE id = $1 AND owner = $4",
            &[&id, &result, &note, &process_identity()],
        )
        .await
        .map(drop)
    }

    async fn teardown_pending(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET state = 'teardown_pending', pending_result = $2, note = $3, updated_at = now() WHERE id = $1 AND owner = $4",
            &[&id, &result, &note, &process_identity()],
        )
        .await
        .map(drop)
    }

    async fn active_for(&self, room: &str, robot: &str) -> Result<Option<String>, StoreError> {
        let rows = self.query(ACTIVE_FOR, &[&room, &robot]).await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn open_sessions(&self) -> Result<Vec<OpenSession>, StoreError> {
        let rows = self
            .query(
                // An owner without a node row, or whose lease ran out, is gone.
                "SELECT s.id, s.call_id, s.task_id, s.pending_result, s.note, s.owner,
                        (n.id IS NULL OR n.lease_until < now()) AS owner_gone,
                        s.state = 'placed' AS placed, s.publish_task_id
                 FROM sessions s LEFT JOIN nodes n ON n.id = s.owner
                 WHERE s.result IS NULL ORDER BY s.created_at, s.id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let pending: Option<String> = r.get(3);
                let note: Option<String> = r.get(4);
                OpenSession {
                    id: r.get(0),
                    call_id: r.get(1),
                    task_id: r.get(2),
                    publish_task_id: r.get(8),
                    pending: pending.map(|p| (p, note.unwrap_or_default())),
                    owner: r.get(5),
                    owner_gone: Some(r.get(6)),
                    placed: r.get(7),
                }
            })
            .collect())
    }

    async fn call_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .query("SELECT call_id FROM sessions WHERE id = $1", &[&id])
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    async fn result_of(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let rows = self
            .query(
                "SELECT result, note FROM sessions WHERE id = $1 AND result IS NOT NULL",
                &[&id],
            )
            .await?;
        Ok(rows
            .first()
            .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default())))
    }

    async fn fence(&self, id: &str) -> Result<bool, StoreError> {
        let me = process_identity();
        self.exec(
            "UPDATE sessions SET updated_at = now() WHERE id = $1 AND result IS NULL AND owner = $2",
            &[&id, &me],
        )
        .await
        .map(|n| {
            if n != 1 {
                self.fence_losses
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            n == 1
        })
    }

    async fn claim(&self, id: &str, from: Option<&str>) -> Result<bool, StoreError> {
        let me = process_identity();
        self.exec(
            "UPDATE sessions SET owner = $2, epoch = epoch + 1, updated_at = now()
             WHERE id = $1 AND result IS NULL AND owner IS NOT DISTINCT FROM $3",
            &[&id, &me, &from],
        )
        .await
        .map(|n| n == 1)
    }

    async fn whereabouts(&self, id: &str) -> Result<Option<Whereabouts>, StoreError> {
        let rows = self
            .query(
                "SELECT s.owner, CASE WHEN n.lease_until > now() THEN n.api_url END,
                        s.result, s.note, s.state
                 FROM sessions s LEFT JOIN nodes n ON n.id = s.owner WHERE s.id = $1",
                &[&id],
            )
            .await?;
        Ok(rows.first().map(|r| {
            let result: Option<String> = r.get(2);
            let note: Option<String> = r.get(3);
            Whereabouts {
                owner: r.get(0),
                live_node_api: r.get(1),
                result: result.map(|res| (res, note.unwrap_or_default())),
                state: r.get(4),
            }
        }))
    }
}

impl EventLog for PostgresStore {
    async fn append_event(&self, session: &str, kind: &str, data: &str) -> Result<i64, StoreError> {
        let rows = self
            .query(
                "INSERT INTO events (session, kind, data) VALUES ($1, $2, $3) RETURNING seq",
                &[&session, &kind, &data],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }

    async fn events_after(
        &self,
        session: &str,
        after: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows = self
            .query(
                "SELECT seq, kind, data FROM events WHERE session = $1 AND seq > $2 ORDER BY seq",
                &[&session, &after],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn all_events_after(&self, after: i64, limit: u32) -> Result<Vec<FeedEvent>, StoreError> {
        let rows = self
            .query(
                "SELECT seq, session, kind, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| FeedEvent {
                seq: r.get(0),
                session: r.get(1),
                kind: r.get(2),
                data: r.get(3),
            })
            .collect())
    }

    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let rows = self
            .query("SELECT COALESCE(MAX(seq), 0)::bigint FROM events", &[])
            .await?;
        Ok(rows.first().map_or(0, |r| r.get(0)))
    }
}
