//! P9 and R3: a 3-node cluster (default cadences in the full run) with one official Socket.IO client per
//! conversation, each sending a user action every interval and reading its events; repeatedly the node
//! running the most conversations is killed with `kill -9` (the clients on it move to another node
//! first), and each of its conversations' clients times the new owner's first event (its `loading`
//! state change). The node is restarted once every takeover is seen. At the end every stored history
//! is checked: ids contiguous, each acknowledged action recorded and answered exactly once (one owner
//! appending at a time), and every client received every event once.
//!
//! A client that waits long for a line (its connection, an acknowledgement, its disconnection) is
//! reported (which client, which wait, how long) and the run goes on: past its patience it gives up
//! that wait (an action not acknowledged then counts as unacknowledged) and starts again with a fresh
//! client resuming after the last event it received. The nodes' logs and a journal of the run
//! (`run.txt`: nodes started and killed, slow waits) are kept in a directory printed at the start and
//! the end, with the run's figures in `summary.json`.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};
use std::time::{Duration, Instant};

use e2e::cluster::{ClusterEnv, NodeProcess, answers};
use e2e::node::{is_agent_message, token};
use e2e::socketio::{ClientHost, ConnectOptions, PATIENCE, SocketClient, is_state, message_action};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::stats::{Samples, ms};
use crate::trigger::Backend;

const NODES: usize = 3;
/// How long a kill's takeovers may take before the missing ones are reported.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(60);
/// How long a client waits for the answers to its last actions once the load stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// A client's wait for a line this long is reported as slow (at its patience, 20 s, it gives up).
const SLOW_WAIT: Duration = Duration::from_secs(10);
/// The longest a client reads events in one call: shorter than its patience, past which it panics.
const READ_SLICE: Duration = Duration::from_secs(10);
/// How many slow waits the summary lists one by one.
const SLOW_LISTED: usize = 20;
/// Attempts of a client to connect (each one up to its patience) before its task gives up.
const CONNECT_ATTEMPTS: usize = 10;

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

/// What a client waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Connect,
    Ack,
    Disconnect,
}

impl Wait {
    const ALL: [Self; 3] = [Self::Connect, Self::Ack, Self::Disconnect];

    fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Ack => "ack",
            Self::Disconnect => "disconnect",
        }
    }
}

/// A client's wait of [`SLOW_WAIT`] or more, or one it gave up.
struct SlowWait {
    client: usize,
    wait: Wait,
    /// The node slot it waited on.
    node: usize,
    /// The kill in progress or last done (0: before the first).
    kill: usize,
    took: Duration,
    /// Why it gave up, if it did: its patience, a refusal, its process gone.
    gave_up: Option<String>,
}

/// The run's kept files: each node process's output (`node<slot>-<generation>.log`), `run.txt` (what
/// the benchmark did, when) and `summary.json`, in a directory of its own under the temporary one.
struct RunFiles {
    dir: PathBuf,
    journal: Mutex<std::fs::File>,
}

impl RunFiles {
    fn create() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "takeover-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("the run's directory {}: {error}", dir.display()));
        let journal = std::fs::File::create(dir.join("run.txt")).expect("the run's journal");
        Self {
            dir,
            journal: Mutex::new(journal),
        }
    }

    /// A line in `run.txt`, timestamped like the nodes' logs (UTC), to read beside them.
    fn note(&self, line: &str) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut journal = self.journal.lock().expect("the journal");
        let _ = writeln!(journal, "{now} {line}");
    }

    fn node_log(&self, slot: usize, generation: usize) -> PathBuf {
        self.dir.join(format!("node{slot}-{generation}.log"))
    }
}

/// What the clients and the killer share.
struct Cluster {
    urls: RwLock<Vec<String>>,
    /// A node about to be killed: its clients move away.
    avoid: RwLock<Option<usize>>,
    clients_on: Vec<AtomicUsize>,
    stop: AtomicBool,
    /// The kill in progress or last done, for the slow waits' context.
    kill: AtomicUsize,
    slow: Mutex<Vec<SlowWait>>,
    files: RunFiles,
    /// The official clients, all in one process: as a hundred processes they would load the machine
    /// more than the cluster they measure.
    host: Arc<ClientHost>,
}

impl Cluster {
    fn url(&self, slot: usize) -> String {
        self.urls.read().expect("urls")[slot].clone()
    }

