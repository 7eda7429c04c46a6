//! The embedded backend: one node's sessions in SQLite (WAL), created 0600 under
//! `$XDG_STATE_HOME/callfeed`. A crashed run's leftovers are found by their owner process
//! being gone (see [`OpenSession::orphaned`]) and stopped on the next start.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

use super::error::StoreError;
use super::events::{EventLog, FeedEvent};
use super::journal::{Admission, Journal, OpenSession, Whereabouts};
use super::owner::process_identity;

pub struct SqliteStore {
    path: String,
    db: Mutex<Connection>,
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

impl SqliteStore {
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
        if version < 2 {
            db.execute_batch(&format!("BEGIN; {MIGRATE_TO_2} COMMIT;"))
                .map_err(err)?;
        }
        if version < 3 {
            db.execute_batch(&format!("BEGIN; {MIGRATE_TO_3} COMMIT;"))
                .map_err(err)?;
        }
        if version < 4 {
            db.execute_batch(&format!("BEGIN; {MIGRATE_TO_4} COMMIT;"))
                .map_err(err)?;
        }
        Ok(Self {
            path: shown,
            db: Mutex::new(db),
        })
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn exec(&self, sql: &str, args: impl rusqlite::Params) -> Result<(), StoreError> {
        self.db
            .lock()
            .execute(sql, args)
            .map(|_| ())
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    /// Records a new session if its room and robot are free, in one statement: of any number
    /// of requests for one room at once, exactly one is admitted.
    fn admit(&self, id: &str, room: &str, robot: &str) -> Result<Admission, StoreError> {
        let now = crate::clock::unix_ms();
        let inserted = self.db.lock().execute(
            "INSERT INTO sessions (id, created_ms, updated_ms, room, robot, state, owner) VALUES (?1, ?2, ?2, ?3, ?4, 'preparing', ?5)",
            params![id, now, room, robot, process_identity()],
        );
        match inserted {
            Ok(_) => Ok(Admission::Admitted),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let existing = Self::active_for(self, room, robot)?.unwrap_or_default();
                Ok(Admission::Busy { existing })
            }
            Err(e) => Err(self.error(e)),
        }
    }

