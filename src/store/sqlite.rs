//! The embedded backend: one node's sessions in SQLite (WAL), created 0600 under
//! `$XDG_STATE_HOME/callfeed`. A crashed run's leftovers are found by their owner process
//! being gone (see [`OpenSession::orphaned`]) and stopped on the next start. It has the
//! journal and the event log; with no other node, it has no cluster.
//!
//! Every statement runs on tokio's blocking pool ([`SqliteStore::run`]): a commit waits for
//! the disk, and a write waits up to rusqlite's busy timeout (5 s) while another process
//! (a `callfeed call` beside a `serve`) holds the database; on a runtime thread either wait
//! would stall every task scheduled there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::unix_ms;

use super::error::StoreError;
use super::events::{EventLog, FeedEvent};
use super::journal::{Admission, Journal, OpenSession, Whereabouts};
use super::owner::process_identity;

pub struct SqliteStore {
    path: String,
    /// Locked on the blocking pool only, by [`SqliteStore::run`].
    db: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// `$XDG_STATE_HOME/callfeed/journal.sqlite`, else `~/.local/state/callfeed/journal.sqlite`.
pub fn default_path() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("callfeed")
        .join("journal.sqlite")
}

/// The journal names rooms, robots, CallIds and TaskIds: only its owner reads it. SQLite
/// gives its WAL and shared-memory files the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The schema, by `user_version`. Version 2: at most one unfinished session per room and
/// robot (so admission is one atomic insert), and a result kept aside while a teardown is
/// not yet confirmed.
const SCHEMA: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
     CREATE TABLE IF NOT EXISTS sessions (
       id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
       room TEXT NOT NULL, robot TEXT NOT NULL, state TEXT NOT NULL,
       call_id TEXT, task_id TEXT, result TEXT, note TEXT);";
const MIGRATE_TO_2: &str = "ALTER TABLE sessions ADD COLUMN pending_result TEXT;
     -- A run before admission was atomic may have left two open sessions on one room: keep
     -- both for recovery, under distinct keys.
     UPDATE sessions SET room = room || '#' || id WHERE result IS NULL AND id NOT IN
       (SELECT MIN(id) FROM sessions WHERE result IS NULL GROUP BY room, robot);
     DROP INDEX IF EXISTS open_sessions;
     CREATE UNIQUE INDEX one_open_session_per_room ON sessions(room, robot) WHERE result IS NULL;
     PRAGMA user_version = 2;";
/// Version 3: which process runs a session, so recovery never stops another live process's.
const MIGRATE_TO_3: &str = "ALTER TABLE sessions ADD COLUMN owner TEXT; PRAGMA user_version = 3;";
/// Version 4: each session's events, numbered, so an event stream can be resumed.
const MIGRATE_TO_4: &str = "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
       session TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, at_ms INTEGER NOT NULL);
     CREATE INDEX events_by_session ON events(session, seq);
     PRAGMA user_version = 4;";
/// Version 5: the relay to CDN a session's room monitor started, stopped with the rest.
const MIGRATE_TO_5: &str =
    "ALTER TABLE sessions ADD COLUMN publish_task_id TEXT; PRAGMA user_version = 5;";

impl SqliteStore {
    /// Opens (creating it 0600) and migrates the journal at `path`. It blocks: async code
    /// calls it on the blocking pool.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        create_private(path).map_err(|e| {
            err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(e.to_string()),
            ))
        })?;
        let db = Connection::open(path).map_err(err)?;
        // WAL: a crash mid-write never loses what was committed before it.
        db.execute_batch(SCHEMA).map_err(err)?;
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        for (to, migration) in [
            (2, MIGRATE_TO_2),
            (3, MIGRATE_TO_3),
            (4, MIGRATE_TO_4),
            (5, MIGRATE_TO_5),
        ] {
            if version < to {
                db.execute_batch(&format!("BEGIN; {migration} COMMIT;"))
                    .map_err(err)?;
            }
        }
        Ok(Self {
            path: shown,
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// Runs `work` with the connection on tokio's blocking pool, one caller at a time.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || work(&db.lock())).await {
            Ok(done) => done.map_err(|source| self.error(source)),
            // A panic in a statement is its caller's, as when the statement ran inline.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down: nothing runs on its pool any more.
            Err(e) => Err(self.error(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
                Some(e.to_string()),
            ))),
        }
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// Records a new session if its room and robot are free, in one statement: of any number of
/// requests for one room at once, exactly one is admitted.
fn admit(db: &Connection, id: &str, room: &str, robot: &str) -> rusqlite::Result<Admission> {
    let inserted = db.execute(
        "INSERT INTO sessions (id, created_ms, updated_ms, room, robot, state, owner) VALUES (?1, ?2, ?2, ?3, ?4, 'preparing', ?5)",
        params![id, unix_ms(), room, robot, process_identity()],
    );
    match inserted {
        Ok(_) => Ok(Admission::Admitted),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let existing = active_for(db, room, robot)?.unwrap_or_default();
            Ok(Admission::Busy { existing })
        }
        Err(e) => Err(e),
    }
}

