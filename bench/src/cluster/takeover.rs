//! P9 and R3: a 3-node cluster (default cadences in the full run) with one official Socket.IO client per
//! conversation, each sending a user action every interval and reading its events; repeatedly the node
//! running the most conversations is killed with `kill -9` (the clients on it move to another node
//! first), and each of its conversations' clients times the new owner's first event (its `loading`
//! state change). The node is restarted once every takeover is seen. At the end every stored history
//! is checked: ids contiguous, each acknowledged action recorded and answered exactly once (one owner
//! appending at a time), and every client received every event once.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use e2e::cluster::{ClusterEnv, NodeProcess, answers};
use e2e::node::{is_agent_message, token};
use e2e::socketio::{ConnectOptions, SocketClient, is_state, message_action};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::stats::{Samples, ms};
use crate::trigger::Backend;

const NODES: usize = 3;
/// How long a kill's takeovers may take before the missing ones are reported.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(60);
/// How long a client waits for the answers to its last actions once the load stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

pub(crate) struct Sizes {
    pub conversations: usize,
    pub kills: usize,
    /// Each client sends one action per interval.
    pub action_every: Duration,
    /// Load before the first kill and between a restart and the next kill.
    pub settle: Duration,
    /// The node's default cadences (the full run), or the tests' short ones.
    pub default_cadence: bool,
    /// Where the nodes keep conversations and events.
    pub backend: Backend,
}

impl Sizes {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                conversations: 6,
                kills: 2,
                action_every: Duration::from_secs(1),
                settle: Duration::from_secs(2),
                default_cadence: false,
                backend: Backend::Dynamodb,
            }
        } else {
            Self {
                conversations: 100,
                kills: 10,
                // What the serialised moto server keeps up with (a few DynamoDB calls per action).
                action_every: Duration::from_secs(8),
                settle: Duration::from_secs(12),
                default_cadence: true,
                backend: Backend::Dynamodb,
            }
        }
    }
}

/// Smaller runs than the bar's, for machines where the serialised moto server cannot keep up, or the
/// bar's size on the embedded store.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Overrides {
    /// The nodes' conversation and event store: DynamoDB on moto, or one SQLite file they all share.
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Conversations (one client each) of the takeover run.
    #[arg(long)]
    pub conversations: Option<usize>,
    /// How many times a node is killed.
    #[arg(long)]
    pub kills: Option<usize>,
    /// Seconds between a client's actions.
    #[arg(long)]
    pub action_every: Option<f64>,
}

impl Sizes {
    pub(crate) fn with(mut self, overrides: &Overrides) -> Self {
        self.conversations = overrides.conversations.unwrap_or(self.conversations);
        self.kills = overrides.kills.unwrap_or(self.kills);
        self.backend = overrides.backend.unwrap_or(self.backend);
        if let Some(seconds) = overrides.action_every {
            self.action_every = Duration::from_secs_f64(seconds);
        }
        self
    }
}

/// What the clients and the killer share.
struct Cluster {
    urls: RwLock<Vec<String>>,
    /// A node about to be killed: its clients move away.
    avoid: RwLock<Option<usize>>,
    clients_on: Vec<AtomicUsize>,
    stop: AtomicBool,
}

impl Cluster {
    fn url(&self, slot: usize) -> String {
        self.urls.read().expect("urls")[slot].clone()
    }
}

/// What one client saw and did.
#[derive(Default)]
struct ClientLog {
    /// Stored event ids in the order received.
    received: Vec<u64>,
    /// The agent's answers received.
    answers: Vec<String>,
    acked: Vec<String>,
    unacked: usize,
    /// Acknowledged actions whose answer did not arrive before the drain limit.
    unanswered_live: usize,
}

struct Conversation {
    id: String,
    token: String,
}

