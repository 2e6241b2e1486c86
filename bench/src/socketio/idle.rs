//! P7: idle Socket.IO connections held by one server: (RSS with N connections - RSS with none) / N,
//! from `/proc/<pid>/status`. Our node holds them on a few conversations it runs; the peers and the bare
//! socketioxide server on as many rooms.

use std::time::Duration;

use serde_json::json;

use super::generator::{Generator, Target};
use super::procfs::rss_kb;
use super::servers::{Cluster, Peer, Server, echo};
use super::{Sizes, median};

/// Connections per generator process (each holds one file descriptor per connection).
const PER_GENERATOR: usize = 5_000;
/// Conversations (rooms) the connections are spread over.
const ROOMS: usize = 10;
/// Time for the server to settle after a change of load.
const SETTLE: Duration = Duration::from_secs(2);

/// KB of RSS per connection for `count` connections spread over `targets` (one server).
async fn per_connection(server: &Server, targets: &[Target], count: usize) -> anyhow::Result<f64> {
    tokio::time::sleep(SETTLE).await;
    let before = rss_kb(server.pid())?;
    let mut generators = Vec::new();
    let mut left = count;
    while left > 0 {
        let share = left.min(PER_GENERATOR);
        generators.push(Generator::idle(targets, share).await?);
        left -= share;
    }
    tokio::time::sleep(SETTLE).await;
    let after = rss_kb(server.pid())?;
    for generator in generators {
        generator.close().await?;
    }
    Ok((after as f64 - before as f64) / count as f64)
}

/// The servers compared.
#[derive(Clone, Copy)]
enum Holder {
    OurNode,
    Peer(Peer),
    /// Bare socketioxide; `true`: with the node's memory fixes (the floor).
    Bare(bool),
}

impl Holder {
    fn name(self) -> &'static str {
        match self {
            Self::OurNode => "our node",
            Self::Peer(peer) => peer.name(),
            Self::Bare(false) => "bare socketioxide (defaults, current-thread)",
            Self::Bare(true) => "bare socketioxide (the node's memory fixes, current-thread)",
        }
    }

    /// KB per connection on a fresh server, so that no run finds memory a previous one freed.
    async fn measure(self, count: usize) -> anyhow::Result<f64> {
        match self {
            Self::OurNode => {
                let cluster = Cluster::start(1).await?;
                let mut targets = Vec::new();
                for room in 0..ROOMS {
                    let user = format!("bench-p7-{room}");
                    targets.push(Target {
                        url: cluster.nodes[0].url.clone(),
                        conversation_id: cluster.conversation(0, &user).await?,
                        token: e2e::node::token(&user),
                    });
                }
                per_connection(&cluster.nodes[0], &targets, count).await
            }
            Self::Peer(peer) => {
                let server = peer.start(1).await?.remove(0);
                per_connection(&server, &rooms(&server), count).await
            }
            Self::Bare(lean) => {
                let server = echo(lean).await?;
                per_connection(&server, &rooms(&server), count).await
            }
        }
    }
}

/// Targets on the peers' rooms `c0`, `c1`, ...
fn rooms(server: &Server) -> Vec<Target> {
    (0..ROOMS)
        .map(|room| Target {
            url: server.url.clone(),
            conversation_id: format!("c{room}"),
            token: "unused".into(),
        })
        .collect()
}

pub(super) async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let count = sizes.p7_connections;
    let holders = [
        Holder::OurNode,
        Holder::Peer(Peer::NodeJs),
        Holder::Peer(Peer::Python),
        Holder::Bare(false),
        Holder::Bare(true),
    ];
    let measured = holders
        .into_iter()
        .filter(|holder| sizes.peers || matches!(holder, Holder::OurNode));
    let mut figures = Vec::new();
    for holder in measured {
        let mut runs = Vec::new();
        for run in 1..=sizes.runs {
            let kb = holder.measure(count).await?;
            println!(
                "P7 {}, run {run}: {kb:.1} KB RSS per connection at {count} connections",
                holder.name()
            );
            runs.push(kb);
        }
        let kb = median(runs.clone());
        println!(
            "P7 {}, median of {}: {kb:.1} KB RSS per connection at {count} connections",
            holder.name(),
            sizes.runs,
        );
        figures.push(json!({ "server": holder.name(), "kb_per_connection": kb, "runs": runs }));
    }
    e2e::bench_out::save(
        "socketio-p7",
        &json!({ "bar": "P7", "connections": count, "servers": figures }),
    );
    Ok(())
}
