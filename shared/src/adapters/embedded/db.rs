//! The SQLite database behind the embedded adapters: one connection, used from blocking threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::ports::StoreError;

/// A handle to the embedded database; cheap to clone.
#[derive(Clone)]
pub struct EmbeddedDb {
    connection: Arc<Mutex<Connection>>,
}

impl EmbeddedDb {
    /// Opens (creating if needed) `<data_dir>/store.sqlite`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let connection = Connection::open(data_dir.join("store.sqlite")).map_err(unavailable)?;
        Self::configure(connection)
    }

    /// An in-memory database, for tests that need no file.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::configure(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn configure(connection: Connection) -> Result<Self, StoreError> {
        // WAL with NORMAL sync: durable across a process crash, one fsync per checkpoint, not per write.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(unavailable)?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` with the connection on a blocking thread; SQLite calls never stall the async runtime.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut guard = connection
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store task failed: {e}")))?
    }
}

/// A transaction that reads, then writes. It takes the write lock at its start: a deferred one that
/// another process (a second node or the CLI on the same file) writes under meanwhile fails at once
/// with "database is locked", which `busy_timeout` does not wait out.
pub(crate) fn write_transaction(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)
}

/// Maps a SQLite error to the port's error.
pub(crate) fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {error}"))
}

/// Maps a stored value that does not decode.
pub(crate) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}
