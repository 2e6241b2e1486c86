//! The webhook endpoint's envelope: body limit, signature, delivery id and duplicate check, dispatch by
//! event type, and remembering the delivery once it was handled. Transport-agnostic: the Lambda function
//! and the local stack both hand it the raw headers and body.

use std::sync::Arc;

use chrono::Utc;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use crate::answer::WebhookAnswer;
use crate::payload::{self, PingEvent};
use crate::settings::WebhookSettings;
use crate::{registry, signature, workflow_run};
use shared::adapters::in_process_bus::InProcessBus;
use shared::config::{BusBackend, StoreBackend};
use shared::domain::DeliveryId;
use shared::github::{GitHubClient, GitHubConfig};
use shared::ports::{EventBus, ProactiveStore};
use shared::proactive::AccountLinks;
use shared::wiring::{self, AwsContext, WiringError};

/// The header names GitHub sends (HTTP header names are case-insensitive).
const EVENT_HEADER: &str = "x-github-event";
const DELIVERY_HEADER: &str = "x-github-delivery";
const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The webhook's dependencies, built once per process.
#[derive(Clone)]
pub struct WebhookService {
    pub(crate) store: Arc<dyn ProactiveStore>,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) github: GitHubClient,
    /// Who a run's conversation is for.
    pub(crate) links: AccountLinks,
    pub(crate) settings: WebhookSettings,
}

impl WebhookService {
    /// The function's service, everything read from the environment: the configured store (DynamoDB
    /// in Lambda) and bus, the GitHub client, the settings.
    pub async fn from_env() -> Result<Self, WiringError> {
        let settings = WebhookSettings::from_env()?;
        let github = GitHubClient::new(GitHubConfig::from_env()?)?;
        let links = AccountLinks::from_env()?;
        let mut aws = AwsContext::default();
        let store = wiring::proactive_store(&StoreBackend::from_env(), None, &mut aws).await?;
        let bus =
            wiring::event_bus(&BusBackend::from_env(), &InProcessBus::default(), &mut aws).await;
        Ok(Self::new(store, bus, github, links, settings))
    }

    pub fn new(
        store: Arc<dyn ProactiveStore>,
        bus: Arc<dyn EventBus>,
        github: GitHubClient,
        links: AccountLinks,
        settings: WebhookSettings,
    ) -> Self {
        Self {
            store,
            bus,
            github,
            links,
            settings,
        }
    }

    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// The answer to a body longer than `WEBHOOK_MAX_BODY_BYTES`, however the transport found out.
    pub fn too_large(&self) -> WebhookAnswer {
        WebhookAnswer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds {} bytes", self.settings.max_body_bytes),
        )
    }

    /// Handles one delivery. Never panics on input; every answer has a JSON body.
    pub async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> WebhookAnswer {
        if body.len() > self.settings.max_body_bytes {
            return self.too_large();
        }
        // Verified over the exact bytes received, before anything is parsed.
        if !signature::verify(
            &self.settings.secret,
            body,
            header(headers, SIGNATURE_HEADER),
        ) {
            return WebhookAnswer::error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid X-Hub-Signature-256",
            );
        }
        let Some(event) = header(headers, EVENT_HEADER) else {
            return WebhookAnswer::error(StatusCode::BAD_REQUEST, "missing header X-GitHub-Event");
        };
        let delivery = match header(headers, DELIVERY_HEADER).map(DeliveryId::parse) {
            Some(Ok(delivery)) => delivery,
            Some(Err(invalid)) => {
                return WebhookAnswer::error(
                    StatusCode::BAD_REQUEST,
                    format!("X-GitHub-Delivery: {invalid}"),
                );
            }
            None => {
                return WebhookAnswer::error(
                    StatusCode::BAD_REQUEST,
                    "missing header X-GitHub-Delivery",
                );
            }
        };
        let span = info_span!("webhook", delivery = delivery.as_str(), event);
        self.handle_delivery(event, &delivery, body)
            .instrument(span)
            .await
    }

    async fn handle_delivery(
        &self,
        event: &str,
        delivery: &DeliveryId,
        body: &[u8],
    ) -> WebhookAnswer {
        match self.store.is_delivery_processed(delivery).await {
            Ok(true) => return WebhookAnswer::duplicate(),
            Ok(false) => {}
            Err(error) => {
                warn!(%error, "delivery check failed");
                return WebhookAnswer::unavailable("store");
            }
        }
        let answer = self.dispatch(event, body).await;
        info!(status = answer.status.as_u16(), "delivery handled");
        if answer.is_success() {
            // Remembered only once handled: a failed delivery can be redelivered. Deliveries that
            // race with their own duplicate are harmless, as group writes are idempotent.
            let expires_at = Utc::now() + self.settings.delivery_ttl;
            if let Err(error) = self
                .store
                .mark_delivery_processed(delivery, expires_at)
                .await
            {
                warn!(%error, "could not remember the delivery id");
            }
        }
        answer
    }

    async fn dispatch(&self, event: &str, body: &[u8]) -> WebhookAnswer {
        match event {
            "ping" => match payload::parse::<PingEvent>(body) {
                Ok(ping) => WebhookAnswer::new(
                    StatusCode::OK,
                    json!({ "ok": true, "zen": ping.zen, "hook_id": ping.hook_id }),
                ),
                Err(error) => bad_payload(error),
            },
            "installation" => match payload::parse(body) {
                Ok(installation) => registry::on_installation(self, installation).await,
                Err(error) => bad_payload(error),
            },
            "installation_repositories" => match payload::parse(body) {
                Ok(change) => registry::on_installation_repositories(self, change).await,
                Err(error) => bad_payload(error),
            },
            "workflow_run" => match payload::parse(body) {
                Ok(run) => workflow_run::on_workflow_run(self, run).await,
                Err(error) => bad_payload(error),
            },
            other => WebhookAnswer::ignored(format!("event `{other}` is not used")),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn bad_payload(error: payload::PayloadError) -> WebhookAnswer {
    WebhookAnswer::new(
        StatusCode::BAD_REQUEST,
        json!({ "error": error.message, "field": error.field }),
    )
}
