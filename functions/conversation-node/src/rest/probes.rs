//! Probes: `/health` (the process answers), `/ready` (the stores and the coordination backend answer),
//! `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use shared::domain::ConversationId;

use super::Api;

pub(crate) async fn health(State(api): State<Api>) -> Json<Value> {
    Json(json!({ "status": "ok", "node_id": api.liveness.node_id(), "agent": api.agent_label }))
}

pub(crate) async fn ready(State(api): State<Api>) -> (StatusCode, Json<Value>) {
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
    let failures: Vec<Value> = checks
        .into_iter()
        .filter_map(|(name, failure)| {
            failure.map(|reason| json!({ "check": name, "reason": reason }))
        })
        .collect();
    if api.lifecycle.is_shutting_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting_down" })),
        );
    }
    if failures.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "failures": failures })),
        )
    }
}

pub(crate) async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.metrics.render(),
    )
}
