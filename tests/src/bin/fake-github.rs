//! The GitHub fake as a server for local runs: point `GITHUB_API_URL` at it.
//! `cargo run -p e2e --bin fake-github -- --port 3001 --seed events/github-seed.json`

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use e2e::fakes::github::{FakeGitHub, Seed, TEST_APP_PUBLIC_KEY_PEM};
use e2e::webhook_samples::{NAME, OWNER};
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
    /// Serves the git repository in this directory as the seeded repository's clone, its `HEAD`
    /// standing in for the samples' head commit (send the samples with `send-webhook --commit`).
    #[arg(long, value_name = "DIR")]
    repository: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let fake = FakeGitHub::start_on(SocketAddr::from(([127, 0, 0, 1], args.port)))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let checkout = args.repository.as_deref().map(local_head).transpose()?;
    if let Some(path) = &args.seed {
        let commit = checkout.as_ref().map(|(_, commit)| commit.as_str());
        let seed = Seed::load_at(path, commit).map_err(anyhow::Error::msg)?;
        fake.apply_seed(&seed).map_err(anyhow::Error::msg)?;
        println!(
            "seeded from {} ({} repositories)",
            path.display(),
            seed.repositories.len()
        );
    }
    if let Some((url, commit)) = &checkout {
        let repository = format!("{OWNER}/{NAME}");
        fake.set_clone_url(&repository, url);
        println!("{repository} clones from {url}, its pull request at {commit}");
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

/// A local repository's `file://` URL and its `HEAD` commit.
fn local_head(dir: &std::path::Path) -> anyhow::Result<(String, String)> {
    let dir = std::path::absolute(dir)?;
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .context("running git")?;
    anyhow::ensure!(
        head.status.success(),
        "{} is not a git repository with a commit",
        dir.display()
    );
    let commit = String::from_utf8(head.stdout)?.trim().to_owned();
    Ok((format!("file://{}", dir.display()), commit))
}
