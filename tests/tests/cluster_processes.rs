//! Clustered nodes as real processes (the `conversation-node` binary) on real Redis and DynamoDB on
//! moto, with official Socket.IO clients: a client on one node talks to a conversation another node
//! runs, and a `kill -9` of that owner loses no acknowledged action.

use std::time::Instant;

use e2e::cluster::{ClusterEnv, NodeProcess};
use e2e::node::{is_agent_message, token};
use e2e::socketio::{ConnectOptions, SocketClient, message_action};
use serde_json::{Value, json};

async fn create_conversation(node: &NodeProcess, token: &str, first: &str) -> String {
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/conversations", node.url))
        .bearer_auth(token)
        .json(&json!({ "initial_user_msg": first }))
        .send()
        .await
        .expect("the node answers")
        .json()
        .await
        .expect("JSON");
    created["conversation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("not created: {created}"))
        .to_owned()
}

async fn all_events(node: &NodeProcess, token: &str, id: &str) -> Vec<Value> {
    let page: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/conversations/{id}/events?start_id=0&limit=100",
            node.url
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("the node answers")
        .json()
        .await
        .expect("JSON");
    page["events"].as_array().cloned().unwrap_or_default()
}

fn answers(event: &Value, text: &str) -> bool {
    is_agent_message(event)
        && event["args"]["content"]
            .as_str()
            .is_some_and(|c| c.contains(text))
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
    let id = create_conversation(&nodes[0], &alice, "first words").await;
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

    let events = all_events(&nodes[2], &alice, &id).await;
    let ids: Vec<i64> = events.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert_eq!(
        ids,
        (0..i64::try_from(ids.len()).unwrap()).collect::<Vec<_>>(),
        "event ids are neither duplicated nor skipped"
    );
    for text in [
        "first words",
        "from node one",
        "after the crash 1",
        "after the crash 2",
    ] {
        let answered = events.iter().filter(|e| answers(e, text)).count();
        assert_eq!(answered, 1, "{text} is answered exactly once: {events:#?}");
    }
}
