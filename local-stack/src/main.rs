//! `make run`: the whole product on one machine with embedded defaults, on one port: the conversation
//! node (REST, Socket.IO, the agent loop) with the webhook route mounted beside it, one embedded store
//! under `DATA_DIR` shared by every part, and the in-process event bus, which delivers
//! `ProactiveConversationRequested` to the node's starter. Every published event is printed as one JSON
//! line on standard output. The Common Room sync runs on a timer when Keycloak is configured (in dry run
//! unless Common Room is), the cleanup on another (`CLEANUP_INTERVAL_SECONDS`: the outbox re-published
//! to the in-process bus, retention). Setting `AWS_ENDPOINT_URL`/table names, `EVENT_BUS_NAME`, `LLM_*`
//! or third-party URLs switches each part to its real adapter.
//!
//! Its own crate: it composes the functions' libraries (the node, the webhook, the sync, the cleanup)
//! as AWS wires the functions, and nothing of it ships in a function.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cleanup::{Cleanup, CleanupError, CleanupOptions};
use commonroom_sync::{SYNC_NAME, SyncConfig, SyncDeps, SyncOptions, run_sync};
use conversation_node::config::JwtKeys;
use conversation_node::{
    ConversationNode, Listeners, NodeConfig, NodeHandle, deps_from_config, install_panic_hook,
    mint_hs256, shutdown_signal,
};
use shared::adapters::in_process_bus::InProcessBus;
use shared::config::{self, StoreBackend};
use shared::domain::{
    ProactiveConversationRequested, RepoId, Repository, TRIGGER_DETAIL_TYPE, UserId,
};
use shared::github::{GitHubClient, GitHubConfig};
use shared::ports::{BusEvent, EventBus, ProactiveStore};
use shared::proactive::AccountLinks;
use shared::wiring::{self, AwsContext};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use webhook::{WEBHOOK_PATH, WebhookService, WebhookSettings};

/// Who the printed development token is for, and who owns repositories registered by configuration.
const LOCAL_USER: &str = "local-user";
const DEV_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    install_panic_hook();
    let node_config = NodeConfig::from_env().context("configuration")?;
    let webhook_settings = WebhookSettings::from_env().context("configuration")?;
    let webhook_secret = String::from_utf8_lossy(&webhook_settings.secret).into_owned();
    let backend = StoreBackend::from_env();
    let mut aws = AwsContext::default();
    let db = wiring::embedded_db(&backend)?;
    let bus = InProcessBus::default();

    let store = wiring::proactive_store(&backend, db.as_ref(), &mut aws).await?;
    register_configured_repositories(store.as_ref()).await?;
    let github = GitHubClient::new(GitHubConfig::from_env()?)?;
    let published = wiring::event_bus(&node_config.bus, &bus, &mut aws).await;
    let webhook = WebhookService::new(
        Arc::clone(&store),
        Arc::clone(&published),
        github.clone(),
        AccountLinks::from_env()?,
        webhook_settings,
    );

    let deps = deps_from_config(&node_config, db.as_ref(), &bus).await?;
    let node = ConversationNode::start(&node_config, deps)?;
    // The stack's own loops: stopped, and waited for, once the node has stopped serving.
    let mut loops = JoinSet::new();
    loops.spawn(deliver_events(
        bus.clone(),
        node.handle(),
        node_config.clone(),
    ));
    if let Some(sync) = periodic_sync(&backend, db.as_ref(), &mut aws).await? {
        loops.spawn(sync);
    }
    let (daily, reconcile) = periodic_cleanup(store, published, github)?;
    loops.spawn(daily);
    loops.spawn(reconcile);

    let app = node.router().merge(webhook::router(webhook));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", node_config.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", node_config.port))?;
    let address = listener.local_addr()?;
    let metrics = tokio::net::TcpListener::bind(node_config.metrics_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (METRICS_ADDR)",
                node_config.metrics_addr
            )
        })?;
    println!("local stack on http://{address}");
    println!(
        "  webhook:   POST http://{address}{} (secret: {webhook_secret})",
        WEBHOOK_PATH
    );
    println!("  REST:      http://{address}/api/conversations");
    println!("  Socket.IO: http://{address}/socket.io/");
    println!("  metrics:   http://{}/metrics", metrics.local_addr()?);
    println!("  store:     {}", describe(&backend));
    if let Some(token) = dev_token(&node_config, LOCAL_USER) {
        println!("  token for {LOCAL_USER}: {token}");
    }
    let listeners = Listeners {
        public: listener,
        metrics,
    };
    let served = node.serve(app, listeners, shutdown_signal()).await;
    loops.shutdown().await;
    Ok(served?)
}

fn describe(backend: &StoreBackend) -> String {
    match backend {
        StoreBackend::Embedded { data_dir } => {
            format!("embedded, {}", data_dir.join("store.sqlite").display())
        }
        StoreBackend::DynamoDb { tables } => format!(
            "DynamoDB, tables {}, {}, {}",
            tables.proactive, tables.conversations, tables.events
        ),
    }
}

/// A development token, when tokens are HS256 (a JWKS realm issues its own).
fn dev_token(config: &NodeConfig, user: &str) -> Option<String> {
    match &config.auth.keys {
        JwtKeys::Hs256Secret(secret) => Some(mint_hs256(secret, user, DEV_TOKEN_TTL)),
        JwtKeys::JwksUrl(_) => None,
    }
}

