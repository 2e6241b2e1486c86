//! The conversation node's process: configuration and adapters from the environment, then serve until
//! SIGTERM or SIGINT. See `docs/node.md`.

use anyhow::Context;
use conversation_node::{ConversationNode, NodeConfig, shutdown, wiring};
use shared::adapters::in_process_bus::InProcessBus;

fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let config = NodeConfig::from_env().context("configuration")?;
    // One core per process by default: a current-thread runtime costs the least CPU per round trip,
    // and nodes scale out as processes. `NODE_WORKER_THREADS` > 1 selects the multi-thread runtime.
    let workers: usize = shared::config::parsed("NODE_WORKER_THREADS", 1)?;
    let runtime = if workers > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .context("tokio runtime")?;
    runtime.block_on(run(config))
}

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let deps = wiring::deps_from_config(&config, None, &InProcessBus::default()).await?;
    let node = ConversationNode::start(&config, deps)?;
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port))
        .await
        .with_context(|| format!("cannot listen on port {}", config.port))?;
    tracing::info!(address = %listener.local_addr()?, node_id = %node.node_id(), "listening");
    let app = node.router();
    node.serve(app, listener, shutdown::signal()).await?;
    Ok(())
}