    /// Records a client's wait if it was slow or given up, and says so at once (the run goes on).
    fn waited(
        &self,
        client: usize,
        wait: Wait,
        node: usize,
        took: Duration,
        gave_up: Option<String>,
    ) {
        if took < SLOW_WAIT && gave_up.is_none() {
            return;
        }
        let slow = SlowWait {
            client,
            wait,
            node,
            kill: self.kill.load(Ordering::SeqCst),
            took,
            gave_up,
        };
        let line = format!(
            "slow wait: client {client} waited {:.1} s for its {} on node {node} ({}){}",
            took.as_secs_f64(),
            wait.name(),
            during(slow.kill),
            match &slow.gave_up {
                Some(why) => format!(", gave up: {why}"),
                None => String::new(),
            }
        );
        self.files.note(&line);
        // The journal has the whole reason (a client's unread lines); the console a line.
        println!("P9 {}", shortened(&line, 300));
        self.slow.lock().expect("slow waits").push(slow);
    }
}

tokio::task_local! {
    /// Set while a client waits in [`timed`]: the panic it raises past its patience is caught and
    /// reported as a slow wait, not printed as a crash.
    static CLIENT_WAIT: ();
}

/// Keeps the panic hook from printing the panics [`timed`] catches; every other panic as before.
fn quiet_client_waits() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CLIENT_WAIT.try_with(|_| ()).is_err() {
                previous(info);
            }
        }));
    });
}

/// Runs one of a client's waits and times it. `SocketClient` panics when no line comes within its
/// patience (or its process is gone): caught here, as `Err` with the panic's message.
async fn timed<T>(future: impl Future<Output = T>) -> (Result<T, String>, Duration) {
    let started = Instant::now();
    let outcome = CLIENT_WAIT
        .scope((), AssertUnwindSafe(future).catch_unwind())
        .await;
    (
        outcome.map_err(|payload| panic_message(payload.as_ref())),
        started.elapsed(),
    )
}

/// When a wait happened, from the kill in progress or last done.
fn during(kill: usize) -> String {
    if kill == 0 {
        "before the first kill".to_owned()
    } else {
        format!("kill {kill}")
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
        })
        .unwrap_or_else(|| "a panic".to_owned())
}

fn shortened(text: &str, at_most: usize) -> String {
    match text.char_indices().nth(at_most) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
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
    /// Its task panicked: what it saw is lost.
    failed: bool,
}

struct Conversation {
    id: String,
    token: String,
}

pub(crate) async fn run(sizes: &Sizes) {
    quiet_client_waits();
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
    let files = RunFiles::create();
    // Printed first too, so that a run that dies still says where its logs are.
    println!("P9/R3 logs (nodes, run.txt): {}", files.dir.display());
    files.note(&format!(
        "takeover on {:?}: {NODES} nodes, LEASE_TTL {} s, heartbeat {} s, {} conversations, one action per {:?}, {} kills",
        sizes.backend,
        env.lease_ttl,
        env.heartbeat,
        sizes.conversations,
        sizes.action_every,
        sizes.kills
    ));
    let mut generations = [0; NODES];
    let mut nodes = Vec::new();
    for slot in 0..NODES {
        nodes.push(start_node(&env, &files, slot, 0).await);
    }
    let cluster = Arc::new(Cluster {
        urls: RwLock::new(nodes.iter().map(|n| n.url.clone()).collect()),
        avoid: RwLock::new(None),
        clients_on: (0..NODES).map(|_| AtomicUsize::new(0)).collect(),
        stop: AtomicBool::new(false),
        kill: AtomicUsize::new(0),
        slow: Mutex::new(Vec::new()),
        files,
        host: ClientHost::start(),
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
            sessions.push(node.metric("conversation_node_running_conversations").await as usize);
        }
        let victim = (0..NODES)
            .max_by_key(|&slot| (sessions[slot], NODES - slot))
            .expect("nodes");
        cluster.kill.store(kill, Ordering::SeqCst);
        *cluster.avoid.write().expect("avoid") = Some(victim);
        while cluster.clients_on[victim].load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cluster.files.note(&format!(
            "kill {kill}: kill -9 node {victim} (node{victim}-{}.log, pid {}, {}) running {} conversations",
            generations[victim],
            nodes[victim].pid(),
            nodes[victim].node_id,
            sessions[victim]
        ));
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
        let slow_now = cluster
            .slow
            .lock()
            .expect("slow waits")
            .iter()
            .filter(|slow| slow.kill == kill)
            .count();
        let line = format!(
            "kill {kill}: node {victim} ran {} conversations; their clients got the new owner's first event after min {:.0} ms, median {:.0} ms, max {:.0} ms{}{}",
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
            },
            if slow_now > 0 {
                format!("; {slow_now} slow client waits so far")
            } else {
                String::new()
            }
        );
        println!("P9 {line}");
        cluster.files.note(&line);
        generations[victim] += 1;
        nodes[victim] = start_node(&env, &cluster.files, victim, generations[victim]).await;
        cluster.urls.write().expect("urls")[victim] = nodes[victim].url.clone();
        *cluster.avoid.write().expect("avoid") = None;
    }
    let takeovers = json!({
        "count": all.len(),
        "p50_ms": ms(all.percentile(50.0)),
        "p95_ms": ms(all.percentile(95.0)),
        "p99_ms": ms(all.percentile(99.0)),
        "max_ms": ms(all.percentile(100.0)),
        "not_seen": missing,
    });
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
    for (n, client) in clients.into_iter().enumerate() {
        match client.await {
            Ok(log) => logs.push(log),
            Err(error) => {
                let why = if error.is_panic() {
                    panic_message(error.into_panic().as_ref())
                } else {
                    error.to_string()
                };
                let line = format!("client {n} failed: {why}");
                println!("P9 {}", shortened(&line, 300));
                cluster.files.note(&line);
                logs.push(ClientLog {
                    failed: true,
                    ..ClientLog::default()
                });
            }
        }
    }
    let r3 = verify(&nodes[0], &conversations, &logs).await;
    let (slow, slow_list) = slow_summary(&cluster.slow.lock().expect("slow waits"));
    let mut summary = json!({
        "backend": format!("{:?}", sizes.backend),
        "nodes": NODES,
        "conversations": sizes.conversations,
        "kills": sizes.kills,
        "lease_ttl_s": env.lease_ttl,
        "heartbeat_s": env.heartbeat,
        "takeovers": takeovers,
        "r3": r3,
        "slow_waits": slow,
        "logs": cluster.files.dir.display().to_string(),
    });
    println!("P9/R3 summary: {summary}");
    // The files have each slow wait too (the console had them one by one), and every takeover time.
    summary["slow_waits"]["list"] = slow_list;
    summary["takeovers"]["samples_ms"] = json!(all.sorted_ms());
    e2e::bench_out::save("takeover", &summary);
    let _ = std::fs::write(
        cluster.files.dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).expect("JSON"),
    );
    println!(
        "P9/R3 logs (nodes, run.txt, summary.json), kept: {}",
        cluster.files.dir.display()
    );
}

