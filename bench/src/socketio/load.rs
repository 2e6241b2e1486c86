//! P6: clients sending as fast as answered (each sends its next action once the previous one is
//! answered), against 2 and 3 conversation nodes, each client on another node than its conversation's
//! owner; the same against the peers (node.js socket.io, python-socketio), and a bare socketioxide server
//! as the floor. The
//! servers' CPU time (user + system, every server process) over the window, per round trip.

use serde_json::{Value, json};

use super::generator::{Generator, Outcome, Target};
use super::procfs::total_cpu_ms;
use super::servers::{Cluster, Peer, Server, echo, pids};
use super::{Sizes, median};
use crate::stats::ms;

/// One window's figures.
struct Figures {
    per_second: f64,
    p99_ms: f64,
    cpu_ms_per_round_trip: f64,
    generator_cores: f64,
}

async fn measure(servers: &[Server], targets: &[Target], sizes: &Sizes) -> anyhow::Result<Figures> {
    let generator =
        Generator::round_trips(targets, None, Some(sizes.p6_window), sizes.warmup).await?;
    let pids = pids(servers);
    let cpu_before = total_cpu_ms(&pids)?;
    let mut outcome: Outcome = generator.go().await?;
    let cpu = total_cpu_ms(&pids)? - cpu_before;
    Ok(Figures {
        per_second: outcome.per_second(),
        p99_ms: ms(outcome.samples.percentile(99.0)),
        cpu_ms_per_round_trip: cpu / outcome.samples.len() as f64,
        generator_cores: outcome.generator_cores(),
    })
}

/// Measures `sizes.runs` windows and prints each and their medians; returns the medians for `bench plot`.
async fn report(
    (server, count): (&str, usize),
    servers: &[Server],
    targets: &[Target],
    sizes: &Sizes,
) -> anyhow::Result<Value> {
    // The floor is one server: no count in its name.
    let name = match count {
        1 => format!("{server}, {} clients", targets.len()),
        _ => format!("{server} x{count}, {} clients", targets.len()),
    };
    let mut runs = Vec::new();
    for run in 1..=sizes.runs {
        // A peer that loses an answer (Redis pub/sub delivers at most once) fails its run, not the family.
        let figures = match measure(servers, targets, sizes).await {
            Ok(figures) => figures,
            Err(error) => {
                println!("P6 {name}, run {run}: failed: {error:#}");
                continue;
            }
        };
        println!(
            "P6 {name}, run {run}: {:.0} round trips/s, p99 {:.3} ms, {:.4} server CPU-ms per round trip \
             (generator {:.0}% of a core)",
            figures.per_second,
            figures.p99_ms,
            figures.cpu_ms_per_round_trip,
            figures.generator_cores * 100.0
        );
        runs.push(figures);
    }
    let pick = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
    let medians = json!({
        "server": server,
        "servers": count,
        "runs": runs.len(),
        "round_trips_per_second": pick(|f| f.per_second),
        "p99_ms": pick(|f| f.p99_ms),
        "cpu_ms_per_round_trip": pick(|f| f.cpu_ms_per_round_trip),
    });
    println!(
        "P6 {name}, median of {} of {}: {:.0} round trips/s, p99 {:.3} ms, {:.4} CPU-ms per round trip, generator \
         {:.0}% of a core",
        runs.len(),
        sizes.runs,
        pick(|f| f.per_second),
        pick(|f| f.p99_ms),
        pick(|f| f.cpu_ms_per_round_trip),
        pick(|f| f.generator_cores) * 100.0
    );
    Ok(medians)
}

pub(super) async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let clients = sizes.p6_clients;
    let mut measured = Vec::new();
    for count in [2, 3] {
        let cluster = Cluster::start(count).await?;
        let mut targets = Vec::new();
        for client in 0..clients {
            let user = format!("bench-p6-{client}");
            targets.push(Target {
                url: cluster.nodes[(client + 1) % count].url.clone(),
                conversation_id: cluster.conversation(client % count, &user).await?,
                token: e2e::node::token(&user),
            });
        }
        measured.push(report(("our node", count), &cluster.nodes, &targets, sizes).await?);

        drop(cluster);
        for peer in Peer::ALL.into_iter().filter(|_| sizes.peers) {
            let servers = peer.start(count).await?;
            let targets: Vec<Target> = (0..clients)
                .map(|client| Target {
                    // `c<k>` belongs to server k % count; the client is on the next one.
                    url: servers[(client + 1) % count].url.clone(),
                    conversation_id: format!("c{client}"),
                    token: "unused".into(),
                })
                .collect();
            measured.push(report((peer.name(), count), &servers, &targets, sizes).await?);
        }
    }
    if sizes.peers {
        measured.push(floor(sizes).await?);
    }
    e2e::bench_out::save(
        "socketio-p6",
        &json!({ "bar": "P6", "clients": clients, "window_s": sizes.p6_window.as_secs_f64(), "servers": measured }),
    );
    Ok(())
}

/// The bare socketioxide server's figures, the floor of what a Socket.IO server in Rust costs.
async fn floor(sizes: &Sizes) -> anyhow::Result<Value> {
    let clients = sizes.p6_clients;
    let floor = [echo(false).await?];
    let targets: Vec<Target> = (0..clients)
        .map(|client| Target {
            url: floor[0].url.clone(),
            conversation_id: format!("c{client}"),
            token: "unused".into(),
        })
        .collect();
    report(
        ("bare socketioxide (current-thread)", 1),
        &floor,
        &targets,
        sizes,
    )
    .await
}
