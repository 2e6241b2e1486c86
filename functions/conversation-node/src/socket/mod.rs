//! The Socket.IO side (protocol v5, the official v4 clients on their default options: long-polling
//! first, then the upgrade to WebSocket), on the default path `/socket.io/`:
//! - connect: query `conversation_id` (required), `latest_event_id` (default -1), `session_api_key`
//!   (when configured); a bearer token in the `Authorization` header or the auth payload's `token`.
//!   Refused (a `connect_error` with a reason) unless the conversation is the caller's.
//! - then the stored events after `latest_event_id`, then live ones, as `oh_event` (see [`rooms`]).
//! - `oh_user_action` / `oh_action`: a user action, acknowledged (when the client asks) once durable;
//!   an optional `client_action_id` makes a retried action count once. Every action gets an answer:
//!   `{"success": false, "message"}` when it is malformed, over the user's rate, or the token expired.
//!   The first message a socket sends to a conversation without a title names it
//!   ([`crate::agent::title`]).
//! - errors as `oh_event` `{error: true, message}`; a socket whose token expires is told so and closed.
//! - no message larger than [`MAX_PAYLOAD`] is read, on either transport.
//!
//! [`rooms`]: the per-conversation feeds that make replay-then-live gap- and duplicate-free.

pub(crate) mod rooms;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::domain::user_action::{MAX_MESSAGE_BYTES, client_action_id};
use shared::domain::{ConversationId, ConversationStatus, UserAction, UserId};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::task::AbortHandle;

use shared::ports::coordination::Messaging;
use shared::ports::{ConversationStore, EventStore};

use crate::action_rate::ActionLimiter;
use crate::agent::title;
use crate::auth::{AuthError, Authenticator, bearer};
use crate::lifecycle::{Lifecycle, Started};
use crate::metrics::NodeMetrics;
use rooms::{Feed, OH_EVENT, Rooms};

/// What the Socket.IO side needs: who may connect (auth, the conversations), the lifecycle (actions,
/// takeovers), this node's feeds and its presence in the cluster, the stored events (replay), the
/// action rate and the counters.
pub(crate) struct SocketContext {
    pub lifecycle: Arc<Lifecycle>,
    pub auth: Arc<Authenticator>,
    pub conversations: Arc<dyn ConversationStore>,
    pub events: Arc<dyn EventStore>,
    pub presence: Arc<dyn Messaging>,
    pub rooms: Arc<Rooms>,
    pub action_rate: Arc<ActionLimiter>,
    pub metrics: Arc<NodeMetrics>,
    /// Packets a client's connection may hold unsent (see `Limits::socket_buffer`).
    pub buffer: usize,
}

/// The context as handlers receive it.
type Context = Arc<SocketContext>;

/// The read buffer of each WebSocket: small, since client messages are small (fewer bytes held per
/// idle connection).
pub const WS_READ_BUFFER: usize = 256;

/// The largest message a client may send (engine.io's `maxPayload`, advertised in the handshake): a
/// polling body or a WebSocket message or frame over it closes the connection before it is buffered
/// whole or parsed. Room for the largest user message with its JSON escaping.
pub const MAX_PAYLOAD: usize = 2 * MAX_MESSAGE_BYTES + 8 * 1024;

/// The largest event id a client may name (`latest_event_id`, `start_id`): JavaScript's largest exact
/// integer (the clients count in doubles), far beyond any conversation's length.
pub(crate) const MAX_EVENT_ID: u64 = (1 << 53) - 1;

/// Who a socket is, set by the connect middleware.
#[derive(Clone)]
struct Client {
    conversation: ConversationId,
    user_id: UserId,
    /// The first event id the client has not seen.
    next_event_id: u64,
    /// When the client's token stops being accepted (Unix seconds).
    expires_at: i64,
    running: bool,
    /// Set while the conversation has no title and this socket has not sent a message yet.
    untitled: Arc<AtomicBool>,
}

/// The task that closes the socket when its token expires; aborted when the socket disconnects first.
#[derive(Clone)]
struct ExpiryTimer(AbortHandle);

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