fn active_for(db: &Connection, room: &str, robot: &str) -> rusqlite::Result<Option<String>> {
    db.query_row(
        "SELECT id FROM sessions WHERE result IS NULL AND room = ?1 AND robot = ?2",
        params![room, robot],
        |r| r.get(0),
    )
    .optional()
}

fn open_sessions(db: &Connection) -> rusqlite::Result<Vec<OpenSession>> {
    let mut stmt = db.prepare(
        "SELECT id, call_id, task_id, pending_result, note, owner, publish_task_id FROM sessions WHERE result IS NULL ORDER BY created_ms",
    )?;
    let rows = stmt.query_map([], |r| {
        let pending: Option<String> = r.get(3)?;
        let note: Option<String> = r.get(4)?;
        Ok(OpenSession {
            id: r.get(0)?,
            call_id: r.get(1)?,
            task_id: r.get(2)?,
            publish_task_id: r.get(6)?,
            pending: pending.map(|p| (p, note.unwrap_or_default())),
            owner: r.get(5)?,
            owner_gone: None,
            placed: false,
        })
    })?;
    rows.collect()
}

/// Sets one column of a session's row (and its update time).
async fn set(
    store: &SqliteStore,
    sql: &'static str,
    id: &str,
    value: &str,
) -> Result<(), StoreError> {
    let [id, value] = [id, value].map(str::to_owned);
    store
        .run(move |db| db.execute(sql, params![id, value, unix_ms()]))
        .await
        .map(drop)
}

