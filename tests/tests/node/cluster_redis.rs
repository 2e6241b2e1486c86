//! Nodes served in the test process on the Redis coordination adapter (`TEST_REDIS_URL`, a key prefix
//! per test) and shared stores: the owner-directed requests, with their correlation ids, over Redis.

use std::sync::Arc;
use std::time::Duration;

use e2e::node::{NodeOptions, Stores, TestNode, is_stopped, token};
use shared::adapters::redis::{RedisCoordination, RedisSettings};
use shared::domain::{ChatMessage, ChatRole, ConversationId};

async fn two_redis_nodes() -> (TestNode, TestNode) {
    let stores = Stores::embedded().await;
    let settings = RedisSettings {
        url: e2e::redis::url(),
        key_prefix: e2e::redis::unique_prefix(),
        lease_ttl: Duration::from_secs(15),
    };
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let options = NodeOptions::new();
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
