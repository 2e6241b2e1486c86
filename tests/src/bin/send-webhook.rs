//! Sends a sample webhook to the local endpoint, re-signed with its secret:
//! `cargo run -p e2e --bin send-webhook -- --url http://127.0.0.1:3000/webhooks/github
//!  --secret local-webhook-secret events/webhook/workflow-run-completed-failure.json`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use e2e::webhook_samples::{LOCAL_WEBHOOK_SECRET, at_commit};
use e2e::webhook_sender::{read_delivery, send};

#[derive(Parser)]
#[command(about = "POST a signed GitHub webhook delivery from a sample file")]
struct Args {
    /// The webhook endpoint.
    #[arg(long, default_value = "http://127.0.0.1:3000/webhooks/github")]
    url: String,
    /// The endpoint's webhook secret.
    #[arg(long, default_value = LOCAL_WEBHOOK_SECRET)]
    secret: String,
    /// The GitHub event; required for a raw payload, overrides an API Gateway sample's header.
    #[arg(long)]
    event: Option<String>,
    /// The delivery id; default a fresh UUID, so that resending is not a duplicate.
    #[arg(long)]
    delivery: Option<String>,
    /// Sends the sample about this commit instead of its own (a local repository's, as the fake
    /// GitHub's `--commit`).
    #[arg(long)]
    commit: Option<String>,
    /// An API Gateway v2 request (`events/webhook/*.json`) or a raw GitHub payload.
    file: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let mut file =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    if let Some(commit) = &args.commit {
        file = at_commit(&String::from_utf8_lossy(&file), commit).into_bytes();
    }
    let mut delivery = read_delivery(&file, args.event.as_deref())
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("reading {}", args.file.display()))?;
    delivery.delivery_id = args
        .delivery
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    println!(
        "POST {} event={} delivery={}",
        args.url, delivery.event, delivery.delivery_id
    );
    let answer = send(&args.url, args.secret.as_bytes(), &delivery)
        .await
        .with_context(|| format!("sending to {}", args.url))?;
    println!("{}", answer.status);
    println!("{}", serde_json::to_string_pretty(&answer.body)?);
    Ok(if (200..300).contains(&answer.status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
