//! Several nodes on one in-process cluster (`LocalCluster`) and shared stores: the paths a Redis cluster
//! takes, with the same node code. A client on one node talks to a conversation owned by another; stops,
//! evictions and `request_llm_completion` reach the owner; a node that leaves hands its conversations
//! over to the node holding their clients.

use std::time::Duration;

use e2e::fakes::llm::FakeLlm;
use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, is_stopped, token};
use e2e::socketio::{ConnectOptions, SocketClient, is_state, message_action};
use reqwest::StatusCode;
use serde_json::json;
use shared::adapters::local_cluster::LocalCluster;
use shared::domain::{ChatMessage, ChatRole, ConversationId};

async fn two_nodes(options: impl Fn() -> NodeOptions) -> (TestNode, TestNode) {
    two_nodes_on(Stores::embedded().await, options).await
}

async fn two_nodes_on(stores: Stores, options: impl Fn() -> NodeOptions) -> (TestNode, TestNode) {
    let cluster = LocalCluster::new(Duration::from_secs(15));
    let a = TestNode::start(&stores, &cluster, options()).await;
    let b = TestNode::start(&stores, &cluster, options()).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_another_node_talks_to_the_owner() {
    let (a, b) = two_nodes(NodeOptions::new).await;
    let alice = token("alice");
    let id = a.create_ready_conversation(&alice).await;
    let appended_by_a = a.metric("conversation_node_events_appended_total").await;

    let mut client =
        SocketClient::connect(&b.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    assert_eq!(
        b.metric("conversation_node_running_conversations").await,
        0.0,
        "B does not take over a running conversation"
    );
    let ack = client
        .emit_with_ack("oh_user_action", message_action("from node B"))
        .await;
    assert_eq!(ack["success"], true);
    let turn = client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    assert_eq!(turn[0]["args"]["content"], "from node B");
    assert!(turn.iter().any(is_agent_message));
    assert_eq!(
        a.metric("conversation_node_events_appended_total").await,
        appended_by_a + 4.0
    );
    assert_eq!(
        b.metric("conversation_node_events_appended_total").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_llm_completion_runs_on_the_owner() {
    let (a, b) = two_nodes(NodeOptions::new).await;
    let alice = token("alice");
    let id = ConversationId::parse(&a.create_ready_conversation(&alice).await).unwrap();
    let answer = b
        .handle
        .request_llm_completion(&id, vec![ChatMessage::new(ChatRole::User, "name this")])
        .await
        .expect("the owner answers");
    assert!(answer.starts_with("[built-in agent"), "{answer}");
    assert!(answer.contains("name this"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_on_one_node_stops_the_loop_on_the_other_and_stays() {
    let (a, b) = two_nodes(|| {
        let mut options = NodeOptions::new();
        options.config.timing.sweep = Duration::from_millis(50);
        options
    })
    .await;
    let alice = token("alice");
    let id = a.create_ready_conversation(&alice).await;
    let mut client =
        SocketClient::connect(&b.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;

    let (status, body) = b
        .post(
            &format!("/api/conversations/{id}/stop"),
            Some(&alice),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(is_stopped(&b.conversation(&alice, &id).await));
    assert_eq!(
        a.metric("conversation_node_running_conversations").await,
        0.0
    );
    assert!(is_state(&client.next_event().await, "stopped"));

    // B holds a client and sweeps, yet neither node restarts it.
    let sweeps = b.metric("conversation_node_sweeps_total").await;
    while b.metric("conversation_node_sweeps_total").await < sweeps + 3.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        a.metric("conversation_node_running_conversations").await
            + b.metric("conversation_node_running_conversations").await,
        0.0
    );
    assert!(is_stopped(&a.conversation(&alice, &id).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_hands_its_conversations_to_the_node_with_their_clients() {
    // On DynamoDB, as in production: the new owner resumes from the shared tables.
    let (a, b) = two_nodes_on(Stores::dynamo().await, NodeOptions::new).await;
    let alice = token("alice");
    let id = a.create_ready_conversation(&alice).await;
    let mut client =
        SocketClient::connect(&b.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    let replayed = client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;

    a.stop().await;
    // B takes over at once: its loop starts from the store, after what A wrote.
    let resumed = client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    assert!(is_state(&resumed[0], "loading"), "{resumed:?}");
    assert_eq!(resumed[0]["id"].as_u64(), Some(replayed.len() as u64));
    assert_eq!(
        b.metric("conversation_node_running_conversations").await,
        1.0
    );
    assert_eq!(b.conversation(&alice, &id).await["status"], "running");

    client
        .emit_with_ack("oh_user_action", message_action("still there?"))
        .await;
    let turn = client.events_until(is_agent_message).await;
    assert_eq!(turn[0]["args"]["content"], "still there?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_interrupted_by_a_handover_is_answered_by_the_new_owner() {
    let llm = FakeLlm::start("key").await;
    llm.delay(Duration::from_millis(1500));
    let (a, b) = two_nodes(|| NodeOptions::new().with_model(llm.url(), "key")).await;
    let alice = token("alice");
    let id = a.create_ready_conversation(&alice).await;
    let mut client =
        SocketClient::connect(&b.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;

    client
        .emit_with_ack("oh_user_action", message_action("slow question"))
        .await;
    client.events_until(|e| is_state(e, "running")).await;
    // A leaves while the model is still thinking: the acknowledged message must still be answered.
    a.stop().await;
    let answer = client.events_until(is_agent_message).await;
    assert_eq!(
        answer.last().unwrap()["args"]["content"],
        "model says: slow question"
    );
    let events = b.all_events(&alice, &id).await;
    let questions = events.iter().filter(|e| e["source"] == "user").count();
    let answers = events.iter().filter(|e| is_agent_message(e)).count();
    assert_eq!((questions, answers), (1, 1), "recorded once, answered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_counts_a_users_conversations_on_every_node() {
    let (a, b) = two_nodes(|| {
        let mut options = NodeOptions::new();
        options.config.limits.max_running = 2;
        options
    })
    .await;
    let alice = token("alice");
    let on_a = a.create_ready_conversation(&alice).await;
    let on_b = b.create_ready_conversation(&alice).await;
    // A third one started on A evicts the oldest (on A); a fourth evicts the one on B.
    let third = a.create_ready_conversation(&alice).await;
    a.wait_for(&alice, &on_a, is_stopped).await;
    assert_eq!(b.conversation(&alice, &on_b).await["status"], "running");
    a.create_ready_conversation(&alice).await;
    b.wait_for(&alice, &on_b, is_stopped).await;
    assert_eq!(
        b.metric("conversation_node_running_conversations").await,
        0.0
    );
    assert_eq!(a.conversation(&alice, &third).await["status"], "running");
}
