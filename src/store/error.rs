//! Why the store could not do something, whichever backend and role: the one error every
//! part of `store` returns.

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session journal {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("session store {url}: {reason}")]
    Postgres {
        /// The store's URL without its password.
        url: String,
        reason: String,
    },
    #[error(
        "session store {url}: its schema is version {found}, newer than this callfeed knows ({supported}); run a callfeed at least as new as the one that wrote it"
    )]
    NewerSchema {
        url: String,
        found: i64,
        supported: i64,
    },
}
