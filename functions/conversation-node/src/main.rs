//! The conversation node's process: configuration and adapters from the environment, then serve until
//! SIGTERM or SIGINT. It listens before its ports are ready (see `startup`). See `docs/node.md`.

use anyhow::Context;
use conversation_node::{
    ConversationNode, NodeConfig, Waited, deps_from_config, install_panic_hook, serve_until_ready,
    shutdown_signal,
};
use shared::adapters::in_process_bus::InProcessBus;

fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    install_panic_hook();
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
    // The secret (`SECRETS_ARN`) is read once, at start: a rotation reaches the nodes as new tasks
    // start (a deployment, a scale-out, a replaced task), not while one runs.
    runtime.block_on(shared::secrets::load())?;
    let config = NodeConfig::from_env().context("configuration")?;
    runtime.block_on(run(config))
}

async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", config.port))
        .with_context(|| format!("cannot listen on port {}", config.port))?;
    listener.set_nonblocking(true)?;
    let metrics = std::net::TcpListener::bind(config.metrics_addr)
        .with_context(|| format!("cannot listen on {} (METRICS_ADDR)", config.metrics_addr))?;
    metrics.set_nonblocking(true)?;
    tracing::info!(
        address = %listener.local_addr()?,
        metrics_address = %metrics.local_addr()?,
        node_id = %config.node_id,
        "listening"
    );
    let mut stop = Box::pin(shutdown_signal());
    let bus = InProcessBus::default();
    let deps = deps_from_config(&config, None, &bus);
    let (deps, listeners) = match serve_until_ready(listener, metrics, deps, &mut stop).await? {
        Waited::Ready(deps, listeners) => (deps?, listeners),
        Waited::Stopped => {
            tracing::info!(node_id = %config.node_id, "stopped before it was ready");
            return Ok(());
        }
    };
    let node = ConversationNode::start(&config, deps)?;
    let app = node.router();
    node.serve(app, listeners, stop).await?;
    Ok(())
}
