//! P8: Redis commands per heartbeat per node. Four node processes share a private Redis (so that
//! `INFO commandstats` counts only them), each on an embedded store of its own (the store plays no part
//! in the heartbeat, and 10,000 creations on the serialised moto server would take most of an hour);
//! conversations are created through REST on chosen nodes (no clients; `CLOSE_DELAY` keeps them running). One heartbeat of one node is
//! isolated by pausing the other nodes (`SIGSTOP`) from just before its next beat (its score in the
//! `nodes` sorted set tells when) until that beat's step is over - well within two heartbeats, so nobody
//! is reaped - and the command statistics' difference over that window is its cost. The stages grow
//! the other nodes' conversations with the measured node's at zero, then give it its own.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::cluster::{ClusterEnv, NodeProcess};
use e2e::node::token;
use e2e::redis::PrivateRedis;
use futures::stream::{self, StreamExt};
use shared::adapters::redis::Keys;

const NODES: usize = 4;
/// Concurrent REST creations while filling the nodes.
const CREATING: usize = 16;
/// Commands only the benchmark issues while measuring (its polls and snapshots).
const OWN_COMMANDS: &[&str] = &["info", "zscore"];
/// Commands that walk the key space or a whole collection.
const SCANS: &[&str] = &["scan", "keys", "hscan", "sscan", "zscan"];
/// Commands a node sends itself (the rest run inside its scripts).
const ROUND_TRIPS: &[&str] = &["evalsha", "eval", "zrange", "pubsub|numsub"];

pub(crate) struct Sizes {
    /// (the measured node's conversations, the other nodes' conversations) per stage.
    pub stages: Vec<(usize, usize)>,
    /// Heartbeats measured per node and stage.
    pub repeats: usize,
    /// `LEASE_TTL` and `HEARTBEAT_INTERVAL` (s); the full run keeps the defaults.
    pub cadence: Option<(f64, f64)>,
}

impl Sizes {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                stages: vec![(0, 0), (0, 30), (10, 30)],
                repeats: 1,
                cadence: Some((10.0, 1.0)),
            }
        } else {
            Self {
                stages: vec![(0, 0), (0, 1_000), (0, 7_500), (2_500, 7_500)],
                repeats: 3,
                cadence: None,
            }
        }
    }
}

/// One measured heartbeat: commands by name.
type Calls = BTreeMap<String, u64>;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
        * 1000.0
}

/// The node's last beat (Redis time, ms) from the `nodes` sorted set.
fn last_beat(redis: &PrivateRedis, keys: &Keys, node: &NodeProcess) -> Option<f64> {
    redis
        .cli(&["ZSCORE", &keys.nodes(), &node.node_id])
        .trim()
        .parse()
        .ok()
}

