//! The GitHub webhook endpoint, independent of its transport (Lambda or the local stack's HTTP server).
//!
//! - [`service`]: the envelope (body limit, signature, delivery ids, dispatch).
//! - [`registry`]: `installation` / `installation_repositories` -> the repository registry.
//! - [`workflow_run`]: the gates and the trigger decision.
//! - [`payload`], [`signature`], [`answer`], [`settings`]: the pieces they share.

pub mod answer;
pub mod http_route;
mod names;
pub mod payload;
mod registry;
pub mod service;
pub mod settings;
pub mod signature;
mod workflow_run;

pub use answer::WebhookAnswer;
pub use service::WebhookService;
pub use settings::WebhookSettings;