pub(crate) async fn run(sizes: &Sizes) {
    let mut env = if sizes.default_cadence {
        ClusterEnv::fresh_at_default_cadence().await
    } else {
        ClusterEnv::fresh().await
    };
    // Kept until the nodes are gone.
    let data = tempfile::tempdir().expect("a temporary directory");
    if sizes.backend == Backend::Embedded {
        env = env.on_embedded_store(data.path());
    }
    println!(
        "== P9/R3 takeover: {NODES} nodes on {:?} (LEASE_TTL {} s, heartbeat {} s{}), {} conversations, one action per {:?} each, {} kills",
        sizes.backend,
        env.lease_ttl,
        env.heartbeat,
        if sizes.default_cadence {
            ", the defaults"
        } else {
            ""
        },
        sizes.conversations,
        sizes.action_every,
        sizes.kills
    );
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(NodeProcess::start(&env).await);
    }
    let cluster = Arc::new(Cluster {
        urls: RwLock::new(nodes.iter().map(|n| n.url.clone()).collect()),
        avoid: RwLock::new(None),
        clients_on: (0..NODES).map(|_| AtomicUsize::new(0)).collect(),
        stop: AtomicBool::new(false),
    });
    let (loadings, mut loaded) = mpsc::unbounded_channel();
    let mut conversations = Vec::new();
    let mut clients = Vec::new();
    for n in 0..sizes.conversations {
        // A user each, so that the per-user limit evicts nothing; run by one node, watched from the next.
        let token = token(&format!("takeover-user-{n}"));
        let id = nodes[n % NODES]
            .create_conversation(&token, Some(&format!("[c{n}-a0]")))
            .await;
        let drive = drive(
            n,
            Conversation {
                id: id.clone(),
                token: token.clone(),
            },
            (n + 1) % NODES,
            Arc::clone(&cluster),
            sizes.action_every,
            loadings.clone(),
        );
        clients.push(tokio::spawn(drive));
        conversations.push(Conversation { id, token });
    }
    drop(loadings);

    let mut all = Samples::default();
    let mut missing = 0;
    for kill in 1..=sizes.kills {
        tokio::time::sleep(sizes.settle).await;
        let mut sessions = Vec::new();
        for node in &nodes {
            sessions.push(node.metric("node_sessions").await as usize);
        }
        let victim = (0..NODES)
            .max_by_key(|&slot| (sessions[slot], NODES - slot))
            .expect("nodes");
        *cluster.avoid.write().expect("avoid") = Some(victim);
        while cluster.clients_on[victim].load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        nodes[victim].signal("KILL").await;
        let killed = Instant::now();
        let mut times = Samples::default();
        let mut seen = HashSet::new();
        while seen.len() < sessions[victim] {
            let left = TAKEOVER_LIMIT.saturating_sub(killed.elapsed());
            match tokio::time::timeout(left, loaded.recv()).await {
                Ok(Some((n, at))) if at > killed && seen.insert(n) => {
                    times.push(at - killed);
                    all.push(at - killed);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        missing += sessions[victim] - seen.len();
        println!(
            "P9 kill {kill}: node {victim} ran {} conversations; their clients got the new owner's first event after min {:.0} ms, median {:.0} ms, max {:.0} ms{}",
            sessions[victim],
            ms(times.percentile(0.0)),
            ms(times.percentile(50.0)),
            ms(times.percentile(100.0)),
            if seen.len() < sessions[victim] {
                format!(
                    ", {} not within {TAKEOVER_LIMIT:?}",
                    sessions[victim] - seen.len()
                )
            } else {
                String::new()
            }
        );
        nodes[victim] = NodeProcess::start(&env).await;
        cluster.urls.write().expect("urls")[victim] = nodes[victim].url.clone();
        *cluster.avoid.write().expect("avoid") = None;
    }
    println!(
        "P9 over {} kills, {} takeovers: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms; takeovers not seen: {missing}",
        sizes.kills,
        all.len(),
        ms(all.percentile(50.0)),
        ms(all.percentile(95.0)),
        ms(all.percentile(99.0)),
        ms(all.percentile(100.0)),
    );

    cluster.stop.store(true, Ordering::SeqCst);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(client.await.expect("a client task"));
    }
    verify(&nodes[0], &conversations, &logs).await;
}

/// One client: connects to `slot`, sends an action per interval and reads events meanwhile, moving to
/// another node when its own is about to be killed; once stopped, waits for its answers.
async fn drive(
    n: usize,
    conversation: Conversation,
    mut slot: usize,
    cluster: Arc<Cluster>,
    every: Duration,
    loadings: mpsc::UnboundedSender<(usize, Instant)>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let connect = |slot: usize, latest: Option<u64>| {
        let options = ConnectOptions::conversation(
            &conversation.id,
            &conversation.token,
            latest.map(|id| id as i64),
        );
        let url = cluster.url(slot);
        async move { SocketClient::connect(&url, &options).await }
    };
    // Counted before it connects, so that the killer waits for it to move.
    cluster.clients_on[slot].fetch_add(1, Ordering::SeqCst);
    let mut client = connect(slot, None).await;
    let record = |event: &Value, log: &mut ClientLog| {
        if let Some(id) = event["id"].as_u64() {
            log.received.push(id);
            if is_agent_message(event) {
                log.answers.push(
                    event["args"]["content"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            if is_state(event, "loading") {
                let _ = loadings.send((n, Instant::now()));
            }
        }
    };
    let mut sent = 0;
    while !cluster.stop.load(Ordering::SeqCst) {
        let avoided = *cluster.avoid.read().expect("avoid");
        if avoided == Some(slot) {
            client.close().await;
            cluster.clients_on[slot].fetch_sub(1, Ordering::SeqCst);
            slot = (slot + 1) % NODES;
            cluster.clients_on[slot].fetch_add(1, Ordering::SeqCst);
            client = connect(slot, log.received.last().copied()).await;
        }
        sent += 1;
        let text = format!("[c{n}-a{sent}]");
        let mut action = message_action(&text);
        action["client_action_id"] = json!(format!("c{n}-a{sent}"));
        let next = Instant::now() + every;
        if client.emit_with_ack("oh_user_action", action).await == json!({ "success": true }) {
            log.acked.push(text);
        } else {
            log.unacked += 1;
        }
        while let Some(event) = client
            .next_event_within(next.saturating_duration_since(Instant::now()))
            .await
        {
            record(&event, &mut log);
        }
    }
    // The answers of the last actions.
    let deadline = Instant::now() + DRAIN_LIMIT;
    let unanswered = |log: &ClientLog| {
        log.acked
            .iter()
            .filter(|text| {
                !log.answers
                    .iter()
                    .any(|answer| answer.contains(text.as_str()))
            })
            .count()
    };
    while unanswered(&log) > 0 && Instant::now() < deadline {
        // Shorter than the client's own patience, which panics.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(10));
        if let Some(event) = client.next_event_within(wait).await {
            record(&event, &mut log);
        }
    }
    log.unanswered_live = unanswered(&log);
    client.close().await;
    log
}

/// R3's checks over every stored history and what each client received.
async fn verify(node: &NodeProcess, conversations: &[Conversation], logs: &[ClientLog]) {
    let mut totals: BTreeMap<&str, usize> = [
        "acknowledged lost",
        "recorded or answered twice",
        "events received twice",
        "events skipped by a client",
        "stored ids out of place",
    ]
    .into_iter()
    .map(|what| (what, 0))
    .collect();
    for (conversation, log) in conversations.iter().zip(logs) {
        let events = settled_events(node, conversation, log).await;
        let ids: Vec<u64> = events.iter().filter_map(|e| e["id"].as_u64()).collect();
        let out_of_place = ids
            .iter()
            .enumerate()
            .filter(|(at, id)| **id != *at as u64)
            .count();
        *totals.entry("stored ids out of place").or_default() += out_of_place;
        *totals.entry("acknowledged").or_default() += log.acked.len();
        *totals.entry("unacknowledged").or_default() += log.unacked;
        for text in &log.acked {
            let recorded = events
                .iter()
                .filter(|e| e["source"] == "user" && e["args"]["content"] == text.as_str())
                .count();
            let answered = events.iter().filter(|e| answers(e, text)).count();
            if recorded == 0 || answered == 0 {
                *totals.entry("acknowledged lost").or_default() += 1;
            }
            if recorded > 1 || answered > 1 {
                *totals.entry("recorded or answered twice").or_default() += 1;
            }
        }
        let mut seen = HashSet::new();
        let duplicated = log.received.iter().filter(|id| !seen.insert(**id)).count();
        *totals.entry("events received twice").or_default() += duplicated;
        // Between the first and the last event it received (it stops reading after its last answer).
        let first = log.received.iter().min().copied().unwrap_or(0);
        let last = log.received.iter().max().copied().unwrap_or(0);
        let skipped = ids
            .iter()
            .filter(|id| (first..=last).contains(*id) && !seen.contains(id))
            .count();
        *totals.entry("events skipped by a client").or_default() += skipped;
        *totals.entry("answers not seen live").or_default() += log.unanswered_live;
    }
    let line = totals
        .iter()
        .map(|(what, n)| format!("{what} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("R3 {line}");
}

/// The stored events once every acknowledged action is answered, or once nothing changed for a while.
async fn settled_events(
    node: &NodeProcess,
    conversation: &Conversation,
    log: &ClientLog,
) -> Vec<Value> {
    let mut events = Vec::new();
    let mut changed = Instant::now();
    while changed.elapsed() < DRAIN_LIMIT {
        let now = node.all_events(&conversation.token, &conversation.id).await;
        if log
            .acked
            .iter()
            .all(|text| now.iter().any(|e| answers(e, text)))
        {
            return now;
        }
        if now.len() != events.len() {
            changed = Instant::now();
        }
        events = now;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    events
}
