//! Nodes served in the test process on the Redis coordination adapter (`TEST_REDIS_URL`, a key prefix
//! per test) and shared stores: the owner-directed requests, with their correlation ids, over Redis,
//! and the title a first message sent through another node gets from the owner's model.

use std::sync::Arc;
use std::time::Duration;

use e2e::fakes::llm::FakeLlm;
use e2e::node::{NodeOptions, Stores, TestNode, is_stopped, token};
use e2e::socketio::{ConnectOptions, SocketClient, message_action};
use serde_json::Value;
use shared::adapters::redis::{RedisCoordination, RedisSettings};
use shared::domain::{ChatMessage, ChatRole, ConversationId};

async fn two_redis_nodes() -> (TestNode, TestNode) {
    redis_nodes_with([NodeOptions::new(), NodeOptions::new()]).await
}

/// Two nodes with these options on one Redis key prefix and shared stores.
async fn redis_nodes_with(options: [NodeOptions; 2]) -> (TestNode, TestNode) {
    let stores = Stores::embedded().await;
    let settings = RedisSettings::new(
        &e2e::redis::url(),
        &e2e::redis::unique_prefix(),
        Duration::from_secs(15),
    );
    let mut nodes = Vec::new();
    for options in options {
        let (coordination, incoming) =
            RedisCoordination::connect(&settings, options.config.node_id.clone())
                .await
                .expect("Redis answers");
        nodes.push(TestNode::start_with(&stores, Arc::new(coordination), incoming, options).await);
    }
    let b = nodes.pop().unwrap();
    (nodes.pop().unwrap(), b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_llm_completion_and_stop_reach_the_owner_over_redis() {
    let (a, b) = two_redis_nodes().await;
    let alice = token("alice");
    let id = a.create_ready_conversation(&alice).await;
    let conversation = ConversationId::parse(&id).unwrap();
    let answer = b
        .handle
        .request_llm_completion(
            &conversation,
            vec![ChatMessage::new(ChatRole::User, "name this")],
        )
        .await
        .expect("the owner answers");
    assert!(answer.contains("name this"), "{answer}");

    let (status, body) = b
        .post(
            &format!("/api/conversations/{id}/stop"),
            Some(&alice),
            &serde_json::json!({}),
        )
        .await;
    assert!(status.is_success(), "stop answered {body}");
    a.wait_for(&alice, &id, is_stopped).await;
    let refused = b
        .handle
        .request_llm_completion(&conversation, vec![ChatMessage::new(ChatRole::User, "hi")])
        .await;
    assert!(
        refused.is_err(),
        "a stopped conversation has no model to ask"
    );
}

/// A conversation created without a title, on node B (its owner), gets one from its first message sent
/// through node A: A asks the owner's model (`request_llm_completion` over Redis), so B's model names
/// it and A's is never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_message_through_another_node_is_titled_by_the_owners_model() {
    const KEY: &str = "sk-test-key";
    let (model_a, model_b) = (FakeLlm::start(KEY).await, FakeLlm::start(KEY).await);
    let (a, b) = redis_nodes_with([
        NodeOptions::new().with_model(model_a.url(), KEY),
        NodeOptions::new().with_model(model_b.url(), KEY),
    ])
    .await;
    let alice = token("alice");
    let id = b.create_ready_conversation(&alice).await;
    assert_eq!(a.conversation(&alice, &id).await["title"], Value::Null);

    let mut client =
        SocketClient::connect(&a.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    client
        .emit_with_ack(
            "oh_user_action",
            message_action("the login test fails on Safari"),
        )
        .await;
    let titled = a.wait_for(&alice, &id, |c| c["title"].is_string()).await;
    assert_eq!(
        titled["title"],
        "model says: Write a title of at most 8 words for a conversation starting with: the login \
         test fails on Safari"
    );
    let title_requests = model_b
        .requests()
        .iter()
        .filter(|request| {
            request["messages"][0]["content"]
                .as_str()
                .is_some_and(|asked| asked.starts_with("Write a title"))
        })
        .count();
    assert_eq!(title_requests, 1, "the owner's model was asked once");
    assert!(model_a.requests().is_empty(), "node A's model is not asked");
}
