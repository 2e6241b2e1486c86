//! `/api/conversations`: create, list, get, page events, send a user action, stop. Every route needs a
//! bearer token (and the session API key when configured); another user's conversation is a 404. A
//! conversation created without a title has none (`null`) until its first message names it
//! ([`crate::agent::title`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::domain::user_action::{MAX_MESSAGE_BYTES, client_action_id};
use shared::domain::{
    AgentState, Conversation, ConversationId, ConversationStatus, InvalidAction, ModelSettings,
    UserAction, UserId,
};
use shared::ports::coordination::StopReason;

use super::Api;
use crate::agent::title;
use crate::auth::{SESSION_API_KEY_HEADER, bearer};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::lifecycle::{Created, LifecycleError, Started};
use crate::socket::MAX_EVENT_ID;

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;
const MAX_TITLE_CHARS: usize = Conversation::MAX_TITLE_CHARS;

/// The authenticated caller of a REST route.
pub(crate) struct Caller {
    pub user_id: UserId,
}

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let session_key = parts
            .headers
            .get(SESSION_API_KEY_HEADER)
            .and_then(|value| value.to_str().ok());
        api.auth
            .check_session_key(session_key)
            .map_err(|_| ApiError::Unauthorized("invalid session API key"))?;
        let identity = api
            .auth
            .verify(bearer(&parts.headers))
            .await
            .map_err(|_| ApiError::Unauthorized("a valid bearer token is required"))?;
        Ok(Self {
            user_id: identity.user_id,
        })
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

/// The caller's conversation `raw`, or 404 (for a malformed id, a missing one, and another user's).
async fn owned(api: &Api, caller: &Caller, raw: &str) -> Result<Conversation, ApiError> {
    let not_found = ApiError::NotFound("conversation not found");
    let Ok(id) = ConversationId::parse(raw) else {
        return Err(not_found);
    };
    match api.conversations.get_conversation(&id).await? {
        Some(meta) if meta.user_id == caller.user_id => Ok(meta),
        _ => Err(not_found),
    }
}

#[derive(Serialize)]
struct ConversationInfo<'a> {
    conversation_id: &'a ConversationId,
    title: Option<&'a str>,
    status: ConversationStatus,
    agent_state: AgentState,
    created_at: chrono::DateTime<Utc>,
    last_updated_at: chrono::DateTime<Utc>,
    selected_repository: Option<&'a str>,
    trigger_id: Option<&'a str>,
    /// The conversation's own model (never its key), when it chose one.
    llm_model: Option<&'a str>,
    llm_base_url: Option<&'a str>,
    confirmation_mode: bool,
    /// Its agent's conversation on the agent-server (`openhands`), once opened.
    remote_conversation_id: Option<&'a str>,
    url: String,
}

fn info<'a>(api: &Api, meta: &'a Conversation) -> ConversationInfo<'a> {
    ConversationInfo {
        conversation_id: &meta.id,
        title: meta.title.as_deref(),
        status: meta.status,
        agent_state: meta.agent_state,
        created_at: meta.created_at,
        last_updated_at: meta.last_updated_at,
        selected_repository: meta.repository.as_deref(),
        trigger_id: meta.trigger_id.as_ref().map(|id| id.as_str()),
        llm_model: meta.model.as_ref().map(|model| model.model.as_str()),
        llm_base_url: meta
            .model
            .as_ref()
            .and_then(|model| model.base_url.as_deref()),
        confirmation_mode: meta.confirmation_mode,
        remote_conversation_id: meta
            .remote_agent
            .as_ref()
            .map(|remote| remote.conversation_id.as_str()),
        url: format!("{}/conversations/{}", api.public_url, meta.id),
    }
}

#[derive(Deserialize)]
pub(crate) struct CreateConversation {
    initial_user_msg: Option<String>,
    title: Option<String>,
    #[serde(alias = "selected_repository")]
    repository: Option<String>,
    /// The agent asks before each action (`openhands`).
    #[serde(default)]
    confirmation_mode: bool,
    /// The conversation's own model instead of the node's.
    llm_model: Option<String>,
    llm_base_url: Option<String>,
    llm_api_key: Option<String>,
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.trim().is_empty())
}

