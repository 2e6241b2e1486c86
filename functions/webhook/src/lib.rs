//! The GitHub webhook function: `POST /webhooks/github` verifies a delivery, records workflow runs, and
//! decides exactly once per (repository, PR, head commit) that a conversation should start (the
//! decision itself is `shared::proactive`, which the cleanup's outbox shares).
//!
//! A map of the crate:
//! - [`router`]: the one HTTP transport, an axum `Router`, served by `lambda_http::run` in Lambda
//!   (`main`, with JSON 404/405 fallbacks: [`lambda_app`]) and mounted by the local stack.
//! - `service`: the envelope (body limit, signature, delivery ids, dispatch), built once per process.
//! - `registry`: `installation` / `installation_repositories` -> the repository registry.
//! - `workflow_run`: the gates and the trigger decision (`store_workflow_information`).
//! - `payload`, [`signature`], `answer`, `settings`: the pieces they share; `names`: what GitHub
//!   allows in logins and branches.

mod answer;
mod names;
mod payload;
mod registry;
mod router;
mod service;
mod settings;
pub mod signature;
mod workflow_run;

pub use answer::WebhookAnswer;
pub use router::{WEBHOOK_PATH, lambda_app, router};
pub use service::WebhookService;
pub use settings::{BotRuns, WebhookSettings};
