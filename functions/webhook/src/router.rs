//! The webhook's one HTTP transport: an axum route (`POST /webhooks/github`), served by
//! `lambda_http::run` in Lambda (API Gateway's request converted to an `http::Request`) and mounted by
//! the local stack. The body is read up to one byte past the limit so that an oversized body gets the
//! service's own 413 JSON answer.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use http::StatusCode;

use crate::{WebhookAnswer, WebhookService};

pub const WEBHOOK_PATH: &str = "/webhooks/github";

/// The webhook's route, for mounting beside others (the local stack).
pub fn router(service: WebhookService) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .with_state(service)
}

/// The function's whole HTTP interface, as Lambda serves it: the route, and a JSON 404 or 405 for any
/// other path or method.
pub fn lambda_app(service: WebhookService) -> Router {
    router(service)
        .method_not_allowed_fallback(async || {
            respond(WebhookAnswer::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST",
            ))
        })
        .fallback(async || respond(WebhookAnswer::error(StatusCode::NOT_FOUND, "no such route")))
}

async fn receive(State(service): State<WebhookService>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let answer = match read_limited(body, service.max_body_bytes()).await {
        Some(bytes) => service.handle(&parts.headers, &bytes).await,
        None => service.too_large(),
    };
    respond(answer)
}

fn respond(answer: WebhookAnswer) -> Response {
    (answer.status, axum::Json(answer.body)).into_response()
}

/// The body, or `None` when it is longer than `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Option<bytes::Bytes> {
    to_bytes(body, limit.saturating_add(1))
        .await
        .ok()
        .filter(|bytes| bytes.len() <= limit)
}