    fn set_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET state = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, state, crate::clock::unix_ms()],
        )
    }

    fn set_call(&self, id: &str, call_id: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET call_id = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, call_id, crate::clock::unix_ms()],
        )
    }

    fn set_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET task_id = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, task_id, crate::clock::unix_ms()],
        )
    }

    /// The session is over, and the cloud confirmed its task and call gone.
    fn finish(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET result = ?2, note = ?3, state = 'ended', pending_result = NULL, updated_ms = ?4 WHERE id = ?1",
            params![id, result, note, crate::clock::unix_ms()],
        )
    }

    /// The session is over but the cloud has not confirmed its task or call gone: it stays
    /// open (and keeps its room) until a retry does.
    fn teardown_pending(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET state = 'teardown_pending', pending_result = ?2, note = ?3, updated_ms = ?4 WHERE id = ?1",
            params![id, result, note, crate::clock::unix_ms()],
        )
    }

    /// An unfinished session already using this room and robot, if any.
    fn active_for(&self, room: &str, robot: &str) -> Result<Option<String>, StoreError> {
        self.db
            .lock()
            .query_row(
                "SELECT id FROM sessions WHERE result IS NULL AND room = ?1 AND robot = ?2",
                params![room, robot],
                |r| r.get(0),
            )
            .optional()
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    fn open_sessions(&self) -> Result<Vec<OpenSession>, StoreError> {
        let db = self.db.lock();
        let err = |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        };
        let mut stmt = db
            .prepare("SELECT id, call_id, task_id, pending_result, note, owner FROM sessions WHERE result IS NULL ORDER BY created_ms")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                let pending: Option<String> = r.get(3)?;
                let note: Option<String> = r.get(4)?;
                Ok(OpenSession {
                    id: r.get(0)?,
                    call_id: r.get(1)?,
                    task_id: r.get(2)?,
                    pending: pending.map(|p| (p, note.unwrap_or_default())),
                    owner: r.get(5)?,
                    owner_gone: None,
                    placed: false,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// The CallId recorded for a session, once it has one.
    fn call_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.db
            .lock()
            .query_row(
                "SELECT call_id FROM sessions WHERE id = ?1",
                params![id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }

    /// The result recorded for a session, if it has ended.
    fn result_of(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        self.db
            .lock()
            .query_row(
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
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })
    }
}

impl Journal for SqliteStore {
    // Local, short writes under a lock never held across an await.
    async fn admit(&self, id: &str, room: &str, robot: &str) -> Result<Admission, StoreError> {
        Self::admit(self, id, room, robot)
    }
    async fn set_state(&self, id: &str, state: &str) -> Result<(), StoreError> {
        Self::set_state(self, id, state)
    }
    async fn set_call(&self, id: &str, call_id: &str) -> Result<(), StoreError> {
        Self::set_call(self, id, call_id)
    }
    async fn set_task(&self, id: &str, task_id: &str) -> Result<(), StoreError> {
        Self::set_task(self, id, task_id)
    }
    async fn finish(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        Self::finish(self, id, result, note)
    }
    async fn teardown_pending(&self, id: &str, result: &str, note: &str) -> Result<(), StoreError> {
        Self::teardown_pending(self, id, result, note)
    }
    async fn active_for(&self, room: &str, robot: &str) -> Result<Option<String>, StoreError> {
        Self::active_for(self, room, robot)
    }
    async fn open_sessions(&self) -> Result<Vec<OpenSession>, StoreError> {
        Self::open_sessions(self)
    }
    async fn call_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        Self::call_of(self, id)
    }
    async fn result_of(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        Self::result_of(self, id)
    }
    async fn claim(&self, id: &str, from: Option<&str>) -> Result<bool, StoreError> {
        let changed = self
            .db
            .lock()
            .execute(
                "UPDATE sessions SET owner = ?2, updated_ms = ?4 WHERE id = ?1 AND result IS NULL AND owner IS ?3",
                params![id, process_identity(), from, crate::clock::unix_ms()],
            )
            .map_err(|e| self.error(e))?;
        Ok(changed == 1)
    }
    async fn fence(&self, id: &str) -> Result<bool, StoreError> {
        let changed = self
            .db
            .lock()
            .execute(
                "UPDATE sessions SET updated_ms = ?3 WHERE id = ?1 AND result IS NULL AND owner = ?2",
                params![id, process_identity(), crate::clock::unix_ms()],
            )
            .map_err(|e| self.error(e))?;
        Ok(changed == 1)
    }
    async fn whereabouts(&self, id: &str) -> Result<Option<Whereabouts>, StoreError> {
        // One node: nobody else runs its sessions; only how they ended can be told.
        self.db
            .lock()
            .query_row(
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
            .map_err(|e| self.error(e))
    }
}

impl EventLog for SqliteStore {
    async fn append_event(&self, session: &str, kind: &str, data: &str) -> Result<i64, StoreError> {
        let db = self.db.lock();
        db.execute(
            "INSERT INTO events (session, kind, data, at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![session, kind, data, crate::clock::unix_ms()],
        )
        .map_err(|e| self.error(e))?;
        Ok(db.last_insert_rowid())
    }
    async fn events_after(
        &self,
        session: &str,
        after: i64,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let db = self.db.lock();
        let mut stmt = db
            .prepare(
                "SELECT seq, kind, data FROM events WHERE session = ?1 AND seq > ?2 ORDER BY seq",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![session, after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }
    async fn all_events_after(&self, after: i64, limit: u32) -> Result<Vec<FeedEvent>, StoreError> {
        let db = self.db.lock();
        let mut stmt = db
            .prepare(
                "SELECT seq, session, kind, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| self.error(e))?;
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok(FeedEvent {
                    seq: r.get(0)?,
                    session: r.get(1)?,
                    kind: r.get(2)?,
                    data: r.get(3)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))
    }
    async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let db = self.db.lock();
        db.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_sessions_survive_a_reopen_and_close_when_finished() {
        let dir = std::env::temp_dir().join(format!("callfeed-journal-{}", std::process::id()));
        let path = dir.join("j.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let j = SqliteStore::open(&path).unwrap();
            assert_eq!(
                j.admit("s1", "string:r", "robot").unwrap(),
                Admission::Admitted
            );
            j.set_call("s1", "c1").unwrap();
            j.set_task("s1", "t1").unwrap();
            assert_eq!(
                j.admit("s3", "string:r", "robot").unwrap(),
                Admission::Busy {
                    existing: "s1".into()
                }
            );
            j.admit("s2", "string:q", "robot").unwrap();
            j.finish("s2", "completed", "").unwrap();
        }
        let j = SqliteStore::open(&path).unwrap();
        assert_eq!(
            j.open_sessions().unwrap(),
            [OpenSession {
                id: "s1".into(),
                call_id: Some("c1".into()),
                task_id: Some("t1".into()),
                pending: None,
                owner: Some(process_identity()),
                owner_gone: None,
                placed: false,
            }]
        );
        assert_eq!(
            j.active_for("string:r", "robot").unwrap().as_deref(),
            Some("s1")
        );
        assert!(
            !j.open_sessions().unwrap()[0].orphaned(),
            "this process still runs it"
        );
        let crashed = OpenSession {
            owner: Some("4194303:1".into()),
            ..j.open_sessions().unwrap()[0].clone()
        };
        assert!(crashed.orphaned(), "no such process");
        j.finish("s1", "recovered", "stopped task t1, ended call c1")
            .unwrap();
        assert!(j.open_sessions().unwrap().is_empty());
        assert_eq!(j.result_of("s1").unwrap().unwrap().0, "recovered");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads the journal");
    }

    #[test]
    fn parallel_admissions_for_one_room_admit_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        let j = std::sync::Arc::new(SqliteStore::open(&dir.path().join("j.sqlite")).unwrap());
        let admitted: Vec<_> = (0..8)
            .map(|i| {
                let j = j.clone();
                std::thread::spawn(move || j.admit(&format!("s{i}"), "string:r", "robot").unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|a| *a == Admission::Admitted)
            .collect();
        assert_eq!(admitted.len(), 1);
        j.teardown_pending("s0", "completed", "cloud unreachable")
            .ok();
        let open = j.open_sessions().unwrap();
        assert!(open.len() <= 1);
    }
}
