//! Regenerates `events/webhook/*.json` and `events/github-seed.json` from the GitHub fixtures:
//! `cargo run -p e2e --bin make-webhook-samples` (from the repository's root).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use e2e::webhook_samples::render;

#[derive(Parser)]
#[command(about = "Write the signed sample webhooks and the GitHub fake's seed")]
struct Args {
    /// The real GitHub payloads the samples derive from.
    #[arg(long, default_value = "events/github-webhooks")]
    fixtures: PathBuf,
    /// Where `webhook/` and `github-seed.json` go.
    #[arg(long, default_value = "events")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for (relative, text) in render(&args.fixtures).map_err(anyhow::Error::msg)? {
        let path = args.out.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
