//! Probes: `/health` (the process answers), `/ready` (the stores and the coordination backend answer),
//! `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use shared::domain::ConversationId;

use crate::state::Node;

pub async fn health(State(node): State<Node>) -> Json<Value> {
    Json(json!({ "status": "ok", "node_id": node.node_id, "agent": node.agent.label() }))
}

pub async fn ready(State(node): State<Node>) -> (StatusCode, Json<Value>) {
    // Reads of a conversation that never exists reach each store without touching data.
    let probe =
        ConversationId::parse("readiness-probe").unwrap_or_else(|_| ConversationId::random());
    let checks = [
        (
            "conversations",
            node.conversations
                .get_conversation(&probe)
                .await
                .err()
                .map(|e| e.to_string()),
        ),
        (
            "events",
            node.events.head(&probe).await.err().map(|e| e.to_string()),
        ),
        (
            "coordination",
            node.coordination.check().await.err().map(|e| e.to_string()),
        ),
    ];
    let failures: Vec<Value> = checks
        .into_iter()
        .filter_map(|(name, failure)| {
            failure.map(|reason| json!({ "check": name, "reason": reason }))
        })
        .collect();
    if node.is_shutting_down() {
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

pub async fn metrics(State(node): State<Node>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        node.metrics.render(),
    )
}
