//! P11: what the `openhands` runtime's relay adds. A real agent-server runs the conversation's agent (the
//! scripted fake model has it run one terminal command per step); two clients in one Node.js process
//! (one clock: `bench/js/relay-watch.mjs`) time each agent-server event, one straight on the
//! agent-server's WebSocket, one through the node's Socket.IO. The difference is the relay: the node
//! reading the event, storing it (fenced), publishing it to the room and emitting it. The node's CPU
//! over the run, per relayed event, beside it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e::agent_server::AgentServer;
use e2e::fakes::llm::{AgentStep, FakeLlm};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::procfs;
use super::servers::{Cluster, workspace};
use super::{Sizes, median};
use crate::stats::{Samples, ms};

const KEY: &str = "relay-bench-key";
const FINISH: &str = "Relay benchmark done.";
const USER: &str = "relay-bench";
/// How long the agent may take for the whole script.
const PATIENCE: Duration = Duration::from_secs(300);

/// One run's figures.
struct Relay {
    /// Through the node minus straight from the agent-server, per event.
    added: Samples,
    node_cpu_ms: f64,
}

async fn one_run(steps: usize) -> anyhow::Result<Relay> {
    let model = FakeLlm::start(KEY).await;
    model.script_steps(
        (0..steps)
            .map(|step| AgentStep::Terminal(format!("echo step-{step}")))
            .chain([AgentStep::Finish(FINISH.into())]),
    );
    let server = AgentServer::start().await;
    let env = [
        ("AGENT_RUNTIME", "openhands".to_owned()),
        ("AGENT_SERVER_URL", server.url()),
        ("AGENT_SERVER_API_KEY", server.api_key.clone()),
        (
            "AGENT_SERVER_WORKSPACE_ROOT",
            server.workspace_root().display().to_string(),
        ),
        ("AGENT_MAX_ITERATIONS", (steps + 10).to_string()),
        ("LLM_MODEL", "fake-model".to_owned()),
        ("LLM_BASE_URL", model.url().to_owned()),
        ("LLM_API_KEY", KEY.to_owned()),
    ];
    let cluster = Cluster::start_with(1, &env).await?;
    let node = &cluster.nodes[0];
    let conversation = cluster.conversation(0, USER).await?;
    let remote = attached(&server).await?;

    let config = json!({
        "node_url": node.url,
        "conversation_id": conversation,
        "token": e2e::node::token(USER),
        "server_url": server.url(),
        "api_key": server.api_key,
        "remote_id": remote,
        "message": "run the steps",
        "until": FINISH,
    });
    let mut watcher = Command::new("node")
        .arg(workspace().join("bench/js/relay-watch.mjs"))
        .arg(config.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting node (Node.js) with bench/js/relay-watch.mjs")?;
    let mut stdin = watcher.stdin.take().context("its input")?;
    let mut lines = BufReader::new(watcher.stdout.take().context("its output")?).lines();
    let mut next_line = async || -> anyhow::Result<Value> {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .context("the relay watcher is silent")??
            .context("the relay watcher exited")?;
        let parsed: Value = serde_json::from_str(&line)?;
        if parsed["type"] == "error" {
            bail!("relay watcher: {}", parsed["message"]);
        }
        Ok(parsed)
    };
    next_line().await?;
    let cpu_before = procfs::cpu_ms(node.pid())?;
    stdin.write_all(b"go\n").await?;
    let done = next_line().await?;
    let node_cpu_ms = procfs::cpu_ms(node.pid())? - cpu_before;
    let mut added = Samples::default();
    for pair in done["pairs"].as_array().context("the pairs")? {
        let (direct, through_node) = (pair[0].as_u64(), pair[1].as_u64());
        let (Some(direct), Some(through_node)) = (direct, through_node) else {
            bail!("a malformed pair {pair}");
        };
        added.push(Duration::from_micros(through_node.saturating_sub(direct)));
    }
    if added.len() < steps {
        bail!("only {} events seen by both clients", added.len());
    }
    Ok(Relay { added, node_cpu_ms })
}

/// The remote conversation the node created on `server` for its conversation.
async fn attached(server: &AgentServer) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(id) = server
            .conversations()
            .await
            .first()
            .and_then(|conversation| conversation["id"].as_str())
        {
            return Ok(id.to_owned());
        }
        if Instant::now() > deadline {
            bail!("the node did not create its remote conversation");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let (mut p50s, mut p99s, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.runs {
        let mut relay = one_run(sizes.relay_steps).await?;
        let (p50, p99) = (
            ms(relay.added.percentile(50.0)),
            ms(relay.added.percentile(99.0)),
        );
        let cpu = relay.node_cpu_ms / relay.added.len() as f64;
        println!(
            "P11 relay, {} events: added p50 {p50:.3} ms, p99 {p99:.3} ms; node CPU {cpu:.3} ms per relayed event",
            relay.added.len()
        );
        p50s.push(p50);
        p99s.push(p99);
        cpus.push(cpu);
    }
    println!(
        "P11 median of {} runs: added p50 {:.3} ms, p99 {:.3} ms (bar: p99 <= 5 ms); node CPU {:.3} ms per relayed event",
        sizes.runs,
        median(p50s),
        median(p99s),
        median(cpus)
    );
    Ok(())
}
