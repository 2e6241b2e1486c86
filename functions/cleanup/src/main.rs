//! Entry point: under the Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is set (a schedule invokes it),
//! else one pass from the command line (`cleanup --help`), printing the summary as JSON. The secret
//! (`SECRETS_ARN`) is read first; under Lambda the cleanup is built again when it has a new version.

use std::process::ExitCode;

use clap::Parser;
use cleanup::{Cleanup, CleanupError, CleanupOptions, CleanupSummary, Overrides};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::secrets::{self, Refreshed};

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let cli = (!in_lambda).then(Overrides::parse);
    match start(cli).await {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(%error, "cleanup stopped");
            eprintln!("cleanup: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Option<Overrides>) -> anyhow::Result<ExitCode> {
    secrets::load().await?;
    let configured = CleanupOptions::from_env()?;
    let cleanup = Refreshed::build(Cleanup::from_env).await?;
    let Some(overrides) = cli else {
        lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
            let (cleanup, configured) = (&cleanup, &configured);
            async move { invoke(&*cleanup.current().await, configured, event.payload).await }
        }))
        .await
        .map_err(|e| anyhow::anyhow!("lambda runtime: {e}"))?;
        return Ok(ExitCode::SUCCESS);
    };
    let cleanup = cleanup.current().await;
    let (summary, code) = match cleanup.run(&overrides.apply(&configured)).await {
        Ok(summary) => (summary, ExitCode::SUCCESS),
        Err(CleanupError::StepsFailed(summary)) => (*summary, ExitCode::FAILURE),
    };
    summary.log();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(code)
}

/// One scheduled invocation: the summary is the result; a failed step fails the invocation (so that
/// the schedule's retries and the function's error metric see it) after the summary is logged.
async fn invoke(
    cleanup: &Cleanup,
    configured: &CleanupOptions,
    event: Value,
) -> Result<CleanupSummary, lambda_runtime::Error> {
    let options = Overrides::from_event(event)?.apply(configured);
    match cleanup.run(&options).await {
        Ok(summary) => {
            summary.log();
            Ok(summary)
        }
        Err(error) => {
            let CleanupError::StepsFailed(summary) = &error;
            summary.log();
            Err(error.into())
        }
    }
}