/// Starts the node of `slot` (its `generation`-th process), its output kept in the run's directory.
async fn start_node(
    env: &ClusterEnv,
    files: &RunFiles,
    slot: usize,
    generation: usize,
) -> NodeProcess {
    let log = files.node_log(slot, generation);
    let node = NodeProcess::start_logging_to(env, &log).await;
    files.note(&format!(
        "node {slot} started: node{slot}-{generation}.log, pid {}, {}, {}",
        node.pid(),
        node.node_id,
        node.url
    ));
    node
}

/// The slow waits by kind (how many, how many given up, the longest), printed and as JSON; and the
/// list of them as JSON.
fn slow_summary(slow: &[SlowWait]) -> (Value, Value) {
    let mut by_kind = serde_json::Map::new();
    let mut parts = Vec::new();
    for wait in Wait::ALL {
        let of_kind: Vec<&SlowWait> = slow.iter().filter(|slow| slow.wait == wait).collect();
        let gave_up = of_kind.iter().filter(|slow| slow.gave_up.is_some()).count();
        let worst = of_kind
            .iter()
            .map(|slow| slow.took)
            .max()
            .unwrap_or_default();
        parts.push(if of_kind.is_empty() {
            format!("{} 0", wait.name())
        } else {
            format!(
                "{} {} (worst {:.1} s, {gave_up} given up)",
                wait.name(),
                of_kind.len(),
                worst.as_secs_f64()
            )
        });
        by_kind.insert(
            wait.name().to_owned(),
            json!({ "count": of_kind.len(), "given_up": gave_up, "worst_ms": ms(worst) }),
        );
    }
    println!(
        "P9/R3 slow client waits (>= {} s, or given up: past the client's {} s patience, refused): {}",
        SLOW_WAIT.as_secs(),
        PATIENCE.as_secs(),
        parts.join(", ")
    );
    // The worst first, a few of them: all of them are in `run.txt` and `summary.json`.
    let mut worst: Vec<&SlowWait> = slow.iter().collect();
    worst.sort_by_key(|slow| std::cmp::Reverse(slow.took));
    if worst.len() > SLOW_LISTED {
        println!(
            "  the {SLOW_LISTED} longest of {} (all in run.txt):",
            worst.len()
        );
    }
    for slow in worst.into_iter().take(SLOW_LISTED) {
        println!(
            "  client {} {} on node {} ({}): {:.1} s{}",
            slow.client,
            slow.wait.name(),
            slow.node,
            during(slow.kill),
            slow.took.as_secs_f64(),
            if slow.gave_up.is_some() {
                ", given up"
            } else {
                ""
            }
        );
    }
    let list: Vec<Value> = slow
        .iter()
        .map(|slow| {
            json!({
                "client": slow.client,
                "wait": slow.wait.name(),
                "node": slow.node,
                "kill": slow.kill,
                "ms": ms(slow.took),
                "gave_up": slow.gave_up.as_deref().map(|why| shortened(why, 500)),
            })
        })
        .collect();
    (Value::Object(by_kind), Value::Array(list))
}

