//! `POST /internal/proactive`: EventBridge's API destination delivers `ProactiveConversationRequested`
//! here (the whole event, or its `detail` alone), with the internal API key in `X-Api-Key`. Idempotent on
//! the trigger id. A GitHub failure answers 5xx, so that EventBridge retries. The key is checked before
//! a byte of the body is read: a caller without it learns nothing about the body's shape or size.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use serde_json::{Value, json};
use shared::domain::ProactiveConversationRequested;
use shared::github::{CommentOutcome, GitHubError};

use super::Api;
use crate::auth::INTERNAL_API_KEY_HEADER;
use crate::error::{ApiError, ApiJson};
use crate::starter::StarterError;

pub(crate) async fn proactive(
    State(api): State<Api>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let key = request
        .headers()
        .get(INTERNAL_API_KEY_HEADER)
        .and_then(|value| value.to_str().ok());
    if !api.auth.is_internal_caller(key) {
        return Err(ApiError::Unauthorized("a valid X-Api-Key is required"));
    }
    let ApiJson(body) = ApiJson::<Value>::from_request(request, &()).await?;
    let detail = match body {
        Value::Object(mut event) if event.contains_key("detail") => {
            event.remove("detail").unwrap_or_default()
        }
        other => other,
    };
    let request: ProactiveConversationRequested = serde_json::from_value(detail)
        .map_err(|e| ApiError::BadRequest(format!("not a ProactiveConversationRequested: {e}")))?;
    let outcome = api
        .starter
        .start(&request)
        .await
        .map_err(|error| match error {
            StarterError::LimitReached => {
                ApiError::TooManyConversations("the repository's user runs too many conversations")
            }
            StarterError::GitHub(GitHubError::Unavailable(reason)) => {
                ApiError::Unavailable(format!("GitHub: {reason}"))
            }
            StarterError::GitHub(error) => ApiError::BadGateway(format!("GitHub: {error}")),
            StarterError::Lifecycle(error) => ApiError::Unavailable(error.to_string()),
            error @ StarterError::CommentBusy => ApiError::Unavailable(error.to_string()),
        })?;
    let comment = match outcome.comment {
        Some(CommentOutcome::Created { .. }) => "created",
        Some(CommentOutcome::Updated { .. }) => "updated",
        None => "skipped",
    };
    Ok(Json(json!({
        "status": "ok",
        "conversation_id": outcome.conversation_id,
        "created": outcome.created,
        "followed": outcome.followed,
        "comment": comment,
    })))
}
