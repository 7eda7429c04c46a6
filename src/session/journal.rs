//! The session journal: every session, CallId and TaskId recorded in SQLite as soon as
//! they exist, so a crashed process's leftovers can be found and stopped on the next start.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
#[error("session journal {path}: {source}")]
pub struct JournalError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

/// A session the journal says was never finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub id: String,
    pub call_id: Option<String>,
    pub task_id: Option<String>,
}

pub struct Journal {
    path: String,
    db: Mutex<Connection>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Journal {
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let shown = path.display().to_string();
        let err = |source| JournalError {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let db = Connection::open(path).map_err(err)?;
        // WAL: a crash mid-write never loses what was committed before it.
        db.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS sessions (
               id TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
               room TEXT NOT NULL, robot TEXT NOT NULL, state TEXT NOT NULL,
               call_id TEXT, task_id TEXT, result TEXT, note TEXT);
             CREATE INDEX IF NOT EXISTS open_sessions ON sessions(result) WHERE result IS NULL;",
        )
        .map_err(err)?;
        Ok(Self {
            path: shown,
            db: Mutex::new(db),
        })
    }

    fn exec(&self, sql: &str, args: impl rusqlite::Params) -> Result<(), JournalError> {
        self.db
            .lock()
            .expect("journal lock")
            .execute(sql, args)
            .map(|_| ())
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
    }

    pub fn create(&self, id: &str, room: &str, robot: &str) -> Result<(), JournalError> {
        let now = now_ms();
        self.exec(
            "INSERT INTO sessions (id, created_ms, updated_ms, room, robot, state) VALUES (?1, ?2, ?2, ?3, ?4, 'preparing')",
            params![id, now, room, robot],
        )
    }

    pub fn set_state(&self, id: &str, state: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE sessions SET state = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, state, now_ms()],
        )
    }

    pub fn set_call(&self, id: &str, call_id: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE sessions SET call_id = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, call_id, now_ms()],
        )
    }

    pub fn set_task(&self, id: &str, task_id: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE sessions SET task_id = ?2, updated_ms = ?3 WHERE id = ?1",
            params![id, task_id, now_ms()],
        )
    }

    pub fn finish(&self, id: &str, result: &str, note: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE sessions SET result = ?2, note = ?3, state = 'ended', updated_ms = ?4 WHERE id = ?1",
            params![id, result, note, now_ms()],
        )
    }

    /// An unfinished session already using this room and robot, if any.
    pub fn active_for(&self, room: &str, robot: &str) -> Result<Option<String>, JournalError> {
        self.db
            .lock()
            .expect("journal lock")
            .query_row(
                "SELECT id FROM sessions WHERE result IS NULL AND room = ?1 AND robot = ?2",
                params![room, robot],
                |r| r.get(0),
            )
            .optional()
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
    }

    pub fn open_sessions(&self) -> Result<Vec<OpenSession>, JournalError> {
        let db = self.db.lock().expect("journal lock");
        let err = |source| JournalError {
            path: self.path.clone(),
            source,
        };
        let mut stmt = db
            .prepare("SELECT id, call_id, task_id FROM sessions WHERE result IS NULL ORDER BY created_ms")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(OpenSession {
                    id: r.get(0)?,
                    call_id: r.get(1)?,
                    task_id: r.get(2)?,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// The CallId recorded for a session, once it has one.
    pub fn call_of(&self, id: &str) -> Result<Option<String>, JournalError> {
        self.db
            .lock()
            .expect("journal lock")
            .query_row(
                "SELECT call_id FROM sessions WHERE id = ?1",
                params![id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
    }

    /// The result recorded for a session, if it has ended.
    pub fn result_of(&self, id: &str) -> Result<Option<(String, String)>, JournalError> {
        self.db
            .lock()
            .expect("journal lock")
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
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
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
            let j = Journal::open(&path).unwrap();
            j.create("s1", "string:r", "robot").unwrap();
            j.set_call("s1", "c1").unwrap();
            j.set_task("s1", "t1").unwrap();
            j.create("s2", "string:q", "robot").unwrap();
            j.finish("s2", "completed", "").unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(
            j.open_sessions().unwrap(),
            [OpenSession {
                id: "s1".into(),
                call_id: Some("c1".into()),
                task_id: Some("t1".into())
            }]
        );
        assert_eq!(
            j.active_for("string:r", "robot").unwrap().as_deref(),
            Some("s1")
        );
        j.finish("s1", "recovered", "stopped task t1, ended call c1")
            .unwrap();
        assert!(j.open_sessions().unwrap().is_empty());
        assert_eq!(j.result_of("s1").unwrap().unwrap().0, "recovered");
    }
}
