//! The REST API (JSON in and out):
//! - [`conversations`]: `/api/conversations` and its sub-resources, for users.
//! - [`settings`]: `/api/settings` and `/api/repositories/{owner}/{name}/settings`: where proactive
//!   conversations are wanted.
//! - [`internal`]: `POST /internal/proactive`, for EventBridge.
//! - [`probes`]: `/health` here; `/ready` and `/metrics` on the metrics listener.

pub(crate) mod conversations;
pub(crate) mod internal;
pub(crate) mod probes;
pub(crate) mod settings;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, patch, post};
use shared::ports::coordination::Liveness;
use shared::ports::{ConversationStore, EventStore};

use crate::action_rate::ActionLimiter;
use crate::agent::runtime::AgentRuntime;
use crate::auth::Authenticator;
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::metrics::NodeMetrics;
use crate::starter::Starter;

/// What the REST routes need: who may call (auth), the stores, the lifecycle and the starter, the
/// action rate, the address conversations are opened at, and what the probes report.
pub(crate) struct ApiContext {
    pub lifecycle: Arc<Lifecycle>,
    pub starter: Arc<Starter>,
    pub auth: Arc<Authenticator>,
    pub conversations: Arc<dyn ConversationStore>,
    pub events: Arc<dyn EventStore>,
    pub action_rate: Arc<ActionLimiter>,
    pub public_url: String,
    /// `/ready` asks whether the coordination backend answers, and names the node.
    pub liveness: Arc<dyn Liveness>,
    pub agent_label: String,
    /// Serves the whole of a relayed event that was stored cut.
    pub runtime: Arc<dyn AgentRuntime>,
    pub settings: settings::SettingsContext,
    pub metrics: Arc<NodeMetrics>,
}

/// The context as handlers receive it.
pub(crate) type Api = Arc<ApiContext>;

/// Every REST route, on the REST context.
pub(crate) fn routes(api: Api) -> Router {
    Router::new()
        .route("/health", get(probes::health))
        .route(
            "/api/conversations",
            post(conversations::create).get(conversations::list),
        )
        .route("/api/conversations/{id}", get(conversations::get))
        .route("/api/settings", get(settings::get).patch(settings::update))
        .route(
            "/api/repositories/{owner}/{name}/settings",
            patch(settings::update_repository),
        )
        .route(
            "/api/conversations/{id}/events",
            get(conversations::events).post(conversations::send_action),
        )
        .route(
            "/api/conversations/{id}/events/{event_id}/remote",
            get(conversations::remote_event),
        )
        .route("/api/conversations/{id}/stop", post(conversations::stop))
        .route("/internal/proactive", post(internal::proactive))
        .method_not_allowed_fallback(async || ApiError::MethodNotAllowed("method not allowed"))
        .with_state(api)
}
