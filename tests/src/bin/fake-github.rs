//! The GitHub fake as a server for local runs: point `GITHUB_API_URL` at it.
//! `cargo run -p e2e --bin fake-github -- --port 3001 --seed events/github-seed.json`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use e2e::fakes::github::{FakeGitHub, Seed, TEST_APP_PUBLIC_KEY_PEM};
use tokio::sync::broadcast::error::RecvError;

#[derive(Parser)]
#[command(about = "Serve a local fake of GitHub's REST API")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3001)]
    port: u16,
    /// Repositories, pull requests, runs and collaborators to serve.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Also accept this token (as `Bearer` or `token`). Once a token or an App is configured, every
    /// call needs a credential; before, anonymous reads are answered.
    #[arg(long)]
    token: Option<String>,
    /// Accept JWTs of a GitHub App with this id, signed with the test key
    /// `tests/src/fakes/github/github-app-test-key.pem`; the seed's `installation_id`s are its installations.
    #[arg(long)]
    app_id: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fake = FakeGitHub::start_on(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    if let Some(path) = &args.seed {
        let seed = Seed::load(path).map_err(anyhow::Error::msg)?;
        fake.apply_seed(&seed).map_err(anyhow::Error::msg)?;
        println!(
            "seeded from {} ({} repositories)",
            path.display(),
            seed.repositories.len()
        );
    }
    if let Some(token) = &args.token {
        fake.require_token(token);
    }
    if let Some(app_id) = args.app_id {
        fake.register_app(app_id, TEST_APP_PUBLIC_KEY_PEM);
    }
    println!(
        "fake GitHub listening on {}  (GITHUB_API_URL={})",
        fake.url(),
        fake.url()
    );
    let mut answered = fake.subscribe();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            record = answered.recv() => match record {
                Ok(r) => {
                    let query = if r.query.is_empty() { String::new() } else { format!("?{}", r.query) };
                    println!("{} {}{} -> {} ({})", r.method, r.path, query, r.status, r.credential);
                }
                Err(RecvError::Lagged(missed)) => println!("({missed} requests not shown)"),
                Err(RecvError::Closed) => return Ok(()),
            },
        }
    }
}
