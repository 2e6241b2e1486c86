//! Probes. On the public port, `/health`: the process answers (the load balancer's check, no details).
//! On the metrics listener (`METRICS_ADDR`, never routed by the load balancer), `/ready`: the stores and
//! the coordination backend answer, with the failures, the node's id and its agent; and `/metrics`
//! (Prometheus text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use shared::domain::ConversationId;

use super::Api;
use crate::error::ApiError;
use crate::metrics::CONTENT_TYPE;

/// The metrics listener's routes.
pub(crate) fn private_routes(api: Api) -> Router {
    Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(async || ApiError::MethodNotAllowed("method not allowed"))
        .fallback(async || ApiError::NotFound("no such route"))
        .with_state(api)
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(api): State<Api>) -> (StatusCode, Json<Value>) {
    let (status, mut body) = if api.lifecycle.is_shutting_down() {
        // Going away whatever the stores say: not worth asking them.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "shutting_down" }),
        )
    } else {
        match failed_checks(&api).await {
            failures if failures.is_empty() => (StatusCode::OK, json!({ "status": "ready" })),
            failures => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "unavailable", "failures": failures }),
            ),
        }
    };
    body["node_id"] = json!(api.liveness.node_id());
    body["agent"] = json!(api.agent_label);
    (status, Json(body))
}

/// The stores and the coordination backend that do not answer, with why.
async fn failed_checks(api: &Api) -> Vec<Value> {
    // Reads of a conversation that never exists reach each store without touching data.
    let probe =
        ConversationId::parse("readiness-probe").unwrap_or_else(|_| ConversationId::random());
    let checks = [
        (
            "conversations",
            api.conversations
                .get_conversation(&probe)
                .await
                .err()
                .map(|e| e.to_string()),
        ),
        (
            "events",
            api.events.head(&probe).await.err().map(|e| e.to_string()),
        ),
        (
            "coordination",
            api.liveness.check().await.err().map(|e| e.to_string()),
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(name, failure)| {
            failure.map(|reason| json!({ "check": name, "reason": reason }))
        })
        .collect()
}

async fn metrics(State(api): State<Api>) -> Result<impl IntoResponse, ApiError> {
    let text = api
        .metrics
        .render()
        .map_err(|_| ApiError::Unavailable("the metrics could not be rendered".into()))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}
