//! The node's adapter of the coordination port on Redis: its connections and the helpers every
//! concern's file shares. Commands go through a reconnecting `ConnectionManager`; the subscriptions
//! live on one pub/sub connection (`pubsub.rs`).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::keys::Keys;
use super::pubsub::Subscriptions;
use crate::domain::NodeId;
use crate::ports::coordination::{CoordinationError, Incoming};
use crate::retry::{Retrier, RetryPolicy};

/// How many incoming messages may wait for the node's dispatcher before the pub/sub reader waits.
const INCOMING_CAPACITY: usize = 4096;
/// How long one Redis command or connection attempt may take before it counts as a fault.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the adapter connects and how it names things.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// `REDIS_KEY_PREFIX`; see `keys.rs`.
    pub key_prefix: String,
    pub lease_ttl: Duration,
}

pub struct RedisCoordination {
    pub(super) node_id: NodeId,
    pub(super) keys: Keys,
    pub(super) lease_ttl: Duration,
    commands: ConnectionManager,
    pub(super) subscriptions: Arc<Subscriptions>,
    reader: JoinHandle<()>,
}

impl Drop for RedisCoordination {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub(super) fn unavailable(error: redis::RedisError) -> CoordinationError {
    CoordinationError::Unavailable(error.to_string())
}

pub(super) fn corrupt(error: impl std::fmt::Display) -> CoordinationError {
    CoordinationError::Corrupt(error.to_string())
}

pub(super) fn encode(message: &impl Serialize) -> Result<String, CoordinationError> {
    serde_json::to_string(message).map_err(corrupt)
}

pub(super) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A client of the server at `url` and its reconnecting command connection.
pub(super) async fn command_connection(
    url: &str,
) -> Result<(redis::Client, ConnectionManager), CoordinationError> {
    let client = redis::Client::open(url)
        .map_err(|error| CoordinationError::Misconfigured(error.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(2);
    let commands = client
        .get_connection_manager_with_config(config)
        .await
        .map_err(unavailable)?;
    Ok((client, commands))
}

impl RedisCoordination {
    /// Connects, subscribes to this node's channel and starts the reader; incoming messages arrive on
    /// the returned receiver.
    pub async fn connect(
        settings: &RedisSettings,
        node_id: NodeId,
    ) -> Result<(Self, mpsc::Receiver<Incoming>), CoordinationError> {
        let (client, commands) = command_connection(&settings.url).await?;
        let keys = Keys::new(&settings.key_prefix);
        let subscriptions = Arc::new(Subscriptions {
            client,
            keys: keys.clone(),
            node_id: node_id.clone(),
            commands: commands.clone(),
            state: Mutex::default(),
            reconnects: Retrier::new(RetryPolicy::REDIS_RECONNECT),
        });
        let stream = subscriptions.open().await?;
        let (sender, receiver) = mpsc::channel(INCOMING_CAPACITY);
        let reader = tokio::spawn(Arc::clone(&subscriptions).read(stream, sender));
        let coordination = Self {
            node_id,
            keys,
            lease_ttl: settings.lease_ttl,
            commands,
            subscriptions,
            reader,
        };
        Ok((coordination, receiver))
    }

    pub(super) fn commands(&self) -> ConnectionManager {
        self.commands.clone()
    }
}
