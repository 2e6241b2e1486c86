//! The Common Room sync: every conversation created after the watermark, oldest first, becomes a
//! `started_session` activity in Common Room, its user registered once per run. A run reads only the
//! settled conversations (created `SYNC_SETTLE_SECONDS` before it started or earlier), so that one
//! stamped by a late clock or seen late by the store's index still lands ahead of the watermark. The
//! watermark moves, in the store, only past conversations that are finished (delivered, or refused for
//! good), in order, and only while the run holds the run lease: a run that dies resumes where it stopped,
//! and two runs never overlap. [`run_sync`] is the whole run; the Lambda, the command line and the local
//! stack call it.
//!
//! - [`config`]: the configuration read at start.
//! - `run`: the run itself (paging, pipeline, watermark, lease, summary).
//! - `users`: the run's users (Keycloak lookups, once-per-run registration).

pub(crate) mod config;
mod run;
mod users;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use self::config::{SyncConfig, SyncSettings};
pub use self::run::run_sync;
use crate::commonroom::{CommonRoomClient, CommonRoomError};
use shared::config::ConfigError;
use shared::domain::CreatedCursor;
use shared::keycloak::{KeycloakClient, KeycloakError};
use shared::ports::{ConversationStore, StoreError, SyncStateStore};
use shared::rate_limit::RateLimiter;
use shared::retry::Retrier;

/// The name of this sync's state in the sync state store.
pub const SYNC_NAME: &str = "commonroom";

/// What a run works with: built once per process (a warm Lambda reuses it), shared by its runs.
pub struct SyncDeps {
    pub conversations: Arc<dyn ConversationStore>,
    pub state: Arc<dyn SyncStateStore>,
    pub keycloak: Arc<KeycloakClient>,
    /// `None` when Common Room is not configured: only dry runs are possible.
    pub common_room: Option<Arc<CommonRoomClient>>,
    /// The retry policy of every remote call, and the count of retries.
    pub retrier: Arc<Retrier>,
    pub settings: SyncSettings,
}

impl SyncDeps {
    /// Builds the HTTP clients, the rate limiter and the retry policy of `config` over the given stores.
    pub fn new(
        config: &SyncConfig,
        conversations: Arc<dyn ConversationStore>,
        state: Arc<dyn SyncStateStore>,
    ) -> Result<Self, SyncError> {
        let http = shared::http_client::client(config.settings.http_timeout).map_err(|e| {
            SyncError::Config(ConfigError::Invalid {
                name: "HTTP client",
                reason: e.to_string(),
            })
        })?;
        let retrier = Arc::new(Retrier::new(config.settings.retry.clone()));
        let limiter = Arc::new(RateLimiter::per_second(config.settings.rate_limit));
        Ok(Self {
            conversations,
            state,
            keycloak: Arc::new(KeycloakClient::new(
                http.clone(),
                config.keycloak.clone(),
                Arc::clone(&retrier),
            )),
            common_room: config.common_room.clone().map(|cr| {
                Arc::new(CommonRoomClient::new(
                    http,
                    cr,
                    limiter,
                    Arc::clone(&retrier),
                ))
            }),
            retrier,
            settings: config.settings.clone(),
        })
    }
}

/// What one run is asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Start from conversations created at or after this instant instead of the watermark (a back-fill;
    /// the watermark still only moves forward). The settle bound holds all the same.
    pub since: Option<DateTime<Utc>>,
    /// Read and look everything up, send nothing, move no watermark.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Completed,
    DryRun,
    /// Another run holds the lease: this one did nothing.
    LeaseHeld,
    Failed,
}

/// The one structured summary a run ends with. Counts only: no personal data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncSummary {
    pub run_id: String,
    pub outcome: RunOutcome,
    pub conversations_seen: u64,
    /// Users upserted in Common Room by this run (each at most once).
    pub users_registered: u64,
    /// Activities Common Room accepted (in a dry run: the ones that would have been sent).
    pub activities_registered: u64,
    pub missing_users: u64,
    pub users_without_email: u64,
    /// Conversations skipped because their user is missing or has no e-mail.
    pub conversations_skipped: u64,
    /// Conversations Common Room refused for good (a 4xx other than 408/429).
    pub permanent_failures: u64,
    pub retries: u64,
    pub elapsed_ms: u64,
    /// The stored watermark when the run ended.
    pub watermark: Option<CreatedCursor>,
}

/// Why a run failed. The watermark stays at the last finished conversation.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("conversation or sync state store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keycloak(#[from] KeycloakError),
    #[error(transparent)]
    CommonRoom(#[from] CommonRoomError),
    #[error("the run lease was taken over by another run")]
    LeaseLost,
    #[error("a delivery task failed: {0}")]
    Task(String),
}

impl SyncError {
    /// A stable name per variant (the Lambda's `errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "ConfigError",
            Self::Store(_) => "StoreError",
            Self::Keycloak(_) => "KeycloakError",
            Self::CommonRoom(_) => "CommonRoomError",
            Self::LeaseLost => "LeaseLost",
            Self::Task(_) => "TaskError",
        }
    }
}

/// The run's counters, shared by its tasks.
#[derive(Default)]
struct Tally {
    conversations_seen: AtomicU64,
    users_registered: AtomicU64,
    activities_registered: AtomicU64,
    missing_users: AtomicU64,
    users_without_email: AtomicU64,
    conversations_skipped: AtomicU64,
    permanent_failures: AtomicU64,
}
