//! Building adapters from configuration, once per process: DynamoDB/EventBridge when AWS is configured
//! (see [`crate::config::StoreBackend`] and [`crate::config::BusBackend`]), embedded ones otherwise.
//! A build without the `embedded` feature (a Lambda bundle) answers an embedded configuration with
//! [`WiringError::NoEmbeddedStore`]; the Redis janitor needs the `redis` feature.

use std::sync::Arc;

use crate::adapters::dynamo::{ConversationTable, EventTable, ProactiveTable, SyncStateItem};
#[cfg(feature = "embedded")]
use crate::adapters::embedded::{
    EmbeddedConversationStore, EmbeddedEventStore, EmbeddedProactiveStore, EmbeddedSyncState,
};
use crate::adapters::eventbridge::EventBridgeBus;
use crate::adapters::in_process_bus::InProcessBus;
#[cfg(feature = "redis")]
use crate::adapters::redis::{Keys, RedisAccess, RedisJanitor};
use crate::config::{BusBackend, ConfigError, StoreBackend};
#[cfg(feature = "redis")]
use crate::ports::ClusterJanitor;
use crate::ports::{
    ConversationStore, EventBus, EventStore, ProactiveStore, StoreError, SyncStateStore,
};

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("GitHub client: {0}")]
    GitHub(#[from] crate::github::GitHubError),
    #[error(
        "this build has no embedded store: configure DynamoDB (PROACTIVE_TABLE or AWS_ENDPOINT_URL)"
    )]
    NoEmbeddedStore,
}

/// The embedded database of a local run (SQLite under `DATA_DIR`), shared by every embedded adapter.
#[cfg(feature = "embedded")]
pub use crate::adapters::embedded::EmbeddedDb;

/// A build without the embedded store has no embedded database: a type with no values, so that the
/// same calls compile (with `None`) in a Lambda bundle that links no SQLite.
#[cfg(not(feature = "embedded"))]
#[derive(Clone)]
pub enum EmbeddedDb {}

/// The AWS SDK configuration, loaded only when some adapter needs it.
#[derive(Default)]
pub struct AwsContext {
    sdk: Option<aws_config::SdkConfig>,
}

impl AwsContext {
    pub async fn sdk(&mut self) -> &aws_config::SdkConfig {
        if self.sdk.is_none() {
            self.sdk = Some(crate::aws::sdk_config().await);
        }
        self.sdk.as_ref().expect("just loaded")
    }
}

/// The given embedded database, or the one under `data_dir` opened now.
#[cfg(feature = "embedded")]
fn embedded(db: Option<&EmbeddedDb>, data_dir: &std::path::Path) -> Result<EmbeddedDb, StoreError> {
    db.cloned().map_or_else(|| EmbeddedDb::open(data_dir), Ok)
}

/// The embedded database of a local run, opened once and shared by every embedded adapter.
pub fn embedded_db(backend: &StoreBackend) -> Result<Option<EmbeddedDb>, WiringError> {
    match backend {
        #[cfg(feature = "embedded")]
        StoreBackend::Embedded { data_dir } => Ok(Some(EmbeddedDb::open(data_dir)?)),
        #[cfg(not(feature = "embedded"))]
        StoreBackend::Embedded { .. } => Err(WiringError::NoEmbeddedStore),
        StoreBackend::DynamoDb { .. } => Ok(None),
    }
}

pub async fn proactive_store(
    backend: &StoreBackend,
    db: Option<&EmbeddedDb>,
    aws: &mut AwsContext,
) -> Result<Arc<dyn ProactiveStore>, WiringError> {
    Ok(match (backend, db) {
        (StoreBackend::DynamoDb { tables }, _) => {
            let client = aws_sdk_dynamodb::Client::new(aws.sdk().await);
            // DynamoDB's TTL is the backstop of the cleanup function's retention pass.
            let retention = crate::proactive::retention_from_env()?;
            Arc::new(
                ProactiveTable::new(client, tables.proactive.clone()).with_group_ttl(retention),
            )
        }
        #[cfg(feature = "embedded")]
        (StoreBackend::Embedded { data_dir }, db) => {
            Arc::new(EmbeddedProactiveStore::open(embedded(db, data_dir)?).await?)
        }
        #[cfg(not(feature = "embedded"))]
        (StoreBackend::Embedded { .. }, _) => return Err(WiringError::NoEmbeddedStore),
    })
}

