//! The secret configuration values from AWS Secrets Manager: when `SECRETS_ARN` is set, that secret (a JSON
//! object of `NAME -> value`: `GITHUB_WEBHOOK_SECRET`, `GITHUB_APP_PRIVATE_KEY`, `REDIS_AUTH_TOKEN`...) is
//! read once at start ([`load`]) and [`crate::config::var`] finds its values, so that a consumer reads a
//! secret exactly as any other variable. A variable set in the environment wins (local runs, tests): a
//! Lambda's configuration then holds no secret that `GetFunctionConfiguration` would show.
//!
//! A Lambda keeps its copy at most `SECRETS_REFRESH_SECONDS` (300): its service is a [`Refreshed`] one,
//! which re-reads the secret before an invocation once the copy is that old and rebuilds the service
//! from configuration when the secret has a new version, so that a rotation needs no redeploy. The
//! conversation node reads it at start only: a rotation reaches it as new tasks start.
//!
//! Values are held as [`Secret`]s and errors never quote the secret's content.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;

use crate::config::{self, ConfigError};
use crate::secret::Secret;

/// The variable naming the secret (its ARN or name).
pub const SECRETS_ARN: &str = "SECRETS_ARN";
/// How long a Lambda keeps its copy before re-reading it, in seconds.
pub const SECRETS_REFRESH_SECONDS: &str = "SECRETS_REFRESH_SECONDS";
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// Why the secret is not usable; the message names `SECRETS_ARN`, never the secret's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("{SECRETS_ARN}: the secret could not be read ({cause})")]
    Unreadable { cause: String },
    #[error(
        "{SECRETS_ARN}: the secret is not a JSON object of string values (line {line}, column {column})"
    )]
    NotAnObject { line: usize, column: usize },
    #[error("{SECRETS_ARN}: the secret has no string value (a binary secret is not supported)")]
    NoString,
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// One read of the secret.
#[derive(Debug)]
struct Snapshot {
    values: HashMap<String, Secret>,
    version: Option<String>,
    read_at: Instant,
}

/// The secret of `SECRETS_ARN` as last read, and how to read it again.
#[derive(Debug)]
pub struct SecretStore {
    client: Client,
    secret_id: String,
    refresh: Duration,
    copy: RwLock<Snapshot>,
    /// One re-read at a time: concurrent invocations that find the copy stale wait for the same one.
    rereading: tokio::sync::Mutex<()>,
}

impl SecretStore {
    /// Reads `secret_id` (an ARN or a name) once; `refresh` is how long the copy counts as fresh.
    pub async fn read(
        client: Client,
        secret_id: impl Into<String>,
        refresh: Duration,
    ) -> Result<Self, SecretsError> {
        let secret_id = secret_id.into();
        let copy = fetch(&client, &secret_id).await?;
        Ok(Self {
            client,
            secret_id,
            refresh,
            copy: RwLock::new(copy),
            rereading: tokio::sync::Mutex::new(()),
        })
    }

    /// The value of `name` in the copy; an empty value counts as unset, as in the environment.
    pub fn get(&self, name: &str) -> Option<Secret> {
        let copy = self.copy.read().unwrap_or_else(|p| p.into_inner());
        copy.values
            .get(name)
            .filter(|value| !value.expose().trim().is_empty())
            .cloned()
    }

    /// The version of the secret the copy is (Secrets Manager's `VersionId`).
    pub fn version(&self) -> Option<String> {
        let copy = self.copy.read().unwrap_or_else(|p| p.into_inner());
        copy.version.clone()
    }

