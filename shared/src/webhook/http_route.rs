//! The webhook as an axum route (`POST /webhooks/github`), for the local stack and the conversation
//! node's local mode. The body is read up to one byte past the limit so that an oversized body gets the
//! service's own 413 JSON answer.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::StatusCode;

use super::{WebhookAnswer, WebhookService};

pub const WEBHOOK_PATH: &str = "/webhooks/github";

pub fn router(service: WebhookService) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .with_state(service)
}

async fn receive(State(service): State<WebhookService>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let answer = match read_limited(body, service.max_body_bytes()).await {
        Some(bytes) => service.handle(&parts.headers, &bytes).await,
        None => WebhookAnswer::error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    (answer.status, axum::Json(answer.body)).into_response()
}

/// The body, or `None` when it is longer than `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Option<bytes::Bytes> {
    to_bytes(body, limit.saturating_add(1))
        .await
        .ok()
        .filter(|bytes| bytes.len() <= limit)
}
