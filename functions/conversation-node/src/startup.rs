//! Listening before the node's ports are ready. A clustered node started while its Redis is down
//! (wiring retries it with capped backoff) listens at once: the public port answers `/health` 200, so
//! that a container health check keeps the task alive, and every other route 503 with a reason, so
//! that a load balancer sends it nothing; the metrics listener answers every route (`/ready` included)
//! 503 with a reason. Once the ports are ready the node's own routers serve the same sockets
//! (connections queue meanwhile, none is refused). A stop signal during the wait ends it: the process
//! exits cleanly.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::Listeners;
use crate::error::ApiError;

/// What a probe or a request gets while the node waits.
const WAITING: &str = "the node is starting: waiting for its coordination backend (Redis)";

/// How the wait ended.
pub enum Waited<T> {
    /// The ports are ready; the listeners to serve them on.
    Ready(T, Listeners),
    /// The stop signal came first.
    Stopped,
}

/// Answers the waiting routes on the `public` and `metrics` listeners until `ready` resolves or
/// `stop` does.
pub async fn serve_until_ready<T>(
    public: std::net::TcpListener,
    metrics: std::net::TcpListener,
    ready: impl Future<Output = T>,
    stop: &mut (impl Future<Output = ()> + Unpin),
) -> std::io::Result<Waited<T>> {
    let (done, on_done) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for (listener, routes) in [(&public, public_routes()), (&metrics, private_routes())] {
        // A second handle of the same socket: the waiting server drops its own when it ends.
        let waiting = TcpListener::from_std(listener.try_clone()?)?;
        let mut on_done = on_done.clone();
        servers.spawn(
            axum::serve(waiting, routes)
                .with_graceful_shutdown(async move {
                    let _ = on_done.wait_for(|done| *done).await;
                })
                .into_future(),
        );
    }
    let outcome = tokio::select! {
        value = ready => Some(value),
        () = stop => None,
    };
    let _ = done.send(true);
    // Only short probe requests are open: the graceful stops end at once.
    servers.join_all().await;
    match outcome {
        Some(value) => Ok(Waited::Ready(
            value,
            Listeners {
                public: TcpListener::from_std(public)?,
                metrics: TcpListener::from_std(metrics)?,
            },
        )),
        None => Ok(Waited::Stopped),
    }
}

fn public_routes() -> Router {
    Router::new()
        .route("/health", get(async || Json(json!({ "status": "ok" }))))
        .fallback(async || ApiError::Unavailable(WAITING.to_owned()))
}

fn private_routes() -> Router {
    Router::new().fallback(async || {
        let answer = json!({ "status": "starting", "reason": WAITING });
        (StatusCode::SERVICE_UNAVAILABLE, Json(answer))
    })
}