    /// Re-reads the secret when the copy is older than the refresh interval. `Ok(true)` when that read
    /// found another version than the copy's; on an error the previous copy stays.
    pub async fn refresh_if_stale(&self) -> Result<bool, SecretsError> {
        if !self.is_stale() {
            return Ok(false);
        }
        let _rereading = self.rereading.lock().await;
        if !self.is_stale() {
            return Ok(false); // re-read meanwhile by the invocation that held the lock
        }
        let fresh = fetch(&self.client, &self.secret_id).await;
        let mut copy = self.copy.write().unwrap_or_else(|p| p.into_inner());
        match fresh {
            Ok(fresh) => {
                let changed = fresh.version != copy.version;
                *copy = fresh;
                Ok(changed)
            }
            Err(error) => {
                // Tried again after another interval, not at every invocation.
                copy.read_at = Instant::now();
                Err(error)
            }
        }
    }

    fn is_stale(&self) -> bool {
        let copy = self.copy.read().unwrap_or_else(|p| p.into_inner());
        copy.read_at.elapsed() >= self.refresh
    }
}

async fn fetch(client: &Client, secret_id: &str) -> Result<Snapshot, SecretsError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| SecretsError::Unreadable {
            cause: crate::aws::failure_cause(&error).to_owned(),
        })?;
    let text = output.secret_string().ok_or(SecretsError::NoString)?;
    let values: HashMap<String, String> =
        serde_json::from_str(text).map_err(|error| SecretsError::NotAnObject {
            line: error.line(),
            column: error.column(),
        })?;
    Ok(Snapshot {
        values: values
            .into_iter()
            .map(|(name, value)| (name, Secret::new(value)))
            .collect(),
        version: output.version_id().map(str::to_owned),
        read_at: Instant::now(),
    })
}

/// The process's secret, once [`load`] read it.
static PROCESS: OnceLock<SecretStore> = OnceLock::new();

/// Reads the secret of `SECRETS_ARN`, when it is set, as the process's source of secret values (a
/// second call changes nothing). An unreadable secret is an error to stop the start with.
pub async fn load() -> Result<(), SecretsError> {
    if PROCESS.get().is_some() {
        return Ok(());
    }
    let Some(secret_id) = config::var(SECRETS_ARN) else {
        return Ok(());
    };
    let refresh = config::parsed(SECRETS_REFRESH_SECONDS, DEFAULT_REFRESH.as_secs())?;
    let client = Client::new(&crate::aws::sdk_config().await);
    let store = SecretStore::read(client, secret_id, Duration::from_secs(refresh)).await?;
    let _ = PROCESS.set(store);
    Ok(())
}

/// The value of `name` in the process's secret, if it was loaded and has it.
pub(crate) fn value(name: &str) -> Option<String> {
    PROCESS
        .get()?
        .get(name)
        .map(|value| value.expose().to_owned())
}

/// A Lambda's service, built from configuration, and built again when a re-read of the secret (at most
/// every `SECRETS_REFRESH_SECONDS`, before an invocation) finds a new version. A new version that does
/// not configure the function (a key missing) is logged, and the previous service stays until the next
/// version.
pub struct Refreshed<T, B> {
    current: RwLock<Arc<T>>,
    build: B,
}

impl<T, B, F, E> Refreshed<T, B>
where
    B: Fn() -> F,
    F: Future<Output = Result<T, E>>,
    E: fmt::Display,
{
    /// Builds the service once.
    pub async fn build(build: B) -> Result<Self, E> {
        let first = build().await?;
        Ok(Self {
            current: RwLock::new(Arc::new(first)),
            build,
        })
    }

    /// The service for this invocation, from the secret's latest version.
    pub async fn current(&self) -> Arc<T> {
        if let Some(store) = PROCESS.get() {
            match store.refresh_if_stale().await {
                Ok(false) => {}
                Ok(true) => match (self.build)().await {
                    Ok(rebuilt) => {
                        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
                            Arc::new(rebuilt);
                        tracing::info!("configuration rebuilt from a new version of the secret");
                    }
                    Err(error) => tracing::error!(
                        %error,
                        "the new version of the secret does not configure the function: the previous configuration stays"
                    ),
                },
                Err(error) => tracing::warn!(%error, "the secret's previous copy stays"),
            }
        }
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}
