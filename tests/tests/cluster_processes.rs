//! Clustered nodes as real processes (the `conversation-node` binary) on real Redis and DynamoDB on
//! moto, with official Socket.IO clients: a client on one node talks to a conversation another node
//! runs, and a `kill -9` of that owner loses no acknowledged action.

use std::time::Instant;

use e2e::cluster::{ClusterEnv, NodeProcess, answers};
use e2e::node::token;
use e2e::redis::PrivateRedis;
use e2e::socketio::{ConnectOptions, SocketClient, message_action};
use serde_json::json;
use shared::adapters::redis::{RedisCoordination, RedisSettings};
use shared::domain::{ConversationId, UserAction};
use shared::ports::Coordination;
use shared::ports::coordination::{ClaimRequest, LimitPolicy, NodeId};

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
    let env = ClusterEnv::fresh().await;
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
    // Resumed past its lease, the old owner finds it lost; whatever it tries is fenced.
    paused.signal("CONT").await;
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

/// Polls a node's `/ready` until it answers 200 (`true`) or 503 (`false`).
async fn readiness(node: &NodeProcess, ready: bool) {
    let deadline = Instant::now() + e2e::socketio::PATIENCE;
    loop {
        let answer = reqwest::get(format!("{}/ready", node.url)).await;
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

    no_key_scans(&redis);
    redis.kill();
    // The outage shows on /ready; the nodes come back by themselves once Redis is back, empty.
    readiness(&first, false).await;
    readiness(&second, false).await;
    redis.start_empty();
    readiness(&first, true).await;
    readiness(&second, true).await;
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

/// No command that walks the key space (or a whole collection) was issued.
fn no_key_scans(redis: &PrivateRedis) {
    let calls = redis.command_calls();
    assert!(
        calls.contains_key("evalsha"),
        "the statistics are read: {calls:?}"
    );
    for pattern_command in ["scan", "keys", "hscan", "sscan", "zscan"] {
        assert!(
            !calls.contains_key(pattern_command),
            "{pattern_command} was issued: {calls:?}"
        );
    }
}

/// Commands per heartbeat of an idle node over a window of `beats` heartbeats (each heartbeat runs
/// exactly two scripts, `BEAT` and `REAP`, when the node holds no lease: they count the heartbeats).
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
    let _idle = NodeProcess::start(&env).await;
    let before = commands_per_heartbeat(&redis, 5).await;

    // Another node's conversations, with clients and waiting actions; it stays quiet during the window.
    let settings = RedisSettings {
        url: redis.url(),
        key_prefix: env.key_prefix.clone(),
        lease_ttl: std::time::Duration::from_secs(600),
    };
    let (other, _incoming) = RedisCoordination::connect(&settings, NodeId::new("other"))
        .await
        .expect("Redis answers");
    for n in 0..300 {
        let conversation = ConversationId::parse(&format!("foreign-{n}")).unwrap();
        let claim = ClaimRequest {
            conversation: conversation.clone(),
            user_id: format!("user-{}", n % 50),
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