/// `PROACTIVE_REPOSITORIES=owner/name=<GitHub repository id>,...`: repositories a local run knows
/// without an `installation` webhook, owned by the local user.
async fn register_configured_repositories(store: &dyn ProactiveStore) -> anyhow::Result<()> {
    let Some(list) = config::var("PROACTIVE_REPOSITORIES") else {
        return Ok(());
    };
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry
            .split_once('=')
            .and_then(|(full, id)| Some((full.split_once('/')?, id.parse().ok()?)));
        let Some(((owner, name), id)) = parsed else {
            anyhow::bail!(
                "PROACTIVE_REPOSITORIES: expected owner/name=<repository id>, got `{entry}`"
            );
        };
        store
            .put_repository(&Repository {
                id: RepoId::from_github(id),
                owner: owner.to_owned(),
                name: name.to_owned(),
                installation_id: None,
                account: owner.to_owned(),
                user_id: UserId::parse(LOCAL_USER)?,
                proactive_enabled: true,
            })
            .await?;
        println!("registered {owner}/{name} for {LOCAL_USER}");
    }
    Ok(())
}

/// Prints every event of the in-process bus, and hands each trigger to the node's starter, as the
/// EventBridge rule does in AWS.
async fn deliver_events(bus: InProcessBus, node: NodeHandle, config: NodeConfig) {
    let mut events = bus.subscribe();
    loop {
        match events.recv().await {
            Ok(event) => {
                println!("{}", serde_json::to_string(&event).unwrap_or_default());
                if event.detail_type == TRIGGER_DETAIL_TYPE {
                    start_conversation(&node, &config, &event).await;
                }
            }
            Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "event printer fell behind"),
            Err(RecvError::Closed) => return,
        }
    }
}

async fn start_conversation(node: &NodeHandle, config: &NodeConfig, event: &BusEvent) {
    let trigger: ProactiveConversationRequested = match serde_json::from_value(event.detail.clone())
    {
        Ok(trigger) => trigger,
        Err(error) => return tracing::warn!(%error, "undecodable trigger"),
    };
    match node.start_proactive(&trigger).await {
        Ok(outcome) => {
            let id = outcome.conversation_id;
            println!(
                "proactive conversation {id} for {} (comment: {:?})",
                trigger.user_id, outcome.comment
            );
            if let Some(token) = dev_token(config, trigger.user_id.as_str()) {
                println!(
                    "  watch it: node tests/js/sio-client.mjs http://127.0.0.1:{} '{{\"query\":{{\"conversation_id\":\"{id}\"}},\"auth_token\":\"{token}\",\"transports\":\"default\"}}'",
                    config.port
                );
            }
        }
        Err(error) => {
            tracing::warn!(%error, trigger_id = %trigger.trigger_id, "proactive start failed")
        }
    }
}

/// The cleanup's pass every `CLEANUP_INTERVAL_SECONDS` (default 3600), first one interval after the
/// start: the outbox re-published to the bus the node listens on, then retention. The cluster steps
/// have nothing to do here (a standalone node leaves nothing behind).
fn periodic_cleanup(
    store: Arc<dyn ProactiveStore>,
    bus: Arc<dyn EventBus>,
    github: GitHubClient,
) -> anyhow::Result<(
    impl Future<Output = ()> + use<>,
    impl Future<Output = ()> + use<>,
)> {
    let every = Duration::from_secs(config::parsed("CLEANUP_INTERVAL_SECONDS", 3600u64)?.max(1));
    let reconcile_every =
        Duration::from_secs(config::parsed("PROACTIVE_RECONCILE_INTERVAL_SECONDS", 300u64)?.max(1));
    let options = CleanupOptions::from_env()?;
    let reconcile_options = CleanupOptions {
        reconcile_only: true,
        ..options.clone()
    };
    let cleanup = Cleanup::new(store, Some(bus)).with_github(github);
    println!(
        "  cleanup:   every {}s; stuck triggers reconciled every {}s",
        every.as_secs(),
        reconcile_every.as_secs()
    );
    Ok((
        cleanup_every(cleanup.clone(), options, every),
        cleanup_every(cleanup, reconcile_options, reconcile_every),
    ))
}

/// One cleanup pass with `options` every `every`, starting after the first interval.
async fn cleanup_every(cleanup: Cleanup, options: CleanupOptions, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        match cleanup.run(&options).await {
            Ok(summary) => summary.log(),
            Err(CleanupError::StepsFailed(summary)) => summary.log(),
        }
    }
}

/// The Common Room sync every `SYNC_INTERVAL_SECONDS` (default 300), when Keycloak is configured;
/// a dry run unless Common Room is.
async fn periodic_sync(
    backend: &StoreBackend,
    db: Option<&shared::adapters::embedded::EmbeddedDb>,
    aws: &mut AwsContext,
) -> anyhow::Result<Option<impl std::future::Future<Output = ()> + use<>>> {
    if config::var("KEYCLOAK_SERVER_URL").is_none() {
        println!(
            "  sync:      off (set KEYCLOAK_* to run it; a dry run unless COMMON_ROOM_API_KEY is set)"
        );
        return Ok(None);
    }
    let sync_config = SyncConfig::from_env(config::var("COMMON_ROOM_API_KEY").is_none())?;
    let every = Duration::from_secs(config::parsed("SYNC_INTERVAL_SECONDS", 300u64)?);
    let conversations = wiring::conversation_store(backend, db, aws).await?;
    let state = wiring::sync_state_store(backend, db, aws, SYNC_NAME).await?;
    let deps = Arc::new(SyncDeps::new(&sync_config, conversations, state)?);
    let dry_run = sync_config.dry_run;
    println!(
        "  sync:      every {}s{}",
        every.as_secs(),
        if dry_run { ", dry run" } else { "" }
    );
    Ok(Some(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            if let Err(error) = run_sync(
                &deps,
                SyncOptions {
                    since: None,
                    dry_run,
                },
            )
            .await
            {
                tracing::warn!(%error, "sync run failed");
            }
        }
    }))
}