/// The conversation metadata store.
pub async fn conversation_store(
    backend: &StoreBackend,
    db: Option<&EmbeddedDb>,
    aws: &mut AwsContext,
) -> Result<Arc<dyn ConversationStore>, WiringError> {
    Ok(match (backend, db) {
        (StoreBackend::DynamoDb { tables }, _) => {
            let client = aws_sdk_dynamodb::Client::new(aws.sdk().await);
            Arc::new(ConversationTable::new(client, tables.conversations.clone()))
        }
        #[cfg(feature = "embedded")]
        (StoreBackend::Embedded { data_dir }, db) => {
            Arc::new(EmbeddedConversationStore::open(embedded(db, data_dir)?).await?)
        }
        #[cfg(not(feature = "embedded"))]
        (StoreBackend::Embedded { .. }, _) => return Err(WiringError::NoEmbeddedStore),
    })
}

/// The conversation event store.
pub async fn event_store(
    backend: &StoreBackend,
    db: Option<&EmbeddedDb>,
    aws: &mut AwsContext,
) -> Result<Arc<dyn EventStore>, WiringError> {
    Ok(match (backend, db) {
        (StoreBackend::DynamoDb { tables }, _) => {
            let client = aws_sdk_dynamodb::Client::new(aws.sdk().await);
            Arc::new(EventTable::new(client, tables.events.clone()))
        }
        #[cfg(feature = "embedded")]
        (StoreBackend::Embedded { data_dir }, db) => {
            Arc::new(EmbeddedEventStore::open(embedded(db, data_dir)?).await?)
        }
        #[cfg(not(feature = "embedded"))]
        (StoreBackend::Embedded { .. }, _) => return Err(WiringError::NoEmbeddedStore),
    })
}

/// The watermark and run lease of the sync called `name`: a row of the embedded store, or an item of the
/// proactive table.
pub async fn sync_state_store(
    backend: &StoreBackend,
    db: Option<&EmbeddedDb>,
    aws: &mut AwsContext,
    name: &str,
) -> Result<Arc<dyn SyncStateStore>, WiringError> {
    Ok(match (backend, db) {
        (StoreBackend::DynamoDb { tables }, _) => {
            let client = aws_sdk_dynamodb::Client::new(aws.sdk().await);
            Arc::new(SyncStateItem::new(client, &tables.proactive, name))
        }
        #[cfg(feature = "embedded")]
        (StoreBackend::Embedded { data_dir }, db) => {
            Arc::new(EmbeddedSyncState::open(embedded(db, data_dir)?, name).await?)
        }
        #[cfg(not(feature = "embedded"))]
        (StoreBackend::Embedded { .. }, _) => return Err(WiringError::NoEmbeddedStore),
    })
}

/// The configured bus. A local run passes its own [`InProcessBus`] so that it can subscribe to it.
pub async fn event_bus(
    backend: &BusBackend,
    in_process: &InProcessBus,
    aws: &mut AwsContext,
) -> Arc<dyn EventBus> {
    match backend {
        BusBackend::EventBridge { bus_name } => {
            let client = aws_sdk_eventbridge::Client::new(aws.sdk().await);
            Arc::new(EventBridgeBus::new(client, bus_name.clone()))
        }
        BusBackend::InProcess => Arc::new(in_process.clone()),
    }
}

/// The cluster's janitor when the cluster keeps its state in Redis (`REDIS_URL`, keys under
/// `REDIS_KEY_PREFIX` as the nodes name them; TLS and `AUTH` as [`RedisAccess::from_env`]); `None` otherwise: a standalone node's cluster lives in
/// its own process, with nothing left behind for a cleanup.
#[cfg(feature = "redis")]
pub fn cluster_janitor() -> Option<Arc<dyn ClusterJanitor>> {
    let url = crate::config::var("REDIS_URL")?;
    let prefix =
        crate::config::var("REDIS_KEY_PREFIX").unwrap_or_else(|| Keys::DEFAULT_PREFIX.to_owned());
    Some(Arc::new(
        RedisJanitor::new(&url, &prefix).with_access(RedisAccess::from_env()),
    ))
}
