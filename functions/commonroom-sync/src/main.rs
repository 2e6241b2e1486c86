//! The Common Room sync: under the Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is set (an EventBridge
//! schedule invokes it), else one run from the command line. The secret (`SECRETS_ARN`) is read, then
//! configuration is checked and clients are built once, before the first invocation (and again when the
//! secret has a new version).

use std::process::ExitCode;

use clap::Parser;
use commonroom_sync::{Args, open_stores, options_from_event};
use commonroom_sync::{SyncConfig, SyncDeps, SyncError, SyncOptions, SyncSummary, run_sync};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use shared::config::StoreBackend;
use shared::secrets::{self, Refreshed};

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    match start().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(error = %message, "commonroom-sync stopped");
            eprintln!("commonroom-sync: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn start() -> Result<(), String> {
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let cli = if in_lambda {
        None
    } else {
        let options = Args::parse().options(chrono::Utc::now());
        Some(options.map_err(|e| e.to_string())?)
    };
    secrets::load().await.map_err(|e| e.to_string())?;
    match cli {
        Some(mut options) => {
            let (deps, dry_run) = configured(options.dry_run).await?;
            options.dry_run |= dry_run;
            let summary = run_sync(&deps, options).await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            Ok(())
        }
        None => {
            let sync = Refreshed::build(|| configured(false)).await?;
            lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
                let sync = &sync;
                async move {
                    let current = sync.current().await;
                    let (deps, dry_run) = current.as_ref();
                    handle(deps, event, *dry_run).await
                }
            }))
            .await
            .map_err(|e| e.to_string())
        }
    }
}

/// The sync's clients and stores from configuration, and whether it only counts (`dry_run`).
async fn configured(forced_dry_run: bool) -> Result<(SyncDeps, bool), String> {
    let config = SyncConfig::from_env(forced_dry_run).map_err(|e| e.to_string())?;
    let (conversations, state) = open_stores(&StoreBackend::from_env())
        .await
        .map_err(|e| e.to_string())?;
    let deps = SyncDeps::new(&config, conversations, state).map_err(|e| e.to_string())?;
    Ok((deps, config.dry_run))
}

async fn handle(
    deps: &SyncDeps,
    event: LambdaEvent<serde_json::Value>,
    dry_run: bool,
) -> Result<SyncSummary, Failure> {
    let options = options_from_event(&event.payload, chrono::Utc::now()).map_err(|e| Failure {
        kind: "InvalidInvocation",
        message: e.to_string(),
    })?;
    let options = SyncOptions {
        dry_run: options.dry_run || dry_run,
        ..options
    };
    run_sync(deps, options).await.map_err(Failure::from)
}

/// The Lambda's error: an `errorType` per failure kind.
#[derive(Debug)]
struct Failure {
    kind: &'static str,
    message: String,
}

impl From<SyncError> for Failure {
    fn from(error: SyncError) -> Self {
        Self {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Self {
        Diagnostic {
            error_type: failure.kind.into(),
            error_message: failure.message,
        }
    }
}
