//! The scripted OpenAI-compatible model as a server for local runs: point `LLM_BASE_URL` at it.
//! An agent (the `openhands` runtime) gets the `--terminal` commands as tool calls, in order, then
//! `--finish`; past the script, and for plain chat, it answers `model says: <the last user message>`.
//! `cargo run -p e2e --bin fake-model -- --port 3002 --terminal "git log --oneline -3" --finish "Done."`

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use e2e::fakes::llm::{AgentStep, FakeLlm};

#[derive(Parser)]
#[command(about = "Serve a local scripted OpenAI-compatible model")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3002)]
    port: u16,
    /// The API key it accepts (`LLM_API_KEY`).
    #[arg(long, default_value = "local-model-key")]
    key: String,
    /// A command the agent runs in its terminal (repeatable, in order).
    #[arg(long)]
    terminal: Vec<String>,
    /// What the agent says when it finishes.
    #[arg(long)]
    finish: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model = FakeLlm::start_on(SocketAddr::from(([127, 0, 0, 1], args.port)), &args.key)
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    model.script_steps(
        args.terminal
            .into_iter()
            .map(AgentStep::Terminal)
            .chain(args.finish.map(AgentStep::Finish)),
    );
    println!(
        "fake model listening  (LLM_BASE_URL={} LLM_MODEL=fake-model LLM_API_KEY={})",
        model.url(),
        args.key
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
