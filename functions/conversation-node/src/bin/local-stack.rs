//! `make run`: the whole product on one machine with embedded defaults. The webhook endpoint over the
//! embedded store (under `DATA_DIR`) and the in-process event bus, whose events are printed as JSON lines
//! on standard output. Setting `AWS_ENDPOINT_URL`/table names or `EVENT_BUS_NAME` switches to AWS adapters.

use std::net::SocketAddr;

use anyhow::Context;
use shared::adapters::in_process_bus::InProcessBus;
use shared::config::{self, BusBackend, StoreBackend};
use shared::github::{GitHubClient, GitHubConfig};
use shared::webhook::{WebhookService, WebhookSettings, http_route};
use shared::wiring::{self, AwsContext};
use tokio::sync::broadcast::error::RecvError;

/// The documented secret of local runs; production requires `GITHUB_WEBHOOK_SECRET` to be set.
const LOCAL_WEBHOOK_SECRET: &str = "local-webhook-secret";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init();
    let port: u16 = config::parsed("PORT", 3000)?;
    let settings = WebhookSettings::from_env_or_local_secret(LOCAL_WEBHOOK_SECRET)?;
    let webhook_secret = String::from_utf8_lossy(&settings.secret).into_owned();

    let backend = StoreBackend::from_env();
    let mut aws = AwsContext::default();
    let db = wiring::embedded_db(&backend)?;
    let store = wiring::proactive_store(&backend, db.as_ref(), &mut aws).await?;
    let in_process = InProcessBus::default();
    let bus = wiring::event_bus(&BusBackend::from_env(), &in_process, &mut aws).await;
    let github = GitHubClient::new(GitHubConfig::from_env()?)?;
    let webhook = WebhookService::new(store, bus, github, settings);

    tokio::spawn(print_events(in_process));
    let app = http_route::router(webhook);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    println!("webhook: POST http://{address}{}", http_route::WEBHOOK_PATH);
    println!("webhook secret: {webhook_secret}");
    println!("store: {}", describe(&backend));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

fn describe(backend: &StoreBackend) -> String {
    match backend {
        StoreBackend::Embedded { data_dir } => {
            format!("embedded, {}", data_dir.join("store.sqlite").display())
        }
        StoreBackend::DynamoDb { tables } => format!("DynamoDB, table {}", tables.proactive),
    }
}

/// Prints every event published on the in-process bus as one JSON line.
async fn print_events(bus: InProcessBus) {
    let mut events = bus.subscribe();
    loop {
        match events.recv().await {
            Ok(event) => println!("{}", serde_json::to_string(&event).unwrap_or_default()),
            Err(RecvError::Lagged(missed)) => tracing::warn!(missed, "event printer fell behind"),
            Err(RecvError::Closed) => return,
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = interrupt => {}, _ = terminate => {} }
}