impl Journal for SqliteStore {
    async fn admit(&self, id: &str, room: &str, robot: &str) -> Result<Admission, StoreError> {
        let [id, room, robot] = [id, room, robot].map(str::to_owned);
        self.run(move |db| admit(db, &id, &room, &robot)).await
    }
    async fn set_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        let sql = "UPDATE sessions SET state = ?2, updated_ms = ?3 WHERE id = ?1";
        set(self, sql, id, state).await
    }
    async fn set_call(&self, id: &str, call_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE sessions SET call_id = ?2, updated_ms = ?3 WHERE id = ?1";
        set(self, sql, id, call_id).await
    }
    async fn set_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE sessions SET task_id = ?2, updated_ms = ?3 WHERE id = ?1";
        set(self, sql, id, task_id).await
    }
    async fn set_publish_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE sessions SET publish_task_id = ?2, updated_ms = ?3 WHERE id = ?1";
        set(self, sql, id, task_id).await
    }
    async fn finish(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        let [id, result, note] = [id, result, note].map(str::to_owned);
        self.run(move |db| {
            db.execute(
                "UPDATE sessions SET result = ?2, note = ?3, state = 'ended', pending_result = NULL, updated_ms = ?4 WHERE id = ?1",
                params![id, result, note, unix_ms()],
            )
        })
        .await
        .map(drop)
    }
    async fn teardown_pending(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        let [id, result, note] = [id, result, note].map(str::to_owned);
        self.run(move |db| {
            db.execute(
                "UPDATE sessions SET state = 'teardown_pending', pending_result = ?2, note = ?3, updated_ms = ?4 WHERE id = ?1",
                params![id, result, note, unix_ms()],
            )
        })
        .await
        .map(drop)
    }
    async fn active_for(&self, room: &str, robot: &str) -> Result<Option<String>, StoreError> {
        let [room, robot] = [room, robot].map(str::to_owned);
        self.run(move |db| active_for(db, &room, &robot)).await
    }
    async fn open_sessions(&self) -> Result<Vec<OpenSession>, StoreError> {
        self.run(open_sessions).await
    }
    async fn call_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        let id = id.to_owned();
        self.run(move |db| {
            db.query_row(
                "SELECT call_id FROM sessions WHERE id = ?1",
                params![id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
        .await
    }
    async fn result_of(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let id = id.to_owned();
        self.run(move |db| {
            db.query_row(
                "SELECT result, note FROM sessions WHERE id = ?1 AND result IS NOT NULL",
                params![id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    ))
                },
            )
            .optional()
        })
        .await
    }
    async fn claim(&self, id: &str, from: Option<&str>) -> Result<bool, StoreError> {
        let (id, from) = (id.to_owned(), from.map(str::to_owned));
        let changed = self.run(move |db| {
            db.execute(
                "UPDATE sessions SET owner = ?2, updated_ms = ?4 WHERE id = ?1 AND result IS NULL AND owner IS ?3",
                params![id, process_identity(), from, unix_ms()],
            )
        });
        Ok(changed.await? == 1)
    }
    async fn fence(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let changed = self.run(move |db| {
            db.execute(
                "UPDATE sessions SET updated_ms = ?3 WHERE id = ?1 AND result IS NULL AND owner = ?2",
                params![id, process_identity(), unix_ms()],
            )
        });
        Ok(changed.await? == 1)
    }
    async fn whereabouts(&self, id: &str) -> Result<Option<Whereabouts>, StoreError> {
        let id = id.to_owned();
        // One node: nobody else runs its sessions; only how they ended can be told.
        self.run(move |db| {
            db.query_row(
                "SELECT owner, result, note, state FROM sessions WHERE id = ?1",
                params![id],
                |r| {
                    let result: Option<String> = r.get(1)?;
                    let note: Option<String> = r.get(2)?;
                    Ok(Whereabouts {
                        owner: r.get(0)?,
                        live_node_api: None,
                        result: result.map(|res| (res, note.unwrap_or_default())),
                        state: r.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }
}

impl EventLog for SqliteStore {
    async fn append_event(&self, session: &str, kind: &str, data: &str) -> Result<i64, StoreError> {
        let [session, kind, data] = [session, kind, data].map(str::to_owned);
        self.run(move |db| {
            db.execute(
                "INSERT INTO events (session, kind, data, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![session, kind, data, unix_ms()],
            )?;
            Ok(db.last_insert_rowid())
        })
        .await
    }
    async fn events_after(
        &self,
        session: &str,
        after: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let session = session.to_owned();
        self.run(move |db| {
            let mut stmt = db.prepare(
                "SELECT seq, kind, data FROM events WHERE session = ?1 AND seq > ?2 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![session, after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect()
        })
        .await
    }
    async fn all_events_after(&self, after: i64, limit: u32) -> Result<Vec<FeedEvent>, StoreError> {
        self.run(move |db| {
            let mut stmt = db.prepare(
                "SELECT seq, session, kind, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit], |r| {
                Ok(FeedEvent {
                    seq: r.get(0)?,
                    session: r.get(1)?,
                    kind: r.get(2)?,
                    data: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        self.run(|db| db.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_sessions_survive_a_reopen_and_close_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            let j = SqliteStore::open(&path).unwrap();
            assert_eq!(
                j.admit("s1", "string:r", "robot").await.unwrap(),
                Admission::Admitted
            );
            j.set_call("s1", "c1").await.unwrap();
            j.set_task("s1", "t1").await.unwrap();
            assert_eq!(
                j.admit("s3", "string:r", "robot").await.unwrap(),
                Admission::Busy {
                    existing: "s1".into()
                }
            );
            j.admit("s2", "string:q", "robot").await.unwrap();
            j.finish("s2", "completed", "").await.unwrap();
        }
        let j = SqliteStore::open(&path).unwrap();
        let open = j.open_sessions().await.unwrap();
        assert_eq!(
            open,
            [OpenSession {
                id: "s1".into(),
                call_id: Some("c1".into()),
                task_id: Some("t1".into()),
                publish_task_id: None,
                pending: None,
                owner: Some(process_identity()),
                owner_gone: None,
                placed: false,
            }]
        );
        assert_eq!(
            j.active_for("string:r", "robot").await.unwrap().as_deref(),
            Some("s1")
        );
        assert!(!open[0].orphaned(), "this process still runs it");
        let crashed = OpenSession {
            owner: Some("4194303:1".into()),
            ..open[0].clone()
        };
        assert!(crashed.orphaned(), "no such process");
        j.finish("s1", "recovered", "stopped task t1, ended call c1")
            .await
            .unwrap();
        assert!(j.open_sessions().await.unwrap().is_empty());
        assert_eq!(j.result_of("s1").await.unwrap().unwrap().0, "recovered");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads the journal");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_admissions_for_one_room_admit_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        let j = Arc::new(SqliteStore::open(&dir.path().join("j.sqlite")).unwrap());
        let asks: Vec<_> = (0..8)
            .map(|i| {
                let j = j.clone();
                tokio::spawn(async move { j.admit(&format!("s{i}"), "string:r", "robot").await })
            })
            .collect();
        let mut admitted = 0;
        for ask in asks {
            if ask.await.unwrap().unwrap() == Admission::Admitted {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 1);
        j.teardown_pending("s0", "completed", "cloud unreachable")
            .await
            .ok();
        assert!(j.open_sessions().await.unwrap().len() <= 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_statement_leaves_the_runtime_thread_free() {
        // A statement that waits (here on a lock another connection holds) must not stall
        // the one runtime thread: a timer on it still fires.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let j = SqliteStore::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE;").unwrap();
        let write = j.set_state("s1", "ringing");
        tokio::pin!(write);
        let ticked = tokio::select! {
            _ = &mut write => false,
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => true,
        };
        assert!(ticked, "the write held the runtime thread");
        other.execute_batch("COMMIT;").unwrap();
        write.await.unwrap();
    }
}
