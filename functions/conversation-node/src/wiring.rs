//! The node's ports from its configuration: the stores and bus the environment names (see
//! `shared::wiring`), the coordination backend, the GitHub client.

use std::sync::Arc;

use shared::adapters::embedded::EmbeddedDb;
use shared::adapters::in_process_bus::InProcessBus;
use shared::adapters::local_cluster::LocalCluster;
use shared::github::{GitHubClient, GitHubConfig};
use shared::wiring::{self, AwsContext, WiringError};

use crate::app::NodeDeps;
use crate::config::{CoordinationBackend, NodeConfig};

#[derive(Debug, thiserror::Error)]
pub enum NodeWiringError {
    #[error(transparent)]
    Wiring(#[from] WiringError),
    #[error(
        "REDIS_URL is set, but this build has no Redis coordination adapter: unset it to run standalone"
    )]
    RedisUnsupported,
}

/// The ports `config` names. `db` is the embedded database when the store is embedded (`None` opens
/// it); `in_process` is the bus used when no EventBridge bus is configured. The local stack passes the
/// ones its other parts share.
pub async fn deps_from_config(
    config: &NodeConfig,
    db: Option<&EmbeddedDb>,
    in_process: &InProcessBus,
) -> Result<NodeDeps, NodeWiringError> {
    let (coordination, incoming) = match &config.coordination {
        CoordinationBackend::Standalone => {
            LocalCluster::new(config.timing.lease_ttl).join(config.node_id.clone())
        }
        CoordinationBackend::Redis { .. } => return Err(NodeWiringError::RedisUnsupported),
    };
    let mut aws = AwsContext::default();
    let opened = match db {
        Some(_) => None,
        None => wiring::embedded_db(&config.store).map_err(WiringError::from)?,
    };
    let db = db.or(opened.as_ref());
    Ok(NodeDeps {
        conversations: wiring::conversation_store(&config.store, db, &mut aws).await?,
        events: wiring::event_store(&config.store, db, &mut aws).await?,
        bus: wiring::event_bus(&config.bus, in_process, &mut aws).await,
        coordination: Arc::new(coordination),
        incoming,
        github: Some(
            GitHubClient::new(GitHubConfig::from_env().map_err(WiringError::from)?)
                .map_err(WiringError::from)?,
        ),
    })
}
