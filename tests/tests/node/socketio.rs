//! The node's Socket.IO interface through the official clients (`socket.io-client`, and `python-socketio`
//! on each transport: the libraries' defaults poll first, then upgrade): replay then live with no gap and
//! no duplicate (also while events are being appended), a message answered with its state changes, the
//! legacy `oh_action`, and refused connections.

use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, token, token_signed_with};
use e2e::socketio::{ConnectOptions, Official, SocketClient, Transports, is_state, message_action};
use serde_json::{Value, json};

async fn standalone() -> TestNode {
    TestNode::standalone(&Stores::embedded().await, NodeOptions::new()).await
}

fn ids(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|event| event["id"].as_u64().expect("a stored event has an id"))
        .collect()
}

/// The conversation's events once its loop has answered everything and waits for the user.
async fn settled_events(node: &TestNode, token: &str, id: &str, answers: usize) -> Vec<Value> {
    node.wait_for_events(token, id, |events| {
        events.iter().filter(|e| is_agent_message(e)).count() == answers
            && events
                .last()
                .is_some_and(|e| is_state(e, "awaiting_user_input"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_gets_the_agents_answer_and_the_state_changes() {
    let node = standalone().await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;
    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    let start = client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    assert!(
        is_state(&start[0], "loading"),
        "the loop starts loading: {start:?}"
    );
    assert_eq!(ids(&start), [0, 1]);
    assert_eq!(node.conversation(&alice, &id).await["title"], Value::Null);

    let ack = client
        .emit_with_ack("oh_user_action", message_action("please fix the build"))
        .await;
    assert_eq!(ack, json!({ "success": true }));
    let turn = client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    assert_eq!(ids(&turn), [2, 3, 4, 5]);
    assert_eq!(turn[0]["source"], "user");
    assert_eq!(turn[0]["action"], "message");
    assert_eq!(turn[0]["args"]["content"], "please fix the build");
    assert!(is_state(&turn[1], "running"));
    assert!(is_agent_message(&turn[2]));
    let answer = turn[2]["args"]["content"].as_str().unwrap();
    assert!(
        answer.starts_with("[built-in agent: no model is configured]"),
        "the built-in agent labels its answers: {answer}"
    );
    assert!(answer.contains("please fix the build"));
    // What the client saw is what the store holds.
    assert_eq!(node.all_events(&alice, &id).await, [start, turn].concat());
    // The first message named the untitled conversation: the built-in agent has no model, so its
    // first words do.
    let titled = node.wait_for(&alice, &id, |c| c["title"].is_string()).await;
    assert_eq!(titled["title"], "please fix the build");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_the_events_after_its_latest_then_live_ones() {
    let node = standalone().await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, Some("first")).await;
    let stored = settled_events(&node, &alice, &id, 1).await;
    let last = stored.len() as u64 - 1;

    let mut everything =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    assert_eq!(everything.events_through(last).await, stored);
    let mut later = SocketClient::connect(
        &node.url,
        &ConnectOptions::conversation(&id, &alice, Some(2)),
    )
    .await;
    assert_eq!(later.events_through(last).await, stored[3..]);

    // Live: both see the next turn, in order, after what they were replayed.
    later
        .emit_with_ack("oh_user_action", message_action("second"))
        .await;
    let expected: Vec<u64> = (last + 1..=last + 4).collect();
    assert_eq!(ids(&everything.events_through(last + 4).await), expected);
    assert_eq!(ids(&later.events_through(last + 4).await), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_then_live_has_no_gap_and_no_duplicate_while_events_are_appended() {
    replay_while_appending(Stores::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_then_live_has_no_gap_and_no_duplicate_on_dynamodb() {
    replay_while_appending(Stores::dynamo().await).await;
}

async fn replay_while_appending(stores: Stores) {
    const MESSAGES: usize = 24;
    let node = TestNode::standalone(&stores, NodeOptions::new()).await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;
    settled_events(&node, &alice, &id, 0).await;

    // A writer appends turns through REST while clients connect at different points of the stream.
    let writer = {
        let (url, alice, id) = (node.url.clone(), alice.clone(), id.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..MESSAGES {
                let answer = http
                    .post(format!("{url}/api/conversations/{id}/events"))
                    .bearer_auth(&alice)
                    .json(&message_action(&format!("message {n}")))
                    .send()
                    .await
                    .expect("the node answers");
                assert!(answer.status().is_success());
            }
        })
    };
    let mut clients = Vec::new();
    for _ in 0..4 {
        let stored = node.all_events(&alice, &id).await;
        // Start a little behind the head, so that the replay and the live stream overlap.
        let latest = (stored.len() as i64 - 3).max(-1);
        let client = SocketClient::connect(
            &node.url,
            &ConnectOptions::conversation(&id, &alice, Some(latest)),
        )
        .await;
        clients.push((latest, client));
    }
    writer.await.expect("the writer finishes");
    let stored = settled_events(&node, &alice, &id, MESSAGES).await;
    let last = stored.len() as u64 - 1;
    assert_eq!(ids(&stored), (0..=last).collect::<Vec<_>>());
    for (latest, mut client) in clients {
        let received = client.events_through(last).await;
        let first = (latest + 1) as u64;
        assert_eq!(
            ids(&received),
            (first..=last).collect::<Vec<_>>(),
            "a client that connected after {latest} got every later event once, in order"
        );
        assert_eq!(received, stored[first as usize..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_event_name_works_and_bad_actions_get_an_error() {
    let node = standalone().await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;
    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;

    let refused = client
        .emit_with_ack(
            "oh_user_action",
            json!({ "action": "run", "args": { "command": "rm -rf /" } }),
        )
        .await;
    assert_eq!(refused["success"], false);
    let error = client.next_event().await;
    assert_eq!(error["error"], true);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not a user action")
    );

    client.emit("oh_action", message_action("legacy")).await;
    let turn = client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    assert_eq!(turn[0]["args"]["content"], "legacy");
    assert!(is_agent_message(&turn[2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_valid_token_or_to_another_users_conversation_are_refused() {
    let node = standalone().await;
    let (alice, bob) = (token("alice"), token("bob"));
    let id = node.create_conversation(&alice, None).await;
    let refusal = async |options: ConnectOptions| {
        let mut client = SocketClient::start(&node.url, &options);
        client
            .connection()
            .await
            .expect_err("the connection is refused")
    };

    let mut anonymous = ConnectOptions::conversation(&id, &alice, None);
    anonymous.auth_token = None;
    assert_eq!(refusal(anonymous).await, "missing bearer token");
    let forged = token_signed_with("alice", "not-the-secret");
    assert_eq!(
        refusal(ConnectOptions::conversation(&id, &forged, None)).await,
        "invalid token"
    );
    assert_eq!(
        refusal(ConnectOptions::conversation(&id, &bob, None)).await,
        "conversation not found"
    );
    assert_eq!(
        refusal(ConnectOptions::conversation(
            "no-such-conversation",
            &alice,
            None
        ))
        .await,
        "conversation not found"
    );
    let mut without_id = ConnectOptions::conversation(&id, &alice, None);
    without_id.query.remove("conversation_id");
    assert_eq!(refusal(without_id).await, "missing conversation_id");
    assert_eq!(
        refusal(ConnectOptions::conversation(&id, &alice, Some(-7))).await,
        "invalid latest_event_id"
    );

    // The token may also come in the Authorization header.
    let mut in_header = ConnectOptions::conversation(&id, &alice, None);
    in_header.auth_token = None;
    in_header.header_token = Some(alice.clone());
    SocketClient::connect(&node.url, &in_header).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_session_api_key_is_required() {
    let mut options = NodeOptions::new();
    options.config.auth.session_api_key = Some("session-key".into());
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let alice = token("alice");
    let (status, body) = node
        .send(
            node.request(reqwest::Method::POST, "/api/conversations")
                .bearer_auth(&alice)
                .header("X-Session-API-Key", "session-key")
                .json(&json!({})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["conversation_id"].as_str().unwrap();

    let with_key = |key: Option<&str>| {
        let mut options = ConnectOptions::conversation(id, &alice, None);
        if let Some(key) = key {
            options.query.insert("session_api_key".into(), json!(key));
        }
        options
    };
    let mut without = SocketClient::start(&node.url, &with_key(None));
    assert_eq!(
        without.connection().await,
        Err("invalid session API key".into())
    );
    let mut wrong = SocketClient::start(&node.url, &with_key(Some("guess")));
    assert_eq!(
        wrong.connection().await,
        Err("invalid session API key".into())
    );
    SocketClient::connect(&node.url, &with_key(Some("session-key"))).await;
    // REST without the header is refused.
    let (status, body) = node
        .get(&format!("/api/conversations/{id}"), Some(&alice))
        .await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_connection_queue_fills_still_gets_every_event_in_order() {
    const MESSAGES: usize = 10;
    // A connection that holds 4 packets: a replay of dozens of events overflows it at once.
    let mut options = NodeOptions::new();
    options.config.limits.socket_buffer = 4;
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, None).await;
    for n in 0..MESSAGES {
        let (status, _) = node
            .post(
                &format!("/api/conversations/{id}/events"),
                Some(&alice),
                &message_action(&format!("message {n}")),
            )
            .await;
        assert!(status.is_success());
        settled_events(&node, &alice, &id, n + 1).await;
    }
    let stored = node.all_events(&alice, &id).await;
    let last = stored.len() as u64 - 1;
    assert!(last > 20, "enough events to overflow the queue: {last}");

    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    assert_eq!(client.events_through(last).await, stored);

    // Live again once caught up: the next turn arrives, in order.
    client
        .emit("oh_user_action", message_action("one more"))
        .await;
    let turn = client.events_until(is_agent_message).await;
    assert_eq!(
        ids(&turn),
        (last + 1..last + 1 + turn.len() as u64).collect::<Vec<_>>()
    );
}

/// Connect, replay, act, resume, with one of the official clients on the given transports; with the
/// library's defaults, the client ends up upgraded to WebSocket.
async fn connect_replay_act_resume(official: Official, transports: Transports) {
    let node = standalone().await;
    let alice = token("alice");
    let id = node.create_conversation(&alice, Some("first")).await;
    let stored = settled_events(&node, &alice, &id, 1).await;
    let last = stored.len() as u64 - 1;
    let options = ConnectOptions::conversation(&id, &alice, None).over(transports);
    let mut client = SocketClient::connect_official(official, &node.url, &options).await;
    assert_eq!(client.events_through(last).await, stored, "the replay");

    let ack = client
        .emit_with_ack("oh_user_action", message_action("second"))
        .await;
    assert_eq!(ack, json!({ "success": true }));
    let turn = client.events_through(last + 4).await;
    assert_eq!(turn[0]["args"]["content"], "second");
    assert!(is_agent_message(&turn[2]), "{turn:?}");
    let expected = match transports {
        Transports::Polling => "polling",
        Transports::Default | Transports::Websocket => "websocket",
    };
    let deadline = tokio::time::Instant::now() + e2e::socketio::PATIENCE;
    while client.transport().await != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never on {expected}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    client.close().await;

    let resumed = ConnectOptions::conversation(&id, &alice, Some(last as i64)).over(transports);
    let mut client = SocketClient::connect_official(official, &node.url, &resumed).await;
    assert_eq!(client.events_through(last + 4).await, turn, "the resume");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_client_on_its_default_transports_polls_then_upgrades() {
    connect_replay_act_resume(Official::JavaScript, Transports::Default).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_client_works_on_long_polling_alone() {
    connect_replay_act_resume(Official::JavaScript, Transports::Polling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_on_its_default_transports_polls_then_upgrades() {
    connect_replay_act_resume(Official::Python, Transports::Default).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_works_on_long_polling_alone() {
    connect_replay_act_resume(Official::Python, Transports::Polling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_works_on_websocket() {
    connect_replay_act_resume(Official::Python, Transports::Websocket).await;
}
