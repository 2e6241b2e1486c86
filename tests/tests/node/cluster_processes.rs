//! Clustered nodes as real processes (the `conversation-node` binary) on real Redis and DynamoDB on
//! moto, with official Socket.IO clients: a client on one node talks to a conversation another node
//! runs, and a `kill -9` of that owner loses no acknowledged action; a SIGTERM moves its clients
//! (through a load balancer) to the others; Redis outages, at start or later, are waited out.

use std::time::Instant;

use e2e::balancer::Balancer;
use e2e::cluster::{ClusterEnv, NodeProcess, answers};
use e2e::node::token;
use e2e::redis::{PrivateRedis, no_key_scans};
use e2e::socketio::{ConnectOptions, SocketClient, message_action};
use serde_json::{Value, json};
use shared::adapters::redis::{Keys, RedisCoordination, RedisSettings};
use shared::domain::{ConversationId, NodeId, UserAction};
use shared::ports::coordination::{ClaimRequest, Inbox, Leases, LimitPolicy, Messaging};

/// Sends a message with a client action id (as a client that retries does) and waits for its ack.
async fn say_with_id(client: &mut SocketClient, text: &str, client_action_id: &str) {
    let mut action = message_action(text);
    action["client_action_id"] = json!(client_action_id);
    let ack = client.emit_with_ack("oh_user_action", action).await;
    assert_eq!(
        ack,
        json!({ "success": true }),
        "{text} was not acknowledged"
    );
}

/// Sends a message and waits for its acknowledgement.
async fn say(client: &mut SocketClient, text: &str) {
    let ack = client
        .emit_with_ack("oh_user_action", message_action(text))
        .await;
    assert_eq!(
        ack,
        json!({ "success": true }),
        "{text} was not acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_another_node_is_served_and_survives_the_owners_crash() {
    let env = ClusterEnv::fresh().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(NodeProcess::start(&env).await);
    }
    let alice = token("alice");
    // Created on node 0, which therefore runs it.
    let id = nodes[0]
        .create_conversation(&alice, Some("first words"))
        .await;
    let options = ConnectOptions::conversation(&id, &alice, None);
    let mut on_owner = SocketClient::connect(&nodes[0].url, &options).await;
    let mut elsewhere = SocketClient::connect(&nodes[1].url, &options).await;
    on_owner.events_until(|e| answers(e, "first words")).await;
    elsewhere.events_until(|e| answers(e, "first words")).await;

    // An action from node 1 reaches the owner; its answer reaches the clients of both nodes.
    say(&mut elsewhere, "from node one").await;
    on_owner.events_until(|e| answers(e, "from node one")).await;
    elsewhere
        .events_until(|e| answers(e, "from node one"))
        .await;

    // A retried action (the same client action id, even through another node) is applied once.
    say_with_id(&mut elsewhere, "retried", "action-7").await;
    say_with_id(&mut on_owner, "retried", "action-7").await;
    say_with_id(&mut elsewhere, "retried", "action-7").await;
    on_owner.events_until(|e| answers(e, "retried")).await;

    // The owner dies without a word; actions acknowledged meanwhile are answered after the takeover.
    nodes[0].signal("KILL").await;
    let killed = Instant::now();
    say(&mut elsewhere, "after the crash 1").await;
    say(&mut elsewhere, "after the crash 2").await;
    elsewhere
        .events_until(|e| answers(e, "after the crash 2"))
        .await;
    println!(
        "takeover: the first answer after kill -9 arrived {:?} later (LEASE_TTL {}s, heartbeat {}s)",
        killed.elapsed(),
        env.lease_ttl,
        env.heartbeat
    );

    answered_once_without_gaps(
        &nodes[2],
        &alice,
        &id,
        &[
            "first words",
            "from node one",
            "retried",
            "after the crash 1",
            "after the crash 2",
        ],
    )
    .await;
}

