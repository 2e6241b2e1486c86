//! P11: what the `openhands` runtime's relay adds. A real agent-server runs the conversation's agent (the
//! scripted fake model has it run one terminal command per step); two clients in one Node.js process
//! (`bench/js/relay-watch.mjs`) time each agent-server event from the moment the server stamped it, one
//! straight on the agent-server's WebSocket, one through the node's Socket.IO. The difference of the
//! two is the relay: the node reading the event, storing it (fenced), publishing it to the room and
//! emitting it. The node's CPU over the run, per relayed event, beside it.

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

/// One run's figures: from the agent-server stamping each event to its arrival at each client.
struct Relay {
    direct: Samples,
    through_node: Samples,
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
    let (mut direct, mut through_node) = (Samples::default(), Samples::default());
    for event in done["events"].as_array().context("the events")? {
        let times: Option<Vec<u64>> = (0..3).map(|i| event[i].as_u64()).collect();
        let Some([stamped, to_direct, to_node]) = times.as_deref() else {
            bail!("a malformed row {event}");
        };
        direct.push(Duration::from_micros(to_direct.saturating_sub(*stamped)));
        through_node.push(Duration::from_micros(to_node.saturating_sub(*stamped)));
    }
    if direct.len() < steps {
        bail!("only {} events seen by both clients", direct.len());
    }
    Ok(Relay {
        direct,
        through_node,
        node_cpu_ms,
    })
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
    let (mut added_p50, mut added_p99, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..sizes.runs {
        let mut relay = one_run(sizes.relay_steps).await?;
        let at = |samples: &mut Samples, p: f64| ms(samples.percentile(p));
        let direct = (at(&mut relay.direct, 50.0), at(&mut relay.direct, 99.0));
        let node = (
            at(&mut relay.through_node, 50.0),
            at(&mut relay.through_node, 99.0),
        );
        let cpu = relay.node_cpu_ms / relay.direct.len() as f64;
        println!(
            "P11 relay, {} events: agent-server's own stream p50 {:.3} ms, p99 {:.3} ms; through the node p50 {:.3} ms, p99 {:.3} ms; node CPU {cpu:.3} ms per relayed event",
            relay.direct.len(),
            direct.0,
            direct.1,
            node.0,
            node.1
        );
        added_p50.push(node.0 - direct.0);
        added_p99.push(node.1 - direct.1);
        cpus.push(cpu);
    }
    println!(
        "P11 median of {} runs: added p50 {:.3} ms, p99 {:.3} ms (bar: p99 <= 5 ms); node CPU {:.3} ms per relayed event",
        sizes.runs,
        median(added_p50),
        median(added_p99),
        median(cpus)
    );
    Ok(())
}
