//! The sync's configuration, read and checked once at start: a missing or malformed variable fails the
//! run before it touches anything, with the variable's name in the message.

use std::time::Duration;

use crate::commonroom::{CommonRoomConfig, DEFAULT_BASE_URL};
use shared::config::{ConfigError, flag, parsed, required, var};
use shared::keycloak::KeycloakConfig;
use shared::retry::RetryPolicy;
use shared::secret::Secret;

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub keycloak: KeycloakConfig,
    /// `None` only in a dry run without Common Room configured.
    pub common_room: Option<CommonRoomConfig>,
    /// `DRY_RUN`, or forced by the caller.
    pub dry_run: bool,
    pub settings: SyncSettings,
}

/// The tunables of a run; every one has a default.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// `PUBLIC_URL`: the base of the links to conversations.
    pub public_url: String,
    /// `SYNC_RATE_LIMIT`: Common Room requests per second (default 2).
    pub rate_limit: f64,
    /// `SYNC_LOOKBACK_MINUTES`: where the first run (no watermark yet) starts (default 60).
    pub lookback: Duration,
    /// `SYNC_SETTLE_SECONDS`: how old a conversation must be before a run reads it (default 120; 0
    /// reads everything). Nodes' clocks differ and the store's index is eventually consistent, so a
    /// conversation can land behind one just read; waiting lets it land before the watermark passes it.
    pub settle: Duration,
    /// `SYNC_RETRY_MAX_ATTEMPTS` (6), `SYNC_RETRY_INITIAL_BACKOFF_MS` (1000), `SYNC_RETRY_MAX_BACKOFF_MS`
    /// (60000); the factor is 2.
    pub retry: RetryPolicy,
    /// `KEYCLOAK_BATCH_SIZE`: concurrent Keycloak lookups (default 20).
    pub keycloak_batch: usize,
    /// `SYNC_PAGE_SIZE`: conversations read from the store at a time (default 100).
    pub page_size: usize,
    /// `SYNC_IN_FLIGHT`: conversations being delivered at once (default 32); enough to keep the rate
    /// limit busy while some answers are slow.
    pub in_flight: usize,
    /// `SYNC_LEASE_SECONDS`: the run lease's lifetime, renewed every third of it (default 120).
    pub lease_ttl: Duration,
    /// `SYNC_HTTP_TIMEOUT_SECONDS`: one HTTP request's limit (default 30); a timeout is retried.
    pub http_timeout: Duration,
}

impl SyncConfig {
    /// Reads the environment. Common Room's key and source are required unless this is a dry run
    /// (`force_dry_run`, or `DRY_RUN=true`).
    pub fn from_env(force_dry_run: bool) -> Result<Self, ConfigError> {
        let dry_run = force_dry_run || flag("DRY_RUN", false)?;
        let keycloak =
            KeycloakConfig::from_env()?.ok_or(ConfigError::Missing("KEYCLOAK_SERVER_URL"))?;
        let common_room = match (var("COMMON_ROOM_API_KEY"), dry_run) {
            (None, true) => None,
            (key, _) => Some(CommonRoomConfig {
                api_key: Secret::new(key.ok_or(ConfigError::Missing("COMMON_ROOM_API_KEY"))?),
                source_id: required("COMMON_ROOM_DESTINATION_SOURCE_ID")?,
                base_url: url(
                    "COMMON_ROOM_API_BASE_URL",
                    &var("COMMON_ROOM_API_BASE_URL").unwrap_or_else(|| DEFAULT_BASE_URL.into()),
                )?,
            }),
        };
        let public_url = required("PUBLIC_URL")?;
        url("PUBLIC_URL", &public_url)?;
        let rate_limit: f64 = parsed("SYNC_RATE_LIMIT", 2.0)?;
        if !(rate_limit.is_finite() && rate_limit > 0.0) {
            return Err(ConfigError::Invalid {
                name: "SYNC_RATE_LIMIT",
                reason: "expected a positive number of requests per second".into(),
            });
        }
        let settings = SyncSettings {
            public_url,
            rate_limit,
            lookback: Duration::from_secs(60 * parsed::<u64>("SYNC_LOOKBACK_MINUTES", 60)?),
            settle: Duration::from_secs(parsed("SYNC_SETTLE_SECONDS", 120)?),
            retry: RetryPolicy::doubling(
                positive("SYNC_RETRY_MAX_ATTEMPTS", 6)?,
                Duration::from_millis(parsed("SYNC_RETRY_INITIAL_BACKOFF_MS", 1000)?),
                Duration::from_millis(parsed("SYNC_RETRY_MAX_BACKOFF_MS", 60_000)?),
            ),
            keycloak_batch: positive("KEYCLOAK_BATCH_SIZE", 20)?,
            page_size: positive("SYNC_PAGE_SIZE", 100)?,
            in_flight: positive("SYNC_IN_FLIGHT", 32)?,
            lease_ttl: Duration::from_secs(positive("SYNC_LEASE_SECONDS", 120)?),
            http_timeout: Duration::from_secs(positive("SYNC_HTTP_TIMEOUT_SECONDS", 30)?),
        };
        Ok(Self {
            keycloak,
            common_room,
            dry_run,
            settings,
        })
    }
}

fn url(name: &'static str, raw: &str) -> Result<reqwest::Url, ConfigError> {
    let parsed = reqwest::Url::parse(raw.trim()).map_err(|e| ConfigError::Invalid {
        name,
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid {
            name,
            reason: "expected an http or https URL".into(),
        });
    }
    Ok(parsed)
}

fn positive<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let value = parsed(name, default)?;
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: "expected a positive number".into(),
        })
    }
}
