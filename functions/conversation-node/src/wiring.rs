//! The node's ports from its configuration: the stores and bus the environment names (see
//! `shared::wiring`), the coordination backend (a Redis that is down is waited for, its commands timed
//! into the node's metrics), the GitHub client.

use std::sync::Arc;

use shared::adapters::embedded::EmbeddedDb;
use shared::adapters::in_process_bus::InProcessBus;
use shared::adapters::local_cluster::LocalCluster;
use shared::adapters::redis::{RedisCoordination, RedisSettings};
use shared::domain::NodeId;
use shared::github::{GitHubClient, GitHubConfig};
use shared::ports::Coordination;
use shared::ports::coordination::{CoordinationError, Incoming};
use shared::proactive::AccountLinks;
use shared::retry::{Retrier, RetryPolicy};
use shared::wiring::{self, AwsContext, WiringError};
use tokio::sync::mpsc;

use crate::app::NodeDeps;
use crate::config::{CoordinationBackend, NodeConfig};
use crate::metrics::NodeMetrics;

#[derive(Debug, thiserror::Error)]
pub enum NodeWiringError {
    #[error(transparent)]
    Wiring(#[from] WiringError),
    #[error("the cluster's Redis: {0}")]
    Redis(#[from] CoordinationError),
}

/// Connects to the cluster's Redis, waiting for it as long as it takes. Each failed attempt is logged
/// once (without the URL, which may hold a password); only settings that cannot work end the wait.
async fn connect_redis(
    settings: &RedisSettings,
    node_id: &NodeId,
) -> Result<(RedisCoordination, mpsc::Receiver<Incoming>), CoordinationError> {
    // Without end: the node serves once Redis is back.
    let retrier = Retrier::new(RetryPolicy::REDIS_RECONNECT);
    let connected = retrier
        .run(|| async {
            let attempt = RedisCoordination::connect(settings, node_id.clone()).await;
            if let Err(CoordinationError::Unavailable(reason)) = &attempt {
                tracing::warn!(%reason, "the cluster's Redis is unreachable: waiting for it");
            }
            attempt
        })
        .await?;
    if retrier.retries() > 0 {
        tracing::info!(
            retries = retrier.retries(),
            "connected to the cluster's Redis"
        );
    }
    Ok(connected)
}

/// The ports `config` names. `db` is the embedded database when the store is embedded (`None` opens
/// it); `in_process` is the bus used when no EventBridge bus is configured. The local stack passes the
/// ones its other parts share.
pub async fn deps_from_config(
    config: &NodeConfig,
    db: Option<&EmbeddedDb>,
    in_process: &InProcessBus,
) -> Result<NodeDeps, NodeWiringError> {
    let metrics = Arc::new(NodeMetrics::default());
    let (coordination, incoming): (Arc<dyn Coordination>, _) = match &config.coordination {
        CoordinationBackend::Standalone => {
            let (node, incoming) =
                LocalCluster::new(config.timing.lease_ttl).join(config.node_id.clone());
            (Arc::new(node), incoming)
        }
        CoordinationBackend::Redis(settings) => {
            let settings = RedisSettings {
                timing: metrics.redis_timing(),
                ..RedisSettings::clone(settings)
            };
            let (node, incoming) = connect_redis(&settings, &config.node_id).await?;
            (Arc::new(node), incoming)
        }
    };
    let mut aws = AwsContext::default();
    let opened = match db {
        Some(_) => None,
        None => wiring::embedded_db(&config.store)?,
    };
    let db = db.or(opened.as_ref());
    Ok(NodeDeps {
        conversations: wiring::conversation_store(&config.store, db, &mut aws).await?,
        events: wiring::event_store(&config.store, db, &mut aws).await?,
        proactive: wiring::proactive_store(&config.store, db, &mut aws).await?,
        links: AccountLinks::from_env().map_err(WiringError::from)?,
        bus: wiring::event_bus(&config.bus, in_process, &mut aws).await,
        coordination,
        incoming,
        metrics,
        github: Some(
            GitHubClient::new(GitHubConfig::from_env().map_err(WiringError::from)?)
                .map_err(WiringError::from)?,
        ),
    })
}
