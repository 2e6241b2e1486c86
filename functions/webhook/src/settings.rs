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
    /// Whether a user who never chose gets proactive conversations (`PROACTIVE_DEFAULT`, on).
    pub proactive_default: bool,
    /// What a bot's run is (`PROACTIVE_BOT_RUNS`): skipped, or the pull request author's.
    pub bot_runs: BotRuns,
}

/// `PROACTIVE_BOT_RUNS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotRuns {
    /// `skip` (the default): no conversation for a bot's run (GitHub answers 404 for its permission).
    Skip,
    /// `author`: the run counts as the pull request author's, whose permission is checked.
    Author,
}

impl BotRuns {
    fn from_env() -> Result<Self, ConfigError> {
        match config::var("PROACTIVE_BOT_RUNS").as_deref().map(str::trim) {
            None | Some("skip") => Ok(Self::Skip),
            Some("author") => Ok(Self::Author),
            Some(_) => Err(ConfigError::Invalid {
                name: "PROACTIVE_BOT_RUNS",
                reason: "expected skip or author".into(),
            }),
        }
    }
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
            proactive_default: shared::proactive::proactive_default_from_env()?,
            bot_runs: BotRuns::from_env()?,
        })
    }

    /// Settings for tests and embedding: the given secret, every other value at its default.
    pub fn with_secret(secret: &str) -> Self {
        Self {
            secret: secret.as_bytes().to_vec(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            proactive_enabled: true,
            delivery_ttl: Duration::from_secs(72 * 3600),
            proactive_default: true,
            bot_runs: BotRuns::Skip,
        }
    }
}
