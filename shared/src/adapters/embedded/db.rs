//! The SQLite database behind the embedded adapters: one connection, owned by one thread that runs the
//! adapters' work in arrival order. One long-lived thread rather than a blocking task per call: the
//! calls are serial on one connection anyway, and a task per call made the blocking pool grow to a
//! hundred threads under load, each waking up only to wait for the connection.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::mpsc;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use crate::ports::StoreError;

/// Work for the database thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the embedded database; cheap to clone. The database thread ends with the last handle.
#[derive(Clone)]
pub struct EmbeddedDb {
    jobs: mpsc::Sender<Job>,
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

    fn configure(mut connection: Connection) -> Result<Self, StoreError> {
        // WAL with NORMAL sync: durable across a process crash, one fsync per checkpoint, not per write.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(unavailable)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("embedded-store".into())
            .spawn(move || {
                for job in queue {
                    // A panicking job drops its reply (its caller gets an error); the thread goes on.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut connection)));
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` with the connection on the database thread; SQLite calls never stall the async
    /// runtime.
    pub async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let _ = reply.send(work(connection));
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the embedded store's thread stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the embedded store failed while running a call".into())
        })?
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