fn difference(after: &Calls, before: &Calls) -> Calls {
    after
        .iter()
        .filter(|(name, _)| !OWN_COMMANDS.contains(&name.as_str()))
        .map(|(name, n)| (name.clone(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The commands of one heartbeat of `nodes[measured]`, the others paused meanwhile; `None` if the beat
/// did not come in time (the others are resumed anyway).
async fn one_heartbeat(
    redis: &PrivateRedis,
    keys: &Keys,
    nodes: &[NodeProcess],
    measured: usize,
    heartbeat: f64,
) -> Option<Calls> {
    let node = &nodes[measured];
    let lead = (heartbeat * 1000.0 * 0.2).min(500.0);
    let previous = last_beat(redis, keys, node)?;
    // Wait for the window before the next beat (a beat late by a busy node just waits another round).
    let mut next = previous + heartbeat * 1000.0;
    while now_ms() > next - lead {
        next += heartbeat * 1000.0;
    }
    tokio::time::sleep(Duration::from_secs_f64((next - lead - now_ms()) / 1000.0)).await;
    let before_pause = last_beat(redis, keys, node)?;
    for (slot, other) in nodes.iter().enumerate() {
        if slot != measured {
            other.signal("STOP").await;
        }
    }
    let before = redis.command_calls();
    let give_up = now_ms() + lead + heartbeat * 1000.0 * 0.3;
    let mut beat = None;
    while now_ms() < give_up {
        match last_beat(redis, keys, node) {
            Some(score) if score > before_pause => {
                beat = Some(score);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    if beat.is_some() {
        // The reap follows the beat at once; this leaves it time to finish.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = redis.command_calls();
    for (slot, other) in nodes.iter().enumerate() {
        if slot != measured {
            other.signal("CONT").await;
        }
    }
    beat.map(|_| difference(&after, &before))
}

/// Creates conversations through REST until `nodes[slot]` runs `targets[slot]` of them.
async fn fill(nodes: &[NodeProcess], targets: &[usize], created: &mut [usize]) {
    let mut jobs = Vec::new();
    for (slot, target) in targets.iter().enumerate() {
        for n in created[slot]..*target {
            jobs.push((slot, n));
        }
        created[slot] = created[slot].max(*target);
    }
    stream::iter(jobs)
        .for_each_concurrent(CREATING, |(slot, n)| async move {
            // A hundred users, ten conversations each at most per node.
            let user = token(&format!("p8-user-{}", n % 100));
            nodes[slot].create_conversation(&user, None).await;
        })
        .await;
    for (slot, target) in targets.iter().enumerate() {
        while (nodes[slot]
            .metric("conversation_node_running_conversations")
            .await as usize)
            < *target
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn summary(calls: &Calls) -> (u64, u64) {
    let total = calls.values().sum();
    let trips = calls
        .iter()
        .filter(|(name, _)| ROUND_TRIPS.contains(&name.as_str()))
        .map(|(_, n)| n)
        .sum();
    (total, trips)
}

pub(crate) async fn run(sizes: &Sizes) {
    let redis = PrivateRedis::start();
    let mut env = ClusterEnv::fresh_at_default_cadence().await;
    env.redis_url = redis.url();
    if let Some((lease_ttl, heartbeat)) = sizes.cadence {
        env.lease_ttl = lease_ttl;
        env.heartbeat = heartbeat;
    }
    env.extra = vec![
        ("MAX_CONCURRENT_CONVERSATIONS", "100000".into()),
        ("CLOSE_DELAY", "86400".into()),
        // One look for dead peers per heartbeat, in step with it, so that the window of one heartbeat
        // holds exactly one (by default they run every second, at a constant cost).
        ("PEER_CHECK_INTERVAL", env.heartbeat.to_string()),
    ];
    let keys = Keys::new(&env.key_prefix);
    println!(
        "== P8 Redis cost: {NODES} nodes (heartbeat {} s), commands of one heartbeat of one node, the others paused",
        env.heartbeat
    );
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut nodes = Vec::new();
    for slot in 0..NODES {
        let own_store = env
            .clone()
            .on_embedded_store(&data.path().join(format!("node-{slot}")));
        nodes.push(NodeProcess::start(&own_store).await);
    }
    println!(
        "P8 | own | others' | node | commands/heartbeat (median) | of which sent by the node | in scripts | per own conversation | breakdown"
    );
    let mut created = vec![0; NODES];
    let mut baseline = None;
    for &(own, others) in &sizes.stages {
        let mut targets = vec![others / (NODES - 1); NODES];
        targets[0] = own;
        let filling = std::time::Instant::now();
        fill(&nodes, &targets, &mut created).await;
        let total: usize = targets.iter().sum();
        if filling.elapsed() > Duration::from_secs(1) {
            println!(
                "P8 (filled to {total} conversations in {:.0} s)",
                filling.elapsed().as_secs_f64()
            );
        }
        // The measured node, and at the last stage every node.
        let measured: Vec<usize> = if (own, others) == *sizes.stages.last().expect("stages") {
            (0..NODES).collect()
        } else {
            vec![0]
        };
        for slot in measured {
            let mut beats = Vec::new();
            while beats.len() < sizes.repeats {
                if let Some(calls) = one_heartbeat(&redis, &keys, &nodes, slot, env.heartbeat).await
                {
                    beats.push(calls);
                }
            }
            beats.sort_by_key(|calls| summary(calls).0);
            let median = &beats[beats.len() / 2];
            let (commands, trips) = summary(median);
            let base = *baseline.get_or_insert(commands);
            let own_here = targets[slot];
            let per_own = if own_here > 0 {
                format!("{:.2}", (commands - base) as f64 / own_here as f64)
            } else {
                "-".into()
            };
            println!(
                "P8 | {own_here} | {} | {slot} | {commands} | {trips} | {} | {per_own} | {median:?}",
                total - own_here,
                commands - trips,
            );
        }
    }
    let calls = redis.command_calls();
    let scans: u64 = SCANS.iter().filter_map(|name| calls.get(*name)).sum();
    println!("P8 SCAN/KEYS/HSCAN/SSCAN/ZSCAN over the whole run: {scans}");
}