/// The Socket.IO route for the node's router, and its handle. One service, routed once: every request
/// of a long-polling session must reach the same engine (a layer applied route by route would give
/// each route an engine of its own, and the second request of a session would find it unknown).
pub(crate) fn routes(context: Context) -> (Router, SocketIo) {
    let (service, io) = SocketIo::builder()
        .ws_read_buffer_size(WS_READ_BUFFER)
        .max_buffer_size(context.buffer)
        .max_payload(MAX_PAYLOAD as u64)
        .ws_max_message_size(MAX_PAYLOAD)
        .ws_max_frame_size(MAX_PAYLOAD)
        .with_state(context)
        .build_svc();
    io.ns("/", on_connect.with(authenticate));
    let router = Router::new()
        .route_service("/socket.io/", service)
        // Runs before socketioxide, so that the request parts it keeps are owned copies.
        .layer(axum::middleware::map_request(own_request_parts));
    (router, io)
}

fn error_payload(message: &str) -> Value {
    json!({ "error": true, "message": message })
}

async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<Value>,
    State(context): State<Context>,
) -> Result<(), Refused> {
    let parts = socket.req_parts();
    let query = axum::extract::Query::<ConnectQuery>::try_from_uri(&parts.uri)
        .map_err(|_| Refused::Invalid("query"))?
        .0;
    context
        .auth
        .check_session_key(query.session_api_key.as_deref())?;
    let token = bearer(&parts.headers).map(str::to_owned).or_else(|| {
        auth.ok()
            .and_then(|auth| auth.get("token")?.as_str().map(str::to_owned))
    });
    let identity = context.auth.verify(token.as_deref()).await?;
    let raw_id = query.conversation_id.ok_or(Refused::MissingConversation)?;
    let conversation =
        ConversationId::parse(&raw_id).map_err(|_| Refused::Invalid("conversation_id"))?;
    let next_event_id = next_event_id(query.latest_event_id.as_deref())
        .ok_or(Refused::Invalid("latest_event_id"))?;
    let meta = context
        .conversations
        .get_conversation(&conversation)
        .await
        .map_err(|_| Refused::Unavailable)?
        .filter(|meta| meta.user_id == identity.user_id)
        .ok_or(Refused::NotFound)?;
    socket.extensions.insert(Client {
        conversation,
        user_id: identity.user_id,
        next_event_id,
        expires_at: identity.expires_at,
        running: meta.status == ConversationStatus::Running,
        untitled: Arc::new(AtomicBool::new(meta.title.is_none())),
    });
    Ok(())
}

/// The first event a client wants, from its `latest_event_id` (-1 or absent: all of them); `None`
/// when that is not a whole number from -1 to [`MAX_EVENT_ID`].
fn next_event_id(latest_event_id: Option<&str>) -> Option<u64> {
    match latest_event_id {
        None | Some("" | "-1") => Some(0),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|latest| *latest <= MAX_EVENT_ID)
            .map(|latest| latest + 1),
    }
}

async fn on_connect(socket: SocketRef, io: SocketIo, State(context): State<Context>) {
    let Some(client) = socket.extensions.get::<Client>() else {
        return;
    };
    socket.on("oh_user_action", on_user_action);
    socket.on("oh_action", on_user_action);
    socket.on_disconnect(on_disconnect);
    context.metrics.connections.inc();
    let timer = tokio::spawn(close_on_expiry(io, socket.id, client.expires_at));
    socket.extensions.insert(ExpiryTimer(timer.abort_handle()));

    let feed = Arc::new(Feed::new(
        socket.clone(),
        client.conversation.clone(),
        client.next_event_id,
    ));
    context.rooms.add(Arc::clone(&feed));
    let connection = socket.id.to_string();
    if let Err(error) = context
        .presence
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
        && context
            .lifecycle
            .sessions()
            .get(&client.conversation)
            .is_none()
        && let Err(error) = context
            .lifecycle
            .ensure_running(&client.conversation, &client.user_id)
            .await
    {
        tracing::warn!(conversation_id = %client.conversation, reason = %error, "cannot take the conversation over");
    }
    if let Err(error) = feed.replay(&context.events).await {
        tracing::warn!(conversation_id = %client.conversation, reason = %error, "replay failed");
        feed.emit(&error_payload("stored events are unavailable"));
    }
}

/// What a socket whose token expired is told before it is closed.
const TOKEN_EXPIRED: &str = "the token expired: reconnect with a fresh token";

/// Seconds until `expires_at` (Unix seconds), none when it has passed.
fn time_left(expires_at: i64) -> Duration {
    let left = expires_at.saturating_sub(chrono::Utc::now().timestamp());
    Duration::from_secs(u64::try_from(left).unwrap_or(0))
}

