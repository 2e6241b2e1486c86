//! The node's adapter of the coordination port on Redis: its connections and the helpers every
//! concern's file shares. Commands go through a reconnecting connection that follows the primary
//! (`connection.rs`); inbox pushes have their own, so that waiting for their replication (`WAIT`)
//! holds no other command up; the subscriptions live on one pub/sub connection (`pubsub.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::connection::{Commands, Endpoint, RedisAccess, SentinelSettings};
use super::keys::Keys;
use super::pubsub::Subscriptions;
use super::timed::CommandTiming;
use crate::domain::NodeId;
use crate::ports::coordination::{CoordinationError, Incoming};
use crate::retry::{Retrier, RetryPolicy};

/// How many incoming messages may wait for the node's dispatcher before the pub/sub reader waits.
const INCOMING_CAPACITY: usize = 4096;
/// How long one Redis command or connection attempt may take before it counts as a fault.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopped conversation's keys and a client's action ids stay, unless configured.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How many replicas must have an inbox push before it is acknowledged (`REDIS_ACK_REPLICAS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckReplicas {
    /// One while the primary has a replica, none while it has none (after a failover, until the old
    /// primary rejoins as a replica).
    Auto,
    /// Exactly this many, or the push fails.
    Exactly(usize),
}

/// Where the adapter connects and how it names things.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// The primary's URL (`REDIS_URL`), unless Sentinel names it.
    pub url: String,
    pub sentinel: Option<SentinelSettings>,
    /// TLS roots and the `AUTH` token of every connection (`REDIS_TLS_CA_FILE`, `REDIS_AUTH_TOKEN`).
    pub access: RedisAccess,
    /// `REDIS_KEY_PREFIX`; see `keys.rs`.
    pub key_prefix: String,
    pub lease_ttl: Duration,
    pub ack_replicas: AckReplicas,
    /// How long a push waits for its replicas (`REDIS_ACK_TIMEOUT`) before it fails.
    pub ack_timeout: Duration,
    /// How long a stopped conversation's keys (and a client's action ids) stay (`REDIS_RETENTION`).
    pub retention: Duration,
    /// How long a node whose channel lost its subscriber has to beat again before it is reaped.
    pub departure_grace: Duration,
    /// What is told how long each command took (the node's metrics); none by default.
    pub timing: CommandTiming,
}

impl RedisSettings {
    /// The defaults for the Redis at `url`.
    pub fn new(url: &str, key_prefix: &str, lease_ttl: Duration) -> Self {
        Self {
            url: url.to_owned(),
            sentinel: None,
            access: RedisAccess::default(),
            key_prefix: key_prefix.to_owned(),
            lease_ttl,
            ack_replicas: AckReplicas::Auto,
            ack_timeout: Duration::from_secs(1),
            retention: DEFAULT_RETENTION,
            departure_grace: Duration::from_millis(500),
            timing: CommandTiming::default(),
        }
    }
}

pub struct RedisCoordination {
    pub(super) node_id: NodeId,
    pub(super) keys: Keys,
    pub(super) settings: RedisSettings,
    commands: Commands,
    /// The inbox pushes' connection: `WAIT` blocks the connection it is sent on.
    pub(super) pushes: Commands,
    /// The primary's replicas as last seen (`ROLE`, every heartbeat), for [`AckReplicas::Auto`].
    pub(super) replicas: AtomicUsize,
    /// The endpoint's move count when `replicas` was seen.
    pub(super) replicas_seen_at_move: AtomicU64,
    /// Whether this node has beaten before (a later beat finding it unlisted means it was reaped).
    pub(super) beaten: AtomicBool,
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

impl RedisCoordination {
    /// Connects, subscribes to this node's channel and starts the reader; incoming messages arrive on
    /// the returned receiver.
    pub async fn connect(
        settings: &RedisSettings,
        node_id: NodeId,
    ) -> Result<(Self, mpsc::Receiver<Incoming>), CoordinationError> {
        let endpoint = Endpoint::new(&settings.url, settings.sentinel.as_ref(), &settings.access)?;
        let mut commands = Commands::connect(Arc::clone(&endpoint)).await?;
        let mut pushes = Commands::connect(Arc::clone(&endpoint)).await?;
        commands.timing = settings.timing.clone();
        pushes.timing = settings.timing.clone();
        let keys = Keys::new(&settings.key_prefix);
        let subscriptions = Arc::new(Subscriptions {
            endpoint,
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
            settings: settings.clone(),
            commands,
            pushes,
            replicas: AtomicUsize::new(0),
            replicas_seen_at_move: AtomicU64::new(0),
            beaten: AtomicBool::new(false),
            subscriptions,
            reader,
        };
        coordination.observe_replicas().await?;
        Ok((coordination, receiver))
    }

    pub(super) fn commands(&self) -> Commands {
        self.commands.clone()
    }
}
