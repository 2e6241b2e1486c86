//! P5: sequential cross-node round trips. A client on node B sends a user action for a conversation
//! node A owns and waits for the agent's answer; the same through two servers of each peer on Redis
//! (node.js socket.io, python-socketio: see their scripts for the flow), and the embedded store's own
//! append beside them.

use std::time::Instant;

use serde_json::json;
use shared::adapters::embedded::{EmbeddedDb, EmbeddedEventStore};
use shared::domain::{ConversationEvent, ConversationId, EventSource};
use shared::ports::EventStore;
use shared::ports::event_store::EventBatch;

use super::generator::{Generator, Outcome, Target};
use super::servers::{Cluster, Peer, Server};
use super::{Sizes, median};
use crate::stats::{Samples, ms};

/// Round trips of one client on `client_on` for `conversation_id`.
async fn measure(
    client_on: &Server,
    conversation_id: &str,
    token: &str,
    sizes: &Sizes,
) -> anyhow::Result<Outcome> {
    let target = Target {
        url: client_on.url.clone(),
        conversation_id: conversation_id.to_owned(),
        token: token.to_owned(),
    };
    Generator::round_trips(&[target], Some(sizes.p5_rounds), None, sizes.warmup)
        .await?
        .go()
        .await
}

/// One-event appends to the embedded store, file-backed as the nodes use it, one after another.
async fn store_appends(count: usize) -> anyhow::Result<Samples> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedEventStore::open(EmbeddedDb::open(dir.path())?).await?;
    let conversation = ConversationId::parse("append-bench")?;
    let mut samples = Samples::default();
    for id in 0..count as u64 {
        let batch = EventBatch::new(vec![ConversationEvent::message(
            id,
            EventSource::User,
            "hello",
        )])?;
        let started = Instant::now();
        store.append(&conversation, 1, &batch, None).await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

fn line(name: &str, outcome: &mut Outcome) -> (f64, f64) {
    let (p50, p99) = (
        ms(outcome.samples.percentile(50.0)),
        ms(outcome.samples.percentile(99.0)),
    );
    println!(
        "P5 {name}: p50 {p50:.3} ms, p99 {p99:.3} ms over {} round trips (generator {:.0}% of a core)",
        outcome.samples.len(),
        outcome.generator_cores() * 100.0
    );
    (p50, p99)
}

/// The p50 and p99 (ms) of each run.
type Runs = Vec<(f64, f64)>;

fn medians(runs: &Runs) -> (f64, f64) {
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

/// A server's runs and their medians, for `bench plot`.
fn figures(name: &str, runs: &Runs) -> serde_json::Value {
    let (p50, p99) = medians(runs);
    json!({
        "name": name,
        "p50_ms": p50,
        "p99_ms": p99,
        "runs": runs.iter().map(|(p50, p99)| json!({ "p50_ms": p50, "p99_ms": p99 })).collect::<Vec<_>>(),
    })
}

pub(super) async fn run(sizes: &Sizes) -> anyhow::Result<()> {
    let cluster = Cluster::start(2).await?;
    let mut peers = Vec::new();
    for peer in Peer::ALL.into_iter().filter(|_| sizes.peers) {
        peers.push((peer, peer.start(2).await?, Runs::new()));
    }
    let token = e2e::node::token("bench-p5");
    let (mut ours, mut appends) = (Runs::new(), Runs::new());
    for run in 1..=sizes.runs {
        println!("P5 run {run} of {}", sizes.runs);
        let conversation = cluster.conversation(0, "bench-p5").await?;
        let mut outcome = measure(&cluster.nodes[1], &conversation, &token, sizes).await?;
        ours.push(line(
            "our node, client on B, conversation on A (Redis, SQLite)",
            &mut outcome,
        ));
        for (peer, servers, runs) in &mut peers {
            // `c0` belongs to server 0; the client is on server 1. A peer that loses an answer (Redis
            // pub/sub delivers at most once) fails its run, not the family.
            let name = format!("{}, client on B, owner A (no storage)", peer.name());
            match measure(&servers[1], "c0", "unused", sizes).await {
                Ok(mut outcome) => runs.push(line(&name, &mut outcome)),
                Err(error) => println!("P5 {name}: run failed: {error:#}"),
            }
        }
        let mut samples = store_appends(sizes.p5_rounds).await?;
        let append = (ms(samples.percentile(50.0)), ms(samples.percentile(99.0)));
        println!(
            "P5 store append (embedded SQLite file, one event): p50 {:.3} ms, p99 {:.3} ms over {}",
            append.0,
            append.1,
            samples.len()
        );
        appends.push(append);
    }
    let (ours50, ours99) = medians(&ours);
    println!(
        "P5 median of {} runs: our node p50 {ours50:.3} ms, p99 {ours99:.3} ms; store append p99 {:.3} ms",
        sizes.runs,
        medians(&appends).1
    );
    let mut servers = vec![figures("our node", &ours)];
    servers.extend(
        peers
            .iter()
            .map(|(peer, _, runs)| figures(peer.name(), runs)),
    );
    e2e::bench_out::save(
        "socketio-p5",
        &json!({
            "bar": "P5",
            "rounds": sizes.p5_rounds,
            "runs": sizes.runs,
            "servers": servers,
            "store_append": figures("store append (embedded SQLite)", &appends),
        }),
    );
    for (peer, _, runs) in &peers {
        let (p50, p99) = medians(runs);
        println!(
            "P5 median of {} runs: {} p50 {p50:.3} ms, p99 {p99:.3} ms; ours/peer p50 {:.2}x, p99 {:.2}x",
            sizes.runs,
            peer.name(),
            ours50 / p50,
            ours99 / p99
        );
    }
    Ok(())
}
