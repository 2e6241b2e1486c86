//! The REST API (JSON in and out):
//! - [`conversations`]: `/api/conversations` and its sub-resources, for users.
//! - [`internal`]: `POST /internal/proactive`, for EventBridge.
//! - [`probes`]: `/health`, `/ready`, `/metrics`.

pub mod conversations;
pub mod internal;
pub mod probes;

use axum::Router;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::Node;

/// Every REST route, on the node's state.
pub fn routes(node: Node) -> Router {
    Router::new()
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/metrics", get(probes::metrics))
        .route(
            "/api/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route("/api/conversations/{id}", get(conversations::get))
        .route(
            "/api/conversations/{id}/events",
            get(conversations::events).post(conversations::send_action),
        )
        .route("/api/conversations/{id}/stop", post(conversations::stop))
        .route("/internal/proactive", post(internal::proactive))
        .method_not_allowed_fallback(async || ApiError::MethodNotAllowed("method not allowed"))
        .with_state(node)
}
