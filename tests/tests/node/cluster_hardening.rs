//! The cluster's hardening, as real node processes on real Redis (and Sentinel) with moto: a pub/sub
//! blip is no death, a rolling deploy keeps every conversation (with or without a client), a Sentinel
//! failover loses no acknowledged action, eviction takes the least recently active conversation, and a
//! stopped conversation leaves no key behind once its retention passed.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::cluster::{ClusterEnv, NodeProcess, answers};
use e2e::node::token;
use e2e::sentinel::SentinelRedis;
use e2e::socketio::{ConnectOptions, SocketClient, message_action};
use serde_json::json;

/// A conversation the test drives: its id, its user's token, and the texts acknowledged so far.
struct Driven {
    id: String,
    token: String,
    acknowledged: Vec<String>,
}

/// Sends a message through REST to the first of `urls` (from `start`) that acknowledges it, the same
/// `client_action_id` on each try (so that a try that failed after storing it counts once); `false`
/// when none did (the action counts as not acknowledged).
async fn post_message(urls: &[String], start: usize, conversation: &Driven, text: &str) -> bool {
    let http = reqwest::Client::new();
    let mut action = message_action(text);
    action["client_action_id"] = json!(text.trim_end_matches('.').replace(' ', "-"));
    for offset in 0..urls.len() {
        let url = &urls[(start + offset) % urls.len()];
        let answer = http
            .post(format!(
                "{url}/api/conversations/{}/events",
                conversation.id
            ))
            .bearer_auth(&conversation.token)
            .json(&action)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if let Ok(answer) = answer
            && answer.status().is_success()
        {
            return true;
        }
    }
    false
}

/// Keeps acting on every conversation, round after round, through whichever node answers, until
/// told to stop; the acknowledged texts are recorded in `conversations`.
fn act_continuously(
    urls: Arc<Mutex<Vec<String>>>,
    conversations: Arc<Mutex<Vec<Driven>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut round = 0;
        while !stop.load(Ordering::Acquire) {
            let count = conversations.lock().unwrap().len();
            for n in 0..count {
                // Ended by a full stop, so that no text is part of another ("1." of "11.").
                let text = format!("c{n} action {round}.");
                let (target, urls) = {
                    let all = conversations.lock().unwrap();
                    let target = Driven {
                        id: all[n].id.clone(),
                        token: all[n].token.clone(),
                        acknowledged: Vec::new(),
                    };
                    (target, urls.lock().unwrap().clone())
                };
                if post_message(&urls, n, &target, &text).await {
                    conversations.lock().unwrap()[n].acknowledged.push(text);
                }
            }
            round += 1;
        }
        round
    })
}

