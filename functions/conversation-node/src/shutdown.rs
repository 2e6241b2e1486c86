//! Stopping cleanly: the process's stop signal, and the owner of the node's background loops, which
//! shutdown cancels and waits for.

use tokio::task::JoinSet;

/// Resolves on SIGTERM (a deploy stopping the container) or SIGINT (Ctrl-C).
pub async fn signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}

/// The node's long-running loops (the cluster dispatcher, the heartbeat, the sweep, the callbacks
/// worker): they run until the node stops, then [`Background::stop`] cancels each at its next await
/// point and waits until every one has ended. Dropped without `stop`, they are cancelled all the same.
#[derive(Default)]
pub(crate) struct Background(JoinSet<()>);

impl Background {
    pub(crate) fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.spawn(task);
    }

    /// Cancels every loop and waits for each to end.
    pub(crate) async fn stop(mut self) {
        self.0.abort_all();
        while let Some(ended) = self.0.join_next().await {
            if let Err(error) = ended
                && error.is_panic()
            {
                tracing::error!(reason = %error, "a background loop had panicked");
            }
        }
    }
}