pub(crate) async fn create(
    State(api): State<Api>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateConversation>,
) -> Result<impl IntoResponse, ApiError> {
    let (message, title, repository) = (
        non_blank(body.initial_user_msg),
        non_blank(body.title),
        non_blank(body.repository),
    );
    if message
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MESSAGE_BYTES)
    {
        return Err(ApiError::BadRequest(format!(
            "initial_user_msg is longer than {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    if title
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS)
        || repository
            .as_ref()
            .is_some_and(|r| r.chars().count() > MAX_TITLE_CHARS)
    {
        return Err(ApiError::BadRequest(format!(
            "title and repository are at most {MAX_TITLE_CHARS} characters"
        )));
    }
    let model = ModelSettings::parse(
        body.llm_model.as_deref(),
        body.llm_base_url.as_deref(),
        body.llm_api_key.as_deref(),
    )
    .map_err(|invalid| ApiError::BadRequest(invalid.to_string()))?;
    if model.is_some() && !api.runtime.takes_model_settings() {
        return Err(ApiError::BadRequest(
            "this node runs the built-in agent, which has no model to choose: llm_model needs \
             AGENT_RUNTIME=llm or openhands"
                .into(),
        ));
    }
    let id = ConversationId::random();
    // Stamped again at the write (`create_conversation_now`).
    let now = Utc::now();
    let untitled = title.is_none();
    let meta = Conversation {
        title,
        id: id.clone(),
        user_id: caller.user_id,
        created_at: now,
        last_updated_at: now,
        status: ConversationStatus::Running,
        agent_state: AgentState::Loading,
        trigger_id: None,
        repository,
        checkout: None,
        confirmation_mode: body.confirmation_mode,
        model,
        remote_agent: None,
    };
    let first = message.as_deref().map(UserAction::message);
    let created = api.lifecycle.create(meta, first).await?;
    if let (Created::Started, Some(message), true) = (created, message, untitled) {
        title::spawn(
            &api.lifecycle,
            Arc::clone(&api.conversations),
            id.clone(),
            message,
        );
    }
    match created {
        Created::Started | Created::Exists => Ok((
            StatusCode::CREATED,
            Json(json!({ "status": "ok", "conversation_id": id })),
        )),
        Created::LimitReached => Err(ApiError::TooManyConversations(
            "you run the maximum number of conversations: stop one first",
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
}

pub(crate) async fn list(
    State(api): State<Api>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let conversations = api
        .conversations
        .list_user_conversations(&caller.user_id, limit)
        .await?;
    let results: Vec<_> = conversations.iter().map(|meta| info(&api, meta)).collect();
    Ok(Json(json!({ "results": results, "next_page_id": null })))
}

pub(crate) async fn get(
    State(api): State<Api>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let meta = owned(&api, &caller, &id).await?;
    Ok(Json(json!(info(&api, &meta))))
}

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    start_id: Option<u64>,
    limit: Option<usize>,
}

pub(crate) async fn events(
    State(api): State<Api>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let meta = owned(&api, &caller, &id).await?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let start_id = query.start_id.unwrap_or(0);
    if start_id > MAX_EVENT_ID {
        return Err(ApiError::BadRequest("invalid start_id".into()));
    }
    let page = api.events.page(&meta.id, start_id, limit).await?;
    Ok(Json(
        json!({ "events": page.events, "has_more": page.has_more }),
    ))
}

/// `GET /api/conversations/{id}/events/{event_id}/remote`: an event relayed from the agent runtime,
/// beside the whole of it as the runtime keeps it (the stored one may have been cut to fit the store).
pub(crate) async fn remote_event(
    State(api): State<Api>,
    caller: Caller,
    ApiPath((id, event_id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let meta = owned(&api, &caller, &id).await?;
    let event_id = event_id
        .parse::<u64>()
        .ok()
        .filter(|id| *id <= MAX_EVENT_ID)
        .ok_or_else(|| ApiError::BadRequest("invalid event id".into()))?;
    let page = api.events.page(&meta.id, event_id, 1).await?;
    let Some(event) = page.events.into_iter().find(|event| event.id == event_id) else {
        return Err(ApiError::NotFound("event not found"));
    };
    let Some(remote) = &event.remote else {
        return Err(ApiError::NotFound(
            "the event was not relayed from an agent runtime",
        ));
    };
    let whole = api
        .runtime
        .remote_event(&meta.id, &remote.id)
        .await
        .map_err(|error| ApiError::BadGateway(error.to_string()))?
        .ok_or(ApiError::NotFound(
            "the agent runtime no longer has the event",
        ))?;
    Ok(Json(json!({ "event": event, "remote_event": whole })))
}

pub(crate) async fn send_action(
    State(api): State<Api>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(raw): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let meta = owned(&api, &caller, &id).await?;
    api.action_rate
        .check(&caller.user_id)
        .map_err(ApiError::RateLimited)?;
    let invalid = |invalid: InvalidAction| ApiError::BadRequest(invalid.to_string());
    let client_action_id = client_action_id(&raw).map_err(invalid)?;
    let action = UserAction::parse(raw).map_err(invalid)?;
    let titled_by = match &action {
        UserAction::Message { content, .. } if meta.title.is_none() => Some(content.clone()),
        _ => None,
    };
    let delivered = api
        .lifecycle
        .deliver(&meta.id, &meta.user_id, action, client_action_id.as_deref())
        .await?;
    if let Some(message) = titled_by {
        title::spawn(
            &api.lifecycle,
            Arc::clone(&api.conversations),
            meta.id.clone(),
            message,
        );
    }
    match delivered {
        Started::LimitReached => Err(ApiError::TooManyConversations(
            "the action is queued, but you run the maximum number of conversations: stop one first",
        )),
        Started::Now | Started::AlreadyRunning => Ok(Json(json!({ "success": true }))),
    }
}

pub(crate) async fn stop(
    State(api): State<Api>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let meta = owned(&api, &caller, &id).await?;
    api.lifecycle.stop(&meta.id, StopReason::Explicit).await?;
    Ok(Json(json!({ "success": true, "conversation_id": meta.id })))
}