/// Waits until every acknowledged text of every conversation is answered, then checks each is
/// answered exactly once, the stored ids contiguous.
async fn every_acknowledged_action_answered_once(node: &NodeProcess, conversations: &[Driven]) {
    for conversation in conversations {
        let deadline = Instant::now() + Duration::from_secs(60);
        let events = loop {
            let events = node.all_events(&conversation.token, &conversation.id).await;
            let all_answered = conversation
                .acknowledged
                .iter()
                .all(|text| events.iter().any(|e| answers(e, text)));
            if all_answered {
                break events;
            }
            assert!(
                Instant::now() < deadline,
                "acknowledged actions of {} are never answered",
                conversation.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
        assert_eq!(
            ids,
            (0..i64::try_from(ids.len()).unwrap()).collect::<Vec<_>>(),
            "event ids are neither duplicated nor skipped"
        );
        for text in &conversation.acknowledged {
            let answered = events.iter().filter(|e| answers(e, text)).count();
            assert_eq!(answered, 1, "{text} is answered exactly once");
        }
    }
}

/// A connection to the test's Redis for reading the cluster's keys.
async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers")
}

/// The owner and epoch of a conversation's lease, if it has one.
async fn lease(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    id: &str,
) -> Option<(String, u64)> {
    let (owner, epoch): (Option<String>, Option<u64>) = redis::cmd("HMGET")
        .arg(format!("{prefix}lease:{id}"))
        .arg("owner")
        .arg("epoch")
        .query_async(redis)
        .await
        .expect("HMGET");
    owner.zip(epoch)
}

/// The ids of the Redis clients on pub/sub connections that belong to the process `pid`.
async fn pubsub_clients_of(redis: &mut redis::aio::MultiplexedConnection, pid: u32) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(redis)
        .await
        .expect("CLIENT LIST");
    let sockets = std::process::Command::new("ss")
        .args(["-tnpH", "state", "established"])
        .output()
        .expect("ss runs");
    let sockets = String::from_utf8_lossy(&sockets.stdout);
    let owned_ports: BTreeSet<String> = sockets
        .lines()
        .filter(|line| line.contains(&format!("pid={pid},")))
        .filter_map(|line| line.split_whitespace().nth(2))
        .map(str::to_owned)
        .collect();
    list.lines()
        .filter(|client| {
            client
                .split_whitespace()
                .find_map(|field| field.strip_prefix("addr="))
                .is_some_and(|addr| owned_ports.contains(addr))
        })
        .filter_map(|client| {
            client
                .split_whitespace()
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

/// Creates `count` conversations (a user each, so that no limit evicts), round robin over `nodes`.
async fn create_conversations(nodes: &[&NodeProcess], count: usize) -> Vec<Driven> {
    let mut conversations = Vec::new();
    for n in 0..count {
        let token = token(&format!("user-{n}"));
        let first = format!("c{n} opens");
        let id = nodes[n % nodes.len()]
            .create_conversation(&token, Some(&first))
            .await;
        conversations.push(Driven {
            id,
            token,
            acknowledged: vec![first],
        });
    }
    conversations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_blips_take_nothing_over() {
    const CONVERSATIONS: usize = 6;
    const KILLS: usize = 20;
    let mut env = ClusterEnv::fresh().await;
    // Peers look every 50 ms, so that they see the owner's channel without a subscriber during the
    // milliseconds of most blips (with a single signal, that reaps it).
    env.extra.push(("PEER_CHECK_INTERVAL", "0.05".into()));
    let nodes = [
        NodeProcess::start(&env).await,
        NodeProcess::start(&env).await,
        NodeProcess::start(&env).await,
    ];
    let owner = &nodes[0];
    let conversations = create_conversations(&[owner], CONVERSATIONS).await;
    let mut redis = redis_at(&env.redis_url).await;
    let mut leases = Vec::new();
    for conversation in &conversations {
        let held = lease(&mut redis, &env.key_prefix, &conversation.id).await;
        assert_eq!(
            held.as_ref().map(|(o, _)| o.as_str()),
            Some(owner.node_id.as_str())
        );
        leases.push(held);
    }
    let urls = Arc::new(Mutex::new(vec![nodes[1].url.clone(), nodes[2].url.clone()]));
    let shared = Arc::new(Mutex::new(conversations));
    let stop = Arc::new(AtomicBool::new(false));
    let load = act_continuously(Arc::clone(&urls), Arc::clone(&shared), Arc::clone(&stop));
    let mut killed = 0;
    while killed < KILLS {
        // The owner's pub/sub connection, re-opened after each kill.
        let clients = pubsub_clients_of(&mut redis, owner.pid()).await;
        let Some(client) = clients.first() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(client)
            .query_async(&mut redis)
            .await
            .expect("CLIENT KILL");
        killed += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Two heartbeats more, for any reaper to have acted.
    tokio::time::sleep(Duration::from_secs_f64(env.heartbeat * 2.0)).await;
    stop.store(true, Ordering::Release);
    let rounds = load.await.unwrap();
    let conversations = std::mem::take(&mut *shared.lock().unwrap());
    for (conversation, before) in conversations.iter().zip(&leases) {
        let now = lease(&mut redis, &env.key_prefix, &conversation.id).await;
        assert_eq!(
            &now, before,
            "the lease stayed with its owner, under its epoch"
        );
    }
    every_acknowledged_action_answered_once(&nodes[1], &conversations).await;
    println!("{KILLS} pub/sub kills over {rounds} rounds of actions: 0 takeovers, 0 leases lost");
}

/// A free loopback port, for a node restarted on the port it had.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The cluster's environment for one node on a fixed port.
fn on_port(env: &ClusterEnv, port: u16) -> ClusterEnv {
    let mut env = env.clone();
    env.extra.push(("PORT", port.to_string()));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_keeps_every_conversation_with_or_without_clients() {
    const CONVERSATIONS: usize = 30;
    let env = ClusterEnv::fresh().await;
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = Vec::new();
    for port in ports {
        nodes.push(Some(NodeProcess::start(&on_port(&env, port)).await));
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    let live: Vec<&NodeProcess> = nodes.iter().flatten().collect();
    let conversations = create_conversations(&live, CONVERSATIONS).await;
    // Half of them have a client, which reconnects through a balancer when its node leaves.
    let url_refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let balancer = e2e::balancer::Balancer::start(&url_refs).await;
    let mut clients = Vec::new();
    for conversation in conversations.iter().step_by(2) {
        let options = ConnectOptions::conversation(&conversation.id, &conversation.token, None)
            .reconnecting();
        clients.push(SocketClient::connect(&balancer.url, &options).await);
    }
    let mut redis = redis_at(&env.redis_url).await;
    let shared = Arc::new(Mutex::new(conversations));
    let stop = Arc::new(AtomicBool::new(false));
    let load = act_continuously(
        Arc::new(Mutex::new(urls.clone())),
        Arc::clone(&shared),
        Arc::clone(&stop),
    );
    let mut hand_overs = Vec::new();
    for (n, port) in ports.iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leaving = nodes[n].take().expect("running");
        let ids: Vec<String> = shared
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.id.clone())
            .collect();
        let mut owned = Vec::new();
        for id in ids {
            if lease(&mut redis, &env.key_prefix, &id)
                .await
                .map(|(o, _)| o)
                == Some(leaving.node_id.clone())
            {
                owned.push(id);
            }
        }
        let terminated = Instant::now();
        leaving.signal("TERM").await;
        // Each of its conversations is claimed by another node, clients or not.
        let mut waiting: BTreeSet<String> = owned.iter().cloned().collect();
        while !waiting.is_empty() {
            assert!(
                terminated.elapsed() < Duration::from_secs(30),
                "never taken over: {waiting:?}"
            );
            for id in waiting.clone() {
                let owner = lease(&mut redis, &env.key_prefix, &id)
                    .await
                    .map(|(o, _)| o);
                if owner.is_some_and(|owner| owner != leaving.node_id) {
                    hand_overs.push(terminated.elapsed());
                    waiting.remove(&id);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = leaving.exited().await;
        assert!(status.success(), "a clean stop: {status}");
        nodes[n] = Some(NodeProcess::start(&on_port(&env, *port)).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Release);
    let rounds = load.await.unwrap();
    let conversations = std::mem::take(&mut *shared.lock().unwrap());
    let node = nodes[0].as_ref().expect("running");
    every_acknowledged_action_answered_once(node, &conversations).await;
    // Every client saw its conversation's events once each, across its reconnections.
    for (client, conversation) in clients.iter_mut().zip(conversations.iter().step_by(2)) {
        let last = conversation
            .acknowledged
            .last()
            .expect("acknowledged actions");
        let received = client.events_until(|e| answers(e, last)).await;
        let ids: Vec<i64> = received.iter().filter_map(|e| e["id"].as_i64()).collect();
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "no event received twice: {ids:?}"
        );
    }
    hand_overs.sort();
    println!(
        "rolling restart of 3 nodes, {CONVERSATIONS} conversations, {rounds} rounds of actions: \
         {} hand-overs, max {:?}, median {:?}",
        hand_overs.len(),
        hand_overs.last().copied().unwrap_or_default(),
        hand_overs
            .get(hand_overs.len() / 2)
            .copied()
            .unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_loses_no_acknowledged_action() {
    const CONVERSATIONS: usize = 20;
    let sentinel = SentinelRedis::start("proactive");
    let mut env = ClusterEnv::fresh().await;
    env.redis_url = format!("redis://127.0.0.1:{}", sentinel.master_port());
    // Longer than a failover: leases outlive the minutes without a primary.
    env.lease_ttl = 15.0;
    env.heartbeat = 1.0;
    env.extra.extend([
        ("REDIS_SENTINELS", sentinel.sentinel_addrs().join(",")),
        ("REDIS_SENTINEL_MASTER", sentinel.master_name().to_owned()),
    ]);
    let nodes = [
        NodeProcess::start(&env).await,
        NodeProcess::start(&env).await,
    ];
    let conversations = create_conversations(&[&nodes[0], &nodes[1]], CONVERSATIONS).await;
    let urls: Vec<String> = nodes.iter().map(|node| node.url.clone()).collect();
    let shared = Arc::new(Mutex::new(conversations));
    let stop = Arc::new(AtomicBool::new(false));
    let load = act_continuously(
        Arc::new(Mutex::new(urls)),
        Arc::clone(&shared),
        Arc::clone(&stop),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acknowledged = |shared: &Mutex<Vec<Driven>>| -> usize {
        shared
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.acknowledged.len())
            .sum()
    };
    let mut sentinel = sentinel;
    let killed_port = sentinel.kill_master();
    let killed = Instant::now();
    let before = acknowledged(&shared);
    let failover = sentinel.wait_for_failover(killed_port, Duration::from_secs(30));
    // Serving again: acknowledgements resume.
    let mut serving_again = None;
    while serving_again.is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the cluster never served again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        if acknowledged(&shared) > before + 2 {
            serving_again = Some(killed.elapsed());
        }
    }
    sentinel.restart_killed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Release);
    let rounds = load.await.unwrap();
    let conversations = std::mem::take(&mut *shared.lock().unwrap());
    every_acknowledged_action_answered_once(&nodes[0], &conversations).await;
    let total: usize = conversations.iter().map(|c| c.acknowledged.len()).sum();
    println!(
        "sentinel failover: promoted {failover:?} after kill -9, acknowledging again {:?} after it; \
         {total} acknowledged actions over {rounds} rounds, 0 lost",
        serving_again.unwrap_or_default()
    );
}

/// The names of the keys under `prefix`.
async fn keys_under(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .expect("SCAN");
        keys.extend(batch.into_iter().map(|key| key[prefix.len()..].to_owned()));
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_takes_the_least_recently_active_and_stopped_conversations_leave_no_keys() {
    let mut env = ClusterEnv::fresh().await;
    env.extra.extend([
        ("MAX_CONCURRENT_CONVERSATIONS", "2".to_owned()),
        ("REDIS_RETENTION", "2".to_owned()),
    ]);
    let nodes = [
        NodeProcess::start(&env).await,
        NodeProcess::start(&env).await,
    ];
    let mut redis = redis_at(&env.redis_url).await;
    let baseline = keys_under(&mut redis, &env.key_prefix).await;
    let alice = token("alice");
    let older = nodes[0].create_conversation(&alice, Some("older")).await;
    let newer = nodes[1].create_conversation(&alice, Some("newer")).await;
    // A client of the older one acts in it (with a client action id): it becomes the more recent.
    let options = ConnectOptions::conversation(&older, &alice, None);
    let mut client = SocketClient::connect(&nodes[1].url, &options).await;
    client.events_until(|e| answers(e, "older")).await;
    let mut action = message_action("still typing");
    action["client_action_id"] = json!("typing-1");
    assert_eq!(
        client.emit_with_ack("oh_user_action", action).await,
        json!({ "success": true })
    );
    client.events_until(|e| answers(e, "still typing")).await;
    let third = nodes[0].create_conversation(&alice, Some("third")).await;
    let status = |id: String| {
        let node = &nodes[0];
        let alice = alice.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let view = node.conversation(&alice, &id).await;
                if view["status"] != "running" || Instant::now() > deadline {
                    return view["status"].clone();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(
        status(newer.clone()).await,
        "stopped",
        "the least recently active is evicted"
    );
    for id in [&older, &third] {
        let view = nodes[1].conversation(&alice, id).await;
        assert_eq!(view["status"], "running", "{id} keeps running");
    }
    // Everything stops, the client leaves; once the retention passed, only the cluster's own keys stay.
    client.close().await;
    for id in [&older, &third] {
        let stopped = reqwest::Client::new()
            .post(format!("{}/api/conversations/{id}/stop", nodes[0].url))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert!(stopped.status().is_success());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let allowed: BTreeSet<String> = baseline
        .iter()
        .cloned()
        .chain(["claims".to_owned(), "nodes".to_owned()])
        .collect();
    loop {
        let keys = keys_under(&mut redis, &env.key_prefix).await;
        if keys.is_subset(&allowed) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys left behind after the retention: {:?}",
            keys.difference(&allowed).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
