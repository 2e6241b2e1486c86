//! The Socket.IO side (protocol v5, the official v4 clients), on the default path `/socket.io/`:
//! - connect: query `conversation_id` (required), `latest_event_id` (default -1), `session_api_key`
//!   (when configured); a bearer token in the `Authorization` header or the auth payload's `token`.
//!   Refused (a `connect_error` with a reason) unless the conversation is the caller's.
//! - then the stored events after `latest_event_id`, then live ones, as `oh_event` (see [`rooms`]).
//! - `oh_user_action` / `oh_action`: a user action, acknowledged (when the client asks) once durable;
//!   an optional `client_action_id` makes a retried action count once.
//! - errors as `oh_event` `{error: true, message}`.
//!
//! [`rooms`]: the per-conversation feeds that make replay-then-live gap- and duplicate-free.

pub mod rooms;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::domain::{ConversationId, ConversationStatus, UserAction};
use socketioxide::extract::{AckSender, Data, Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SendError, SocketError, SocketIo};

use crate::auth::{AuthError, bearer};
use crate::lifecycle::{self, Started};
use crate::metrics::add;
use crate::state::Node;
use rooms::{Feed, OH_EVENT};

/// The read buffer of each WebSocket: small, since client messages are small (fewer bytes held per
/// idle connection).
pub const WS_READ_BUFFER: usize = 256;

/// Who a socket is, set by the connect middleware.
#[derive(Clone)]
struct Client {
    conversation: ConversationId,
    user_id: String,
    latest_event_id: i64,
    running: bool,
}

#[derive(Deserialize)]
struct ConnectQuery {
    conversation_id: Option<String>,
    latest_event_id: Option<String>,
    session_api_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("missing conversation_id")]
    MissingConversation,
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("conversation not found")]
    NotFound,
    #[error("service unavailable")]
    Unavailable,
}

/// The Socket.IO layer for the node's router, and its handle.
pub fn layer(node: Node) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .ws_read_buffer_size(WS_READ_BUFFER)
        .max_buffer_size(node.limits.socket_buffer)
        .with_state(node)
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    (layer, io)
}

fn error_payload(message: &str) -> Value {
    json!({ "error": true, "message": message })
}

async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(node): State<Node>,
) -> Result<(), Refused> {
    let parts = socket.req_parts();
    let query = axum::extract::Query::<ConnectQuery>::try_from_uri(&parts.uri)
        .map_err(|_| Refused::Invalid("query"))?
        .0;
    node.auth
        .check_session_key(query.session_api_key.as_deref())?;
    let token = bearer(&parts.headers).map(str::to_owned).or_else(|| {
        auth.ok()
            .and_then(|auth| auth.get("token")?.as_str().map(str::to_owned))
    });
    let identity = node.auth.verify(token.as_deref()).await?;
    let raw_id = query.conversation_id.ok_or(Refused::MissingConversation)?;
    let conversation =
        ConversationId::parse(&raw_id).map_err(|_| Refused::Invalid("conversation_id"))?;
    let latest_event_id = match query.latest_event_id.as_deref() {
        None | Some("") => -1,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= -1)
            .ok_or(Refused::Invalid("latest_event_id"))?,
    };
    let meta = node
        .conversations
        .get_conversation(&conversation)
        .await
        .map_err(|_| Refused::Unavailable)?
        .filter(|meta| meta.user_id == identity.user_id)
        .ok_or(Refused::NotFound)?;
    socket.extensions.insert(Client {
        conversation,
        user_id: identity.user_id,
        latest_event_id,
        running: meta.status == ConversationStatus::Running,
    });
    Ok(())
}

async fn on_connect(socket: SocketRef, State(node): State<Node>) {
    let Some(client) = socket.extensions.get::<Client>() else {
        return;
    };
    socket.on("oh_user_action", on_user_action);
    socket.on("oh_action", on_user_action);
    socket.on_disconnect(on_disconnect);
    add(&node.metrics.connections, 1);

    let feed = Arc::new(Feed::new(
        socket.clone(),
        client.conversation.clone(),
        client.latest_event_id,
    ));
    node.rooms.add(Arc::clone(&feed));
    let connection = socket.id.to_string();
    if let Err(error) = node
        .coordination
        .join(&client.conversation, &connection)
        .await
    {
        tracing::warn!(conversation_id = %client.conversation, reason = %error, "cannot join the room");
        feed.emit(&error_payload("live events are unavailable"));
    }
    // A running conversation whose owner is gone is taken over by a node with a client; a stopped
    // one stays stopped until the user prompts it. Decided before the replay, so that a client that
    // has its replay knows the outcome.
    if client.running
        && node.sessions.get(&client.conversation).is_none()
        && let Err(error) =
            lifecycle::ensure_running(&node, &client.conversation, &client.user_id).await
    {
        tracing::warn!(conversation_id = %client.conversation, reason = %error, "cannot take the conversation over");
    }
    if let Err(error) = feed.replay(&node.events).await {
        tracing::warn!(conversation_id = %client.conversation, reason = %error, "replay failed");
        feed.emit(&error_payload("stored events are unavailable"));
    }
}

