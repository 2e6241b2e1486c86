//! Conversation lifecycle through the real interfaces: the per-user limit with oldest-first eviction
//! (and the reject policy), idle close that spares conversations with a client, and an explicit stop
//! that nothing but a user's prompt undoes.

use std::time::Duration;

use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, is_stopped, token};
use e2e::socketio::{ConnectOptions, SocketClient, is_state, message_action};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::ports::coordination::LimitPolicy;

fn limited(max_running: usize, policy: LimitPolicy) -> NodeOptions {
    let mut options = NodeOptions::new();
    options.config.limits.max_running = max_running;
    options.config.limits.policy = policy;
    options
}

fn is_running(conversation: &Value) -> bool {
    conversation["status"] == "running"
}

/// Waits until the node has completed `count` more idle sweeps.
async fn sweeps(node: &TestNode, count: f64) {
    let target = node.metric("conversation_node_sweeps_total").await + count;
    while node.metric("conversation_node_sweeps_total").await < target {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_one_too_many_evicts_the_users_oldest_conversation() {
    let node = TestNode::standalone(
        &Stores::embedded().await,
        limited(2, LimitPolicy::EvictOldest),
    )
    .await;
    let (alice, bob) = (token("alice"), token("bob"));
    let bobs = node.create_conversation(&bob, None).await;
    let oldest = node.create_conversation(&alice, None).await;
    let mut watcher = SocketClient::connect(
        &node.url,
        &ConnectOptions::conversation(&oldest, &alice, None),
    )
    .await;
    watcher
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    let middle = node.create_conversation(&alice, None).await;
    let newest = node.create_conversation(&alice, None).await;

    // The oldest one's clients hear why, then see it stop.
    let status = watcher.next_event().await;
    assert_eq!(
        status,
        json!({
            "status_update": true,
            "type": "error",
            "id": "AGENT_ERROR$TOO_MANY_CONVERSATIONS",
            "message": "Too many conversations at once. If you are still using this one, try reactivating it by prompting the agent to continue",
        })
    );
    let stopped = watcher.next_event().await;
    assert!(is_state(&stopped, "stopped"), "{stopped}");
    let evicted = node.wait_for(&alice, &oldest, is_stopped).await;
    assert_eq!(evicted["agent_state"], "stopped");
    assert!(is_running(&node.conversation(&alice, &middle).await));
    assert!(is_running(&node.conversation(&alice, &newest).await));
    assert!(
        is_running(&node.conversation(&bob, &bobs).await),
        "another user's conversations do not count"
    );

    // Prompting the evicted one reactivates it, which evicts the next oldest.
    let ack = watcher
        .emit_with_ack("oh_user_action", message_action("still here"))
        .await;
    assert_eq!(ack["success"], true);
    let turn = watcher.events_until(is_agent_message).await;
    assert!(turn.iter().any(|e| is_state(e, "running")));
    assert!(is_running(&node.conversation(&alice, &oldest).await));
    node.wait_for(&alice, &middle, is_stopped).await;
    assert!(is_running(&node.conversation(&alice, &newest).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reject_policy_answers_429_and_creates_nothing() {
    let node =
        TestNode::standalone(&Stores::embedded().await, limited(2, LimitPolicy::Reject)).await;
    let alice = token("alice");
    let first = node.create_conversation(&alice, None).await;
    node.create_conversation(&alice, None).await;
    let (status, body) = node
        .post(
            "/api/conversations",
            Some(&alice),
            &json!({ "initial_user_msg": "one more" }),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "too_many_conversations");
    let (_, listed) = node.get("/api/conversations", Some(&alice)).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 2);
    assert!(is_running(&node.conversation(&alice, &first).await));

    // Once one stops, there is room again.
    let (status, _) = node
        .post(
            &format!("/api/conversations/{first}/stop"),
            Some(&alice),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    node.create_conversation(&alice, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_conversations_close_unless_a_client_is_connected() {
    let mut options = NodeOptions::new();
    options.config.limits.close_delay = Duration::from_millis(300);
    options.config.timing.sweep = Duration::from_millis(50);
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let alice = token("alice");
    let watched = node.create_conversation(&alice, None).await;
    let mut client = SocketClient::connect(
        &node.url,
        &ConnectOptions::conversation(&watched, &alice, None),
    )
    .await;
    // The conversation may idle out before the client's process has connected; a prompt from the
    // connected client (re)starts it either way, and from then on it has a client.
    client
        .emit_with_ack("oh_user_action", message_action("stay with me"))
        .await;
    client.events_until(is_agent_message).await;
    let unwatched = node.create_conversation(&alice, None).await;

    let closed = node.wait_for(&alice, &unwatched, is_stopped).await;
    assert_eq!(closed["agent_state"], "stopped");
    let events = node.all_events(&alice, &unwatched).await;
    let last = events.last().unwrap();
    assert!(is_state(last, "stopped"));
    assert_eq!(last["extras"]["reason"], "idle");
    // The watched one, idle for longer, is spared sweep after sweep.
    sweeps(&node, 5.0).await;
    assert!(is_running(&node.conversation(&alice, &watched).await));

    // Without its client it closes too.
    client.close().await;
    node.wait_for(&alice, &watched, is_stopped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_stop_is_not_undone_by_a_connected_client() {
    let mut options = NodeOptions::new();
    options.config.timing.sweep = Duration::from_millis(50);
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;
    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;

    let (status, body) = node
        .post(
            &format!("/api/conversations/{id}/stop"),
            Some(&alice),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The stop is complete when the call answers.
    let stopped = node.conversation(&alice, &id).await;
    assert!(is_stopped(&stopped));
    let event = client.next_event().await;
    assert!(is_state(&event, "stopped"));
    assert_eq!(event["extras"]["reason"], "stopped");
    assert_eq!(
        node.metric("conversation_node_running_conversations").await,
        0.0
    );

    // A new client's connection decides before its replay ends: nothing restarts the conversation.
    let last = node.all_events(&alice, &id).await.len() as u64 - 1;
    let mut another =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    another.events_through(last).await;
    assert_eq!(
        node.metric("conversation_node_running_conversations").await,
        0.0
    );
    sweeps(&node, 3.0).await;
    assert!(is_stopped(&node.conversation(&alice, &id).await));
    assert_eq!(node.all_events(&alice, &id).await.len() as u64, last + 1);

    // A pause request does not restart it either; a prompt does.
    let ack = another
        .emit_with_ack(
            "oh_user_action",
            json!({ "action": "change_agent_state", "args": { "agent_state": "paused" } }),
        )
        .await;
    assert_eq!(ack["success"], true);
    assert!(is_stopped(&node.conversation(&alice, &id).await));
    another
        .emit_with_ack("oh_user_action", message_action("continue please"))
        .await;
    let restarted = another.events_until(is_agent_message).await;
    assert!(is_state(&restarted[0], "loading"), "{restarted:?}");
    assert!(is_running(&node.conversation(&alice, &id).await));
}