/// The stored events have ids 0, 1, 2, ... and answer each of `texts` exactly once.
async fn answered_once_without_gaps(node: &NodeProcess, token: &str, id: &str, texts: &[&str]) {
    let events = node.all_events(token, id).await;
    let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert_eq!(
        ids,
        (0..i64::try_from(ids.len()).unwrap()).collect::<Vec<_>>(),
        "event ids are neither duplicated nor skipped"
    );
    for text in texts {
        let answered = events.iter().filter(|e| answers(e, text)).count();
        assert_eq!(answered, 1, "{text} is answered exactly once: {events:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_appends_nothing_after_the_takeover() {
    let mut env = ClusterEnv::fresh().await;
    // A Redis of its own, whose writes the test holds back for a moment (below).
    let redis = PrivateRedis::start();
    env.redis_url = redis.url();
    let paused = NodeProcess::start(&env).await;
    let survivor = NodeProcess::start(&env).await;
    let alice = token("alice");
    let id = paused
        .create_conversation(&alice, Some("before the pause"))
        .await;
    let options = ConnectOptions::conversation(&id, &alice, None);
    let mut client = SocketClient::connect(&survivor.url, &options).await;
    client
        .events_until(|e| answers(e, "before the pause"))
        .await;

    paused.signal("STOP").await;
    say(&mut client, "while paused").await;
    client.events_until(|e| answers(e, "while paused")).await;
    let new_owners = settled_loop_state(&survivor, &alice, &id).await;
    // Resumed past its lease, the old owner finds it lost; whatever it tries is fenced. A stop signal
    // waiting for it makes it try a metadata write at once, its hand-over's last one; Redis holding
    // writes back for a second keeps its lease refresh from telling it first.
    redis.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]);
    paused.signal("TERM").await;
    paused.signal("CONT").await;
    assert!(paused.exited().await.success());
    assert_eq!(
        loop_state(&survivor, &alice, &id).await,
        new_owners,
        "the old owner changed the metadata"
    );
    tokio::time::sleep(std::time::Duration::from_secs_f64(env.lease_ttl)).await;
    say(&mut client, "after the resume").await;
    client
        .events_until(|e| answers(e, "after the resume"))
        .await;
    answered_once_without_gaps(
        &survivor,
        &alice,
        &id,
        &["before the pause", "while paused", "after the resume"],
    )
    .await;
}

/// What a conversation's owner writes of its metadata: status, agent state, last update.
async fn loop_state(node: &NodeProcess, token: &str, id: &str) -> Value {
    let conversation = node.conversation(token, id).await;
    json!({
        "status": conversation["status"],
        "agent_state": conversation["agent_state"],
        "last_updated_at": conversation["last_updated_at"],
    })
}

