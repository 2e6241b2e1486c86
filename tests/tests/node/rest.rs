//! The node's REST API over real HTTP: create, list, get, page events, send an action; per-user
//! isolation (404 for another user's conversation, 401 without a valid token); JSON on every answer;
//! the probes.

use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, token, token_signed_with};
use e2e::socketio::{is_state, message_action};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn standalone() -> TestNode {
    TestNode::standalone(&Stores::embedded().await, NodeOptions::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_created_listed_read_and_paged_per_user() {
    let node = standalone().await;
    let (alice, bob) = (token("alice"), token("bob"));
    let (status, created) = node
        .post(
            "/api/conversations",
            Some(&alice),
            &json!({ "initial_user_msg": "hello", "title": "First", "repository": "octo/repo" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["status"], "ok");
    let first = created["conversation_id"].as_str().unwrap().to_owned();
    let second = node.create_conversation(&alice, None).await;
    let bobs = node.create_conversation(&bob, None).await;

    let answered = node
        .wait_for_events(&alice, &first, |events| {
            events.iter().any(is_agent_message)
                && events
                    .last()
                    .is_some_and(|e| is_state(e, "awaiting_user_input"))
        })
        .await;
    let conversation = node.conversation(&alice, &first).await;
    assert_eq!(conversation["conversation_id"], first.as_str());
    assert_eq!(conversation["title"], "First");
    assert_eq!(conversation["selected_repository"], "octo/repo");
    assert_eq!(conversation["status"], "running");
    assert_eq!(
        conversation["url"],
        format!("http://conversations.test/conversations/{first}")
    );
    assert!(conversation["created_at"].is_string());

    let (status, listed) = node.get("/api/conversations", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [second.as_str(), first.as_str()],
        "newest first, only alice's"
    );
    let (_, listed) = node.get("/api/conversations", Some(&bob)).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 1);
    assert_eq!(listed["results"][0]["conversation_id"], bobs.as_str());

    // Paging: start_id and limit, with has_more.
    let total = answered.len();
    let (_, page) = node
        .get(
            &format!("/api/conversations/{first}/events?start_id=1&limit=2"),
            Some(&alice),
        )
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["events"][0]["id"], 1);
    assert_eq!(page["has_more"], true);
    let (_, rest) = node
        .get(
            &format!("/api/conversations/{first}/events?start_id=3&limit=100"),
            Some(&alice),
        )
        .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), total - 3);
    assert_eq!(rest["has_more"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_sent_over_rest_is_answered() {
    let node = standalone().await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;
    let (status, body) = node
        .post(
            &format!("/api/conversations/{id}/events"),
            Some(&alice),
            &message_action("over rest"),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
    let events = node
        .wait_for_events(&alice, &id, |events| events.iter().any(is_agent_message))
        .await;
    let user = events.iter().find(|e| e["source"] == "user").unwrap();
    assert_eq!(user["args"]["content"], "over rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_action_retried_with_its_client_action_id_is_stored_once() {
    let node = standalone().await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;
    let mut action = message_action("retried over rest");
    action["client_action_id"] = json!("rest-retry-1");
    for _ in 0..3 {
        let (status, body) = node
            .post(
                &format!("/api/conversations/{id}/events"),
                Some(&alice),
                &action,
            )
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "success": true })));
    }
    let events = node
        .wait_for_events(&alice, &id, |events| events.iter().any(is_agent_message))
        .await;
    let sent = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["source"] == "user" && e["args"]["content"] == "retried over rest")
            .count()
    };
    assert_eq!(sent(&events), 1, "stored once: {events:#?}");
    // A malformed id is refused with a reason, nothing stored.
    action["client_action_id"] = json!("not an id!");
    let (status, body) = node
        .post(
            &format!("/api/conversations/{id}/events"),
            Some(&alice),
            &action,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("client_action_id"),
        "{body}"
    );
    assert_eq!(sent(&node.all_events(&alice, &id).await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_and_anonymous_callers_are_refused_with_json() {
    let node = standalone().await;
    let (alice, bob) = (token("alice"), token("bob"));
    let id = node.create_conversation(&alice, None).await;

    for path in [
        "/api/conversations".to_owned(),
        format!("/api/conversations/{id}"),
    ] {
        let (status, body) = node.get(&path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthorized");
        let forged = token_signed_with("alice", "wrong");
        let (status, _) = node.get(&path, Some(&forged)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = node
        .get(&format!("/api/conversations/{id}"), Some(&bob))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's conversation is not found: {body}"
    );
    assert_eq!(body["message"], "conversation not found");
    let (status, _) = node
        .get(&format!("/api/conversations/{id}/events"), Some(&bob))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = node
        .post(
            &format!("/api/conversations/{id}/events"),
            Some(&bob),
            &message_action("hi"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = node
        .post(
            &format!("/api/conversations/{id}/stop"),
            Some(&bob),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Bob's attempts changed nothing.
    let events = node.all_events(&alice, &id).await;
    assert!(events.iter().all(|e| e["source"] != "user"));
    assert_eq!(node.conversation(&alice, &id).await["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let node = standalone().await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;

    let not_json = node
        .request(Method::POST, "/api/conversations")
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{not json");
    let (status, body) = node.send(not_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    let (status, body) = node
        .post(
            &format!("/api/conversations/{id}/events"),
            Some(&alice),
            &json!({ "action": "message" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = node
        .get(
            &format!("/api/conversations/{id}/events?limit=many"),
            Some(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = node.get("/api/nothing-here", Some(&alice)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, body) = node
        .send(
            node.request(Method::DELETE, "/api/conversations")
                .bearer_auth(&alice),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");
    let long = "x".repeat(300);
    let (status, _) = node
        .post(
            "/api/conversations",
            Some(&alice),
            &json!({ "title": long }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A model of its own: refused where there is no model to replace, or at a metadata address.
    for (create, reason) in [
        (json!({ "llm_model": "gpt-x" }), "built-in agent"),
        (
            json!({ "llm_model": "gpt-x", "llm_base_url": "http://169.254.169.254/v1" }),
            "link-local",
        ),
        (json!({ "llm_api_key": "sk-1" }), "need llm_model"),
    ] {
        let (status, body) = node.post("/api/conversations", Some(&alice), &create).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["message"].as_str().unwrap().contains(reason), "{body}");
    }
}

/// A conversation created without a title has none until its first message, at create or sent later,
/// names it: the built-in agent has no model, so the message's first eight words do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_without_a_title_is_named_by_its_first_message() {
    let node = standalone().await;
    let alice = token("alice");
    let first = "Please look at the failing login test on Safari today";
    let id = node.create_conversation(&alice, Some(first)).await;
    let titled = node.wait_for(&alice, &id, |c| c["title"].is_string()).await;
    assert_eq!(titled["title"], "Please look at the failing login test on");

    let untitled = node.create_conversation(&alice, None).await;
    assert_eq!(
        node.conversation(&alice, &untitled).await["title"],
        Value::Null
    );
    let (status, _) = node
        .post(
            &format!("/api/conversations/{untitled}/events"),
            Some(&alice),
            &message_action("  rename the\nhelpers "),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let titled = node
        .wait_for(&alice, &untitled, |c| c["title"].is_string())
        .await;
    assert_eq!(titled["title"], "rename the helpers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer() {
    let node = standalone().await;
    let (status, health) = node.get("/health", None).await;
    assert_eq!(
        (status, health),
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    let (status, ready) = node.get_private("/ready").await;
    assert_eq!(
        (status, ready),
        (
            StatusCode::OK,
            json!({
                "status": "ready",
                "node_id": node.node_id,
                "agent": "built-in (no model configured)",
            })
        )
    );

    let alice = token("alice");
    let id = node.create_conversation(&alice, Some("count me")).await;
    node.wait_for_events(&alice, &id, |events| events.iter().any(is_agent_message))
        .await;
    assert_eq!(
        node.metric("conversation_node_running_conversations").await,
        1.0
    );
    assert!(node.metric("conversation_node_events_appended_total").await >= 6.0);
    assert_eq!(
        node.metric("conversation_node_conversations_started_total")
            .await,
        1.0
    );
}