/// The longest client action id accepted.
const MAX_CLIENT_ACTION_ID: usize = 128;

/// The optional `client_action_id` of an action: a client that retries an action sends the same one,
/// and the action is stored once.
fn client_action_id(raw: &Value) -> Result<Option<String>, &'static str> {
    match raw.get("client_action_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id))
            if !id.is_empty()
                && id.len() <= MAX_CLIENT_ACTION_ID
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            Ok(Some(id.clone()))
        }
        Some(_) => Err("client_action_id must be 1-128 letters, digits, '-', '_' or '.'"),
    }
}

async fn on_user_action(
    socket: SocketRef,
    Data(raw): Data<Value>,
    ack: AckSender,
    State(node): State<Node>,
    Extension(client): Extension<Client>,
) {
    let client_action_id = client_action_id(&raw);
    let outcome = match (UserAction::parse(raw), client_action_id) {
        (Err(invalid), _) => Err(invalid.to_string()),
        (_, Err(message)) => Err(message.to_owned()),
        (Ok(action), Ok(client_action_id)) => {
            let delivered = lifecycle::deliver(
                &node,
                &client.conversation,
                &client.user_id,
                action,
                client_action_id.as_deref(),
            );
            match delivered.await {
                Ok(Started::LimitReached) => Err("too many conversations are running".to_owned()),
                Ok(_) => Ok(()),
                Err(error) => {
                    tracing::warn!(conversation_id = %client.conversation, reason = %error, "action not delivered");
                    Err("the action could not be delivered".to_owned())
                }
            }
        }
    };
    let answer = match outcome {
        Ok(()) => json!({ "success": true }),
        Err(message) => {
            if let Err(error) = socket.emit(OH_EVENT, &error_payload(&message)) {
                tracing::debug!(reason = %error, "cannot send an error to a client");
            }
            json!({ "success": false, "message": message })
        }
    };
    // Sends nothing when the client asked for no acknowledgement. An acknowledgement that finds the
    // connection's queue full cannot be queued later (socketioxide consumes it): the connection is
    // closed instead, so that the client learns at once rather than after its timeout. The action is
    // durable either way, and a retry with the same `client_action_id` is stored once.
    if let Err(SendError::Socket(SocketError::InternalChannelFull)) = ack.send(&answer) {
        tracing::warn!(sid = %socket.id, "an acknowledgement found the connection's queue full: disconnected");
        let _ = socket.disconnect();
    }
}

async fn on_disconnect(
    socket: SocketRef,
    State(node): State<Node>,
    Extension(client): Extension<Client>,
) {
    node.rooms.remove(&client.conversation, socket.id);
    add(&node.metrics.connections, -1);
    let connection = socket.id.to_string();
    if let Err(error) = node
        .coordination
        .leave(&client.conversation, &connection)
        .await
    {
        tracing::warn!(conversation_id = %client.conversation, reason = %error, "cannot leave the room");
    }
}

/// Rebuilds a Socket.IO request's URI and headers as owned values: hyper's point into the connection's
/// read buffer, and socketioxide keeps each socket's request for the socket's life. Measured at 10,000
/// idle connections it saves ~3 KB each; hyper's 16 KB read buffer stays alive after the upgrade all
/// the same, held by something this copy does not reach (P7 in the README).
pub async fn own_request_parts(request: Request) -> Request {
    if !request.uri().path().starts_with("/socket.io") {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let owned_name = HeaderName::from_bytes(name.as_str().as_bytes());
        let owned_value = HeaderValue::from_bytes(value.as_bytes());
        if let (Ok(name), Ok(value)) = (owned_name, owned_value) {
            headers.append(name, value);
        }
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}