/// The loop state once the owner waits for the user and has written its last change.
async fn settled_loop_state(node: &NodeProcess, token: &str, id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let now = loop_state(node, token, id).await;
        if now["agent_state"] == "awaiting_user_input" && now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("the metadata did not settle: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_conversations_over_to_the_others() {
    let env = ClusterEnv::fresh().await;
    let leaving = NodeProcess::start(&env).await;
    let staying = NodeProcess::start(&env).await;
    let alice = token("alice");
    let id = leaving
        .create_conversation(&alice, Some("before the deploy"))
        .await;
    let options = ConnectOptions::conversation(&id, &alice, None);
    let mut client = SocketClient::connect(&staying.url, &options).await;
    client
        .events_until(|e| answers(e, "before the deploy"))
        .await;

    leaving.signal("TERM").await;
    let status = leaving.exited().await;
    assert!(status.success(), "a clean stop: {status}");
    let handed = Instant::now();
    say(&mut client, "after the deploy").await;
    client
        .events_until(|e| answers(e, "after the deploy"))
        .await;
    println!(
        "hand-over: answered {:?} after the old owner exited",
        handed.elapsed()
    );
    answered_once_without_gaps(
        &staying,
        &alice,
        &id,
        &["before the deploy", "after the deploy"],
    )
    .await;
}

/// The ids of the stored events among `events` (the ones with an id), in the order received.
fn stored_ids(events: &[Value]) -> Vec<i64> {
    events.iter().filter_map(|e| e["id"].as_i64()).collect()
}

/// A client that reconnects by itself, behind a load balancer of its own, and every event it received.
struct Roaming {
    client: SocketClient,
    received: Vec<Value>,
    _balancer: Balancer,
}

impl Roaming {
    /// Connects through a balancer over `nodes` (the first connection goes to the first node) and
    /// reads up to the answer to `first`.
    async fn connect(nodes: &[&NodeProcess], id: &str, token: &str, first: &str) -> Self {
        let urls: Vec<&str> = nodes.iter().map(|node| node.url.as_str()).collect();
        let balancer = Balancer::start(&urls).await;
        let options = ConnectOptions::conversation(id, token, None).reconnecting();
        let mut client = SocketClient::connect(&balancer.url, &options).await;
        let received = client.events_until(|e| answers(e, first)).await;
        Self {
            client,
            received,
            _balancer: balancer,
        }
    }

    /// After its node got SIGTERM at `terminated`: the client is disconnected, reconnects, says `text`
    /// and reads up to the answer. Returns when it was disconnected, reconnected, and received its
    /// first event newer than any before, counted from `terminated`.
    async fn moves_on(&mut self, terminated: Instant, text: &str) -> [std::time::Duration; 3] {
        let last_before = stored_ids(&self.received).into_iter().max();
        // Closed by the node: not a Socket.IO disconnect, after which a client would not come back.
        assert_eq!(self.client.disconnection().await, "transport close");
        let disconnected = terminated.elapsed();
        self.client
            .connection()
            .await
            .expect("the client reconnects through the balancer");
        let reconnected = terminated.elapsed();
        say(&mut self.client, text).await;
        let mut first_new = None;
        loop {
            let event = self.client.next_event().await;
            if first_new.is_none() && event["id"].as_i64() > last_before {
                first_new = Some(terminated.elapsed());
            }
            let done = answers(&event, text);
            self.received.push(event);
            if done {
                break;
            }
        }
        // Across both connections, every stored event arrived once, in order.
        let ids = stored_ids(&self.received);
        assert_eq!(
            ids,
            (0..i64::try_from(ids.len()).unwrap()).collect::<Vec<_>>(),
            "no event is missed or repeated over the reconnection"
        );
        [disconnected, reconnected, first_new.unwrap_or_default()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_moves_its_clients_to_the_others_without_gap_or_duplicate() {
    let env = ClusterEnv::fresh().await;
    let leaving = NodeProcess::start(&env).await;
    let staying = NodeProcess::start(&env).await;
    let alice = token("alice");
    // Both run on the leaving node. "alone" has no client elsewhere: the reconnecting client's new node
    // takes it over. "watched" has a client on the staying node too, which takes it over at once and
    // talks while the other client is away: that one gets what it missed when it is back.
    let alone = leaving.create_conversation(&alice, Some("alone")).await;
    let watched = leaving.create_conversation(&alice, Some("watched")).await;
    let nodes = [&leaving, &staying];
    let mut alone_client = Roaming::connect(&nodes, &alone, &alice, "alone").await;
    let mut watched_client = Roaming::connect(&nodes, &watched, &alice, "watched").await;
    let options = ConnectOptions::conversation(&watched, &alice, None);
    let mut watcher = SocketClient::connect(&staying.url, &options).await;
    watcher.events_until(|e| answers(e, "watched")).await;

    leaving.signal("TERM").await;
    let terminated = Instant::now();
    let watcher_side = async {
        say(&mut watcher, "during the deploy").await;
        watcher
            .events_until(|e| answers(e, "during the deploy"))
            .await;
        terminated.elapsed()
    };
    let (continued, alone_times, watched_times) = tokio::join!(
        watcher_side,
        alone_client.moves_on(terminated, "after the deploy"),
        watched_client.moves_on(terminated, "after the deploy"),
    );
    println!(
        "SIGTERM: a conversation with a client on a survivor answered after {continued:?}; the \
         leaving node's clients were disconnected after {:?} / {:?}, reconnected after {:?} / {:?} \
         (their own reconnection delay), and got the new owner's first event after {:?} / {:?}",
        alone_times[0],
        watched_times[0],
        alone_times[1],
        watched_times[1],
        alone_times[2],
        watched_times[2],
    );
    answered_once_without_gaps(&staying, &alice, &alone, &["alone", "after the deploy"]).await;
    answered_once_without_gaps(
        &staying,
        &alice,
        &watched,
        &["watched", "during the deploy", "after the deploy"],
    )
    .await;
    assert!(
        watched_client
            .received
            .iter()
            .any(|e| answers(e, "during the deploy")),
        "the client got the answer given while it was away"
    );
    let status = leaving.exited().await;
    assert!(status.success(), "a clean stop: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_limit_holds_across_nodes_under_concurrent_starts() {
    let mut env = ClusterEnv::fresh().await;
    env.extra = vec![
        ("MAX_CONCURRENT_CONVERSATIONS", "2".into()),
        ("CONVERSATION_LIMIT_POLICY", "reject".into()),
    ];
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(NodeProcess::start(&env).await);
    }
    let alice = token("alice");
    let starts = (0..9).map(|n| nodes[n % 3].try_create(&alice, Some("in parallel")));
    let statuses: Vec<u16> = futures::future::join_all(starts)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let started = statuses.iter().filter(|s| **s == 201).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((started, refused), (2, 7), "{statuses:?}");
}

/// Polls a node's `/ready` (on its metrics listener) until it answers 200 (`true`) or 503 (`false`).
async fn readiness(node: &NodeProcess, ready: bool) {
    let deadline = Instant::now() + e2e::socketio::PATIENCE;
    loop {
        let answer = reqwest::get(format!("{}/ready", node.metrics_url)).await;
        if answer.is_ok_and(|answer| answer.status().is_success() == ready) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never became ready={ready}",
            node.url
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_shows_on_ready_and_the_cluster_recovers_empty_without_scans() {
    let mut redis = PrivateRedis::start();
    let mut env = ClusterEnv::fresh().await;
    env.redis_url = redis.url();
    env.extra = vec![
        ("MAX_CONCURRENT_CONVERSATIONS", "1".into()),
        ("CONVERSATION_LIMIT_POLICY", "reject".into()),
    ];
    let first = NodeProcess::start(&env).await;
    let second = NodeProcess::start(&env).await;
    let alice = token("alice");
    let id = first
        .create_conversation(&alice, Some("before the restart"))
        .await;
    let options = ConnectOptions::conversation(&id, &alice, None);
    let mut client = SocketClient::connect(&second.url, &options).await;
    client
        .events_until(|e| answers(e, "before the restart"))
        .await;
    // Alice is at her limit.
    assert_eq!(second.try_create(&alice, Some("one too many")).await.0, 429);

    no_key_scans(&redis);
    redis.kill();
    // The outage shows on /ready; the nodes come back by themselves once Redis is back, empty.
    readiness(&first, false).await;
    readiness(&second, false).await;
    redis.start_empty();
    readiness(&first, true).await;
    readiness(&second, true).await;
    // The owner's next refresh re-asserts its lease and, in the same step, alice's running set: from
    // then on she is at her limit exactly as before the restart.
    let lease = Keys::new(&env.key_prefix).lease(&ConversationId::parse(&id).unwrap());
    let deadline = Instant::now() + e2e::socketio::PATIENCE;
    while !redis.exists(&lease) {
        assert!(Instant::now() < deadline, "the lease was never re-asserted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(second.try_create(&alice, Some("one too many")).await.0, 429);
    say(&mut client, "after the restart").await;
    client
        .events_until(|e| answers(e, "after the restart"))
        .await;
    answered_once_without_gaps(
        &second,
        &alice,
        &id,
        &["before the restart", "after the restart"],
    )
    .await;
    no_key_scans(&redis);
}

/// A probe's status code (`base`: the node's public URL or its metrics listener's).
async fn probe(base: &str, path: &str) -> u16 {
    reqwest::get(format!("{base}{path}"))
        .await
        .expect("the node answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_redis_is_down_waits_for_it() {
    let mut redis = PrivateRedis::start();
    let mut env = ClusterEnv::fresh().await;
    env.redis_url = redis.url();
    redis.kill();
    let mut node = NodeProcess::launch(&env).await;
    let stopped_early = NodeProcess::launch(&env).await;
    node.logged("the cluster's Redis is unreachable: waiting for it")
        .await;
    // Alive (a health check keeps it) but not ready (a load balancer sends it nothing).
    assert_eq!(probe(&node.url, "/health").await, 200);
    assert_eq!(probe(&node.metrics_url, "/ready").await, 503);
    // A stop while it waits is a clean exit.
    stopped_early.signal("TERM").await;
    let status = stopped_early.exited().await;
    assert!(status.success(), "a clean stop: {status}");

    redis.start_empty();
    readiness(&node, true).await;
    let alice = token("alice");
    let id = node
        .create_conversation(&alice, Some("once Redis is up"))
        .await;
    let options = ConnectOptions::conversation(&id, &alice, None);
    let mut client = SocketClient::connect(&node.url, &options).await;
    client
        .events_until(|e| answers(e, "once Redis is up"))
        .await;
}

/// Commands per heartbeat of an idle node over a window of `beats` heartbeats (each heartbeat runs
/// exactly two scripts, `BEAT` and, with the peer check at the heartbeat's cadence, `REAP`, when the
/// node holds no lease: they count the heartbeats).
async fn commands_per_heartbeat(redis: &PrivateRedis, beats: u64) -> f64 {
    let total = |calls: &std::collections::BTreeMap<String, u64>| -> (u64, u64) {
        let all = calls
            .iter()
            .filter(|(name, _)| name.as_str() != "info")
            .map(|(_, calls)| calls)
            .sum();
        (all, calls.get("evalsha").copied().unwrap_or(0))
    };
    let (all_before, scripts_before) = total(&redis.command_calls());
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (all, scripts) = total(&redis.command_calls());
        if scripts - scripts_before >= 2 * beats {
            let heartbeats = (scripts - scripts_before) as f64 / 2.0;
            return (all - all_before) as f64 / heartbeats;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_heartbeat_costs_the_same_however_many_conversations_others_own() {
    let redis = PrivateRedis::start();
    let mut env = ClusterEnv::fresh().await;
    env.redis_url = redis.url();
    env.heartbeat = 0.2;
    // One look for dead peers per heartbeat, so that the scripts count the heartbeats.
    env.extra = vec![("PEER_CHECK_INTERVAL", "0.2".into())];
    let _idle = NodeProcess::start(&env).await;
    let before = commands_per_heartbeat(&redis, 5).await;

    // Another node's conversations, with clients and waiting actions; it stays quiet during the window.
    let settings = RedisSettings::new(
        &redis.url(),
        &env.key_prefix,
        std::time::Duration::from_secs(600),
    );
    let (other, _incoming) = RedisCoordination::connect(&settings, NodeId::new("other"))
        .await
        .expect("Redis answers");
    for n in 0..300 {
        let conversation = ConversationId::parse(&format!("foreign-{n}")).unwrap();
        let claim = ClaimRequest {
            conversation: conversation.clone(),
            user_id: e2e::user_id(&format!("user-{}", n % 50)),
            max_running: 10,
            policy: LimitPolicy::EvictOldest,
            min_epoch: 1,
        };
        other.claim(&claim).await.unwrap();
        other.join(&conversation, "client").await.unwrap();
        other
            .push_action(&conversation, &UserAction::message("waiting"), None)
            .await
            .unwrap();
    }
    let after = commands_per_heartbeat(&redis, 5).await;
    println!(
        "commands per heartbeat of an idle node: {before:.1}, with 300 foreign conversations: {after:.1}"
    );
    assert!(
        after < before + 1.0,
        "the heartbeat's cost grew with other nodes' conversations: {before} -> {after}"
    );
    no_key_scans(&redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_continuous_actions_on_many_conversations_loses_nothing_acknowledged() {
    const CONVERSATIONS: usize = 8;
    const ROUNDS: usize = 6;
    let env = ClusterEnv::fresh().await;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(NodeProcess::start(&env).await);
    }
    let mut conversations = Vec::new();
    let mut clients = Vec::new();
    for n in 0..CONVERSATIONS {
        // Users of their own, so that the per-user limit evicts nothing.
        let user = token(&format!("user-{n}"));
        let id = nodes[0]
            .create_conversation(&user, Some(&format!("c{n} opens")))
            .await;
        let options = ConnectOptions::conversation(&id, &user, None);
        clients.push(SocketClient::connect(&nodes[1 + n % 2].url, &options).await);
        conversations.push((id, user));
    }
    let mut killed = None;
    for round in 0..ROUNDS {
        if round == ROUNDS / 2 {
            nodes[0].signal("KILL").await;
            killed = Some(Instant::now());
        }
        for (n, client) in clients.iter_mut().enumerate() {
            say(client, &format!("c{n} round {round}")).await;
        }
    }
    for (n, client) in clients.iter_mut().enumerate() {
        let last = format!("c{n} round {}", ROUNDS - 1);
        client.events_until(|e| answers(e, &last)).await;
    }
    if let Some(killed) = killed {
        println!(
            "takeover of {CONVERSATIONS} conversations: every client answered {:?} after kill -9",
            killed.elapsed()
        );
    }
    for (n, (id, user)) in conversations.iter().enumerate() {
        let texts: Vec<String> = std::iter::once(format!("c{n} opens"))
            .chain((0..ROUNDS).map(|round| format!("c{n} round {round}")))
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        answered_once_without_gaps(&nodes[1], user, id, &texts).await;
    }
}
