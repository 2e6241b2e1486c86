//! The webhook's settings, from the environment.

use std::time::Duration;

use shared::config::{self, ConfigError};

#[derive(Clone)]
pub struct WebhookSettings {
    /// `GITHUB_WEBHOOK_SECRET`: required; the local stack supplies its documented default.
    pub secret: Vec<u8>,
    /// `WEBHOOK_MAX_BODY_BYTES`, default 1 MiB.
    pub max_body_bytes: usize,
    /// `PROACTIVE_ENABLED`, default on.
    pub proactive_enabled: bool,
    /// How long a delivery id is remembered (`WEBHOOK_DELIVERY_TTL_HOURS`, default 72: GitHub's
    /// manual redelivery window).
    pub delivery_ttl: Duration,
}

impl WebhookSettings {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::with_env_settings(config::required("GITHUB_WEBHOOK_SECRET")?)
    }

    fn with_env_settings(secret: String) -> Result<Self, ConfigError> {
        Ok(Self {
            secret: secret.into_bytes(),
            max_body_bytes: config::parsed("WEBHOOK_MAX_BODY_BYTES", Self::DEFAULT_MAX_BODY_BYTES)?,
            proactive_enabled: config::flag("PROACTIVE_ENABLED", true)?,
            delivery_ttl: Duration::from_secs(
                3600 * config::parsed("WEBHOOK_DELIVERY_TTL_HOURS", 72u64)?,
            ),
        })
    }

    /// Settings for tests and embedding: the given secret, every other value at its default.
    pub fn with_secret(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            proactive_enabled: true,
            delivery_ttl: Duration::from_secs(72 * 3600),
        }
    }
}