/// Connects client `n` to the node of `slot`, resuming after `latest`; after a refusal or a wait given
/// up, tries again with a fresh client (on the next node if this one is about to be killed).
async fn connect(
    n: usize,
    conversation: &Conversation,
    slot: &mut usize,
    latest: Option<u64>,
    cluster: &Cluster,
) -> SocketClient {
    let options = ConnectOptions::conversation(
        &conversation.id,
        &conversation.token,
        latest.map(|id| id as i64),
    );
    for _ in 0..CONNECT_ATTEMPTS {
        let mut client = cluster.host.start_client(&cluster.url(*slot), &options);
        let (outcome, took) = timed(client.connection()).await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(format!("refused: {reason}")),
            Err(why) => Some(why),
        };
        let failed = failure.is_some();
        cluster.waited(n, Wait::Connect, *slot, took, failure);
        if !failed {
            return client;
        }
        drop(client);
        tokio::time::sleep(Duration::from_secs(1)).await;
        if *cluster.avoid.read().expect("avoid") == Some(*slot) {
            cluster.clients_on[*slot].fetch_sub(1, Ordering::SeqCst);
            *slot = (*slot + 1) % NODES;
            cluster.clients_on[*slot].fetch_add(1, Ordering::SeqCst);
        }
    }
    panic!("client {n} did not connect in {CONNECT_ATTEMPTS} attempts (see its slow waits)");
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
    // Counted before it connects, so that the killer waits for it to move.
    cluster.clients_on[slot].fetch_add(1, Ordering::SeqCst);
    let mut client = connect(n, &conversation, &mut slot, None, &cluster).await;
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
            let (closed, took) = timed(client.close()).await;
            cluster.waited(n, Wait::Disconnect, slot, took, closed.err());
            cluster.clients_on[slot].fetch_sub(1, Ordering::SeqCst);
            slot = (slot + 1) % NODES;
            cluster.clients_on[slot].fetch_add(1, Ordering::SeqCst);
            client = connect(
                n,
                &conversation,
                &mut slot,
                log.received.last().copied(),
                &cluster,
            )
            .await;
        }
        sent += 1;
        let text = format!("[c{n}-a{sent}]");
        let mut action = message_action(&text);
        action["client_action_id"] = json!(format!("c{n}-a{sent}"));
        let next = Instant::now() + every;
        let (acked, took) = timed(client.emit_with_ack("oh_user_action", action)).await;
        let given_up = acked.is_err();
        cluster.waited(n, Wait::Ack, slot, took, acked.as_ref().err().cloned());
        if acked.is_ok_and(|ack| ack == json!({ "success": true })) {
            log.acked.push(text);
        } else {
            // Given up, whether the node took it is unknown: not checked as acknowledged.
            log.unacked += 1;
        }
        if given_up {
            // A client silent for its whole patience: replaced, resuming after its last event.
            drop(client);
            client = connect(
                n,
                &conversation,
                &mut slot,
                log.received.last().copied(),
                &cluster,
            )
            .await;
        }
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(event) = client.next_event_within(left.min(READ_SLICE)).await {
                record(&event, &mut log);
            }
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
            .min(READ_SLICE);
        if let Some(event) = client.next_event_within(wait).await {
            record(&event, &mut log);
        }
    }
    log.unanswered_live = unanswered(&log);
    let (closed, took) = timed(client.close()).await;
    cluster.waited(n, Wait::Disconnect, slot, took, closed.err());
    log
}

/// R3's checks over every stored history and what each client received.
async fn verify(node: &NodeProcess, conversations: &[Conversation], logs: &[ClientLog]) -> Value {
    let mut totals: BTreeMap<&str, usize> = [
        "acknowledged lost",
        "recorded or answered twice",
        "events received twice",
        "events skipped by a client",
        "stored ids out of place",
        "clients failed",
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
        if log.failed {
            // What its client saw is lost with its task: only the stored history is checked.
            *totals.entry("clients failed").or_default() += 1;
            continue;
        }
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
    json!(totals)
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
