//! Listening before the node's ports are ready. A clustered node started while its Redis is down
//! (wiring retries it with capped backoff) listens at once and answers `/health` 200, so that a
//! container health check keeps the task alive, and every other route 503 with a reason, `/ready`
//! included, so that a load balancer sends it nothing. Once the ports are ready the node's own router
//! serves the same socket (connections queue meanwhile, none is refused). A stop signal during the
//! wait ends it: the process exits cleanly.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use shared::domain::NodeId;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::error::ApiError;

/// What a probe or a request gets while the node waits.
const WAITING: &str = "the node is starting: waiting for its coordination backend (Redis)";

/// How the wait ended.
pub enum Waited<T> {
    /// The ports are ready; the listener to serve them on.
    Ready(T, TcpListener),
    /// The stop signal came first.
    Stopped,
}

/// Answers the waiting routes on `listener` until `ready` resolves or `stop` does.
pub async fn serve_until_ready<T>(
    listener: std::net::TcpListener,
    node_id: &NodeId,
    ready: impl Future<Output = T>,
    stop: &mut (impl Future<Output = ()> + Unpin),
) -> std::io::Result<Waited<T>> {
    // A second handle of the same socket: the waiting server drops its own when it ends.
    let waiting = TcpListener::from_std(listener.try_clone()?)?;
    let (done, on_done) = oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(waiting, waiting_routes(node_id))
            .with_graceful_shutdown(async move {
                let _ = on_done.await;
            })
            .into_future(),
    );
    let outcome = tokio::select! {
        value = ready => Some(value),
        () = stop => None,
    };
    let _ = done.send(());
    // Only short probe requests are open: the graceful stop ends at once.
    let _ = server.await;
    match outcome {
        Some(value) => Ok(Waited::Ready(value, TcpListener::from_std(listener)?)),
        None => Ok(Waited::Stopped),
    }
}

fn waiting_routes(node_id: &NodeId) -> Router {
    let health = json!({ "status": "ok", "node_id": node_id, "phase": "starting" });
    Router::new()
        .route("/health", get(async move || Json(health)))
        .route(
            "/ready",
            get(async || {
                let answer = json!({ "status": "starting", "reason": WAITING });
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(answer))
            }),
        )
        .fallback(async || ApiError::Unavailable(WAITING.to_owned()))
}