/// Closes the socket `sid` once its token has expired, telling the client why. Holds the handle, not
/// the socket, so that a socket that went away is not kept alive by its timer.
async fn close_on_expiry(io: SocketIo, sid: Sid, expires_at: i64) {
    tokio::time::sleep(time_left(expires_at)).await;
    if let Some(socket) = io.get_socket(sid) {
        close_expired(socket);
    }
}

fn close_expired(socket: SocketRef) {
    tracing::info!(sid = %socket.id, "a client's token expired: disconnected");
    if let Err(error) = socket.emit(OH_EVENT, &error_payload(TOKEN_EXPIRED)) {
        tracing::debug!(reason = %error, "cannot tell a client its token expired");
    }
    let _ = socket.disconnect();
}

async fn on_user_action(
    socket: SocketRef,
    TryData(raw): TryData<Value>,
    ack: AckSender,
    State(context): State<Context>,
    Extension(client): Extension<Client>,
) {
    if time_left(client.expires_at).is_zero() {
        let _ = ack.send(&json!({ "success": false, "message": TOKEN_EXPIRED }));
        close_expired(socket);
        return;
    }
    let outcome = match admit(&context, &client, raw) {
        Err(refused) => Err(refused),
        Ok((action, client_action_id)) => {
            let titled_by = match &action {
                UserAction::Message { content, .. } if client.untitled.load(Ordering::Relaxed) => {
                    Some(content.clone())
                }
                _ => None,
            };
            let delivered = context.lifecycle.deliver(
                &client.conversation,
                &client.user_id,
                action,
                client_action_id.as_deref(),
            );
            let delivered = delivered.await;
            if delivered.is_ok()
                && let Some(message) = titled_by
                && client.untitled.swap(false, Ordering::Relaxed)
            {
                title::spawn(
                    &context.lifecycle,
                    Arc::clone(&context.conversations),
                    client.conversation.clone(),
                    message,
                );
            }
            match delivered {
                Ok(Started::LimitReached) => Err("too many conversations are running".to_owned()),
                Ok(_) => Ok(()),
                Err(error) => {
                    tracing::warn!(conversation_id = %client.conversation, reason = %error, "action not delivered");
                    Err("the action could not be delivered".to_owned())
                }
            }
        }
    };
    answer(&socket, ack, outcome);
}

/// Whether an action may go in: the user under their rate, a well-formed action and action id.
fn admit(
    context: &SocketContext,
    client: &Client,
    raw: Result<Value, socketioxide::ParserError>,
) -> Result<(UserAction, Option<String>), String> {
    context.action_rate.check(&client.user_id)?;
    let parsed = raw
        .map_err(|error| format!("malformed action ({error}): send one JSON object"))
        .and_then(|raw| {
            let client_action_id = client_action_id(&raw).map_err(|invalid| invalid.to_string())?;
            let action = UserAction::parse(raw).map_err(|invalid| invalid.to_string())?;
            Ok((action, client_action_id))
        });
    if parsed.is_err() {
        context.metrics.actions_refused.inc();
    }
    parsed
}

/// Acknowledges an action, or sends the error as an `oh_event` as well when it failed (a client that
/// asked for no acknowledgement still learns why).
fn answer(socket: &SocketRef, ack: AckSender, outcome: Result<(), String>) {
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
        let _ = socket.clone().disconnect();
    }
}

async fn on_disconnect(
    socket: SocketRef,
    State(context): State<Context>,
    Extension(client): Extension<Client>,
    Extension(ExpiryTimer(timer)): Extension<ExpiryTimer>,
) {
    timer.abort();
    context.rooms.remove(&client.conversation, socket.id);
    context.metrics.connections.dec();
    let connection = socket.id.to_string();
    if let Err(error) = context
        .presence
        .leave(&client.conversation, &connection)
        .await
    {
        tracing::warn!(conversation_id = %client.conversation, reason = %error, "cannot leave the room");
    }
}

/// Rebuilds a Socket.IO request's URI and headers as owned values (the Socket.IO route's middleware): hyper's point into the connection's
/// read buffer, and socketioxide keeps each socket's request for the socket's life. Measured at 10,000
/// idle connections it saves ~3 KB each; hyper's 16 KB read buffer stays alive after the upgrade all
/// the same, held by something this copy does not reach (P7 in the README).
pub async fn own_request_parts(request: Request) -> Request {
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
