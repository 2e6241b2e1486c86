//! The agent with a model: the chat-completions client against a local OpenAI-compatible fake, through
//! the node (success with the conversation's history, 429 then success, a model that stays down ends the
//! turn in `error`, persistent 429 in `rate_limited`, a refused key), `request_llm_completion`, and
//! the title a conversation's first message gets from the model (or its first words when it fails).

use e2e::fakes::llm::{FakeLlm, LlmReply};
use e2e::node::{MODEL_SYSTEM_PROMPT, NodeOptions, Stores, TestNode, is_agent_message, token};
use e2e::socketio::{ConnectOptions, SocketClient, is_state, message_action};
use serde_json::{Value, json};
use shared::domain::{ChatMessage, ChatRole, ConversationId};

const KEY: &str = "sk-test-key";

async fn node_with_model(llm: &FakeLlm) -> TestNode {
    let options = NodeOptions::new().with_model(llm.url(), KEY);
    TestNode::standalone(&Stores::embedded().await, options).await
}

/// Creates a conversation from `body` with a title, so that the model is asked for turns only (an
/// untitled one's first message also asks it for a title); its id.
async fn create_titled(node: &TestNode, token: &str, mut body: Value) -> String {
    body["title"] = json!("a conversation with the model");
    let (_, created) = node.post("/api/conversations", Some(token), &body).await;
    created["conversation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("not created: {created}"))
        .to_owned()
}

/// Connects to a new conversation of `token`'s user and waits for its loop to be ready.
async fn ready_conversation(node: &TestNode, token: &str) -> (String, SocketClient) {
    let id = create_titled(node, token, json!({})).await;
    let client = connect_when_ready(node, token, &id).await;
    (id, client)
}

async fn connect_when_ready(node: &TestNode, token: &str, id: &str) -> SocketClient {
    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(id, token, None)).await;
    client
        .events_until(|e| is_state(e, "awaiting_user_input"))
        .await;
    client
}

/// Sends a message and returns the turn's events, through the state it ends in.
async fn turn(client: &mut SocketClient, text: &str, ends_in: &str) -> Vec<Value> {
    client
        .emit_with_ack("oh_user_action", message_action(text))
        .await;
    client.events_until(|e| is_state(e, ends_in)).await
}

fn answer_of(events: &[Value]) -> String {
    events
        .iter()
        .find(|e| is_agent_message(e))
        .and_then(|e| e["args"]["content"].as_str())
        .expect("an answer")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_answers_with_the_conversations_history() {
    let llm = FakeLlm::start(KEY).await;
    let node = node_with_model(&llm).await;
    let (_, mut client) = ready_conversation(&node, &token("alice")).await;

    let first = turn(&mut client, "hello model", "awaiting_user_input").await;
    assert_eq!(answer_of(&first), "model says: hello model");
    let second = turn(&mut client, "and again", "awaiting_user_input").await;
    assert_eq!(answer_of(&second), "model says: and again");

    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1]["model"], "fake-model");
    assert_eq!(
        requests[1]["messages"],
        json!([
            { "role": "system", "content": MODEL_SYSTEM_PROMPT },
            { "role": "user", "content": "hello model" },
            { "role": "assistant", "content": "model says: hello model" },
            { "role": "user", "content": "and again" },
        ])
    );
    let (_, ready) = node.get_private("/ready").await;
    assert_eq!(ready["agent"], "fake-model");
}

/// A conversation created with a model of its own is answered by it, with its own key; one with only
/// a base URL of its own is called without a key: the node's key never leaves for a user's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_with_its_own_model_is_answered_by_it() {
    let llm = FakeLlm::start(KEY).await;
    let own = FakeLlm::start("sk-own-key").await;
    let node = node_with_model(&llm).await;
    let alice = token("alice");
    let create = json!({
        "llm_model": "own-model", "llm_base_url": own.url(), "llm_api_key": "sk-own-key",
    });
    let id = create_titled(&node, &alice, create).await;
    let shown = node.conversation(&alice, &id).await;
    assert_eq!(shown["llm_model"], "own-model");
    assert_eq!(shown["llm_base_url"], own.url());
    assert!(!shown.to_string().contains("sk-own-key"), "{shown}");
    let mut client = connect_when_ready(&node, &alice, &id).await;
    let events = turn(&mut client, "who answers?", "awaiting_user_input").await;
    assert_eq!(answer_of(&events), "model says: who answers?");
    assert_eq!(own.requests()[0]["model"], "own-model");
    assert!(llm.requests().is_empty(), "the node's model is not asked");

    let keyless = json!({ "llm_model": "own-model", "llm_base_url": llm.url() });
    let id = create_titled(&node, &alice, keyless).await;
    let mut client = connect_when_ready(&node, &alice, &id).await;
    let events = turn(&mut client, "let me in", "error").await;
    let status = events.iter().find(|e| e["status_update"] == true).unwrap();
    assert!(
        status["message"].as_str().unwrap().contains("401"),
        "{status}"
    );
    assert!(llm.requests().is_empty(), "the node's key was not sent");
}

/// A conversation longer than the model's input budget keeps working: each turn sends the system prompt
/// and the newest turns that fit, the message it answers always among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_sends_the_newest_turns_that_fit_the_budget() {
    let llm = FakeLlm::start(KEY).await;
    let budget = 400;
    let options = NodeOptions::new()
        .with_model(llm.url(), KEY)
        .with_model_budget(budget);
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let (_, mut client) = ready_conversation(&node, &token("alice")).await;

    for n in 0..8 {
        let text = format!("message {n}: {}", "x".repeat(300));
        let events = turn(&mut client, &text, "awaiting_user_input").await;
        assert_eq!(answer_of(&events), format!("model says: {text}"));
    }
    let requests = llm.requests();
    assert_eq!(requests.len(), 8);
    let last = requests[7]["messages"]
        .as_array()
        .expect("messages")
        .clone();
    assert_eq!(
        last[0],
        json!({ "role": "system", "content": MODEL_SYSTEM_PROMPT })
    );
    assert_eq!(
        last[1]["role"], "user",
        "the kept part starts with the user"
    );
    assert!(
        last.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .starts_with("message 7:")
    );
    let bytes: usize = last
        .iter()
        .map(|m| m["content"].as_str().unwrap().len())
        .sum();
    // 16 messages of ~310 bytes were exchanged; what is sent stays near the budget (3 bytes a token).
    assert!(bytes <= budget * 3, "{bytes} bytes sent");
    assert!(last.len() < 16, "{} messages sent", last.len());
    assert!(
        !last
            .iter()
            .any(|m| m["content"].as_str().unwrap().contains("message 0:")),
        "the oldest turn left the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_the_wait_the_model_asks_for() {
    let llm = FakeLlm::start(KEY).await;
    llm.script([
        LlmReply::RateLimited {
            retry_after_secs: Some(0),
        },
        LlmReply::ServerError(502),
        LlmReply::Answer("after retrying".into()),
    ]);
    let node = node_with_model(&llm).await;
    let (_, mut client) = ready_conversation(&node, &token("alice")).await;
    let events = turn(&mut client, "try hard", "awaiting_user_input").await;
    assert_eq!(answer_of(&events), "after retrying");
    assert_eq!(llm.requests().len(), 3);
    assert!(events.iter().all(|e| !is_state(e, "error")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_stays_down_ends_the_turn_in_error_and_a_later_message_retries() {
    let llm = FakeLlm::start(KEY).await;
    llm.then_always(Some(LlmReply::ServerError(503)));
    let node = node_with_model(&llm).await;
    let (id, mut client) = ready_conversation(&node, &token("alice")).await;

    client
        .emit_with_ack("oh_user_action", message_action("anyone?"))
        .await;
    let events = client.events_until(|e| is_state(e, "error")).await;
    assert!(events.iter().any(|e| is_state(e, "running")));
    assert!(!events.iter().any(is_agent_message));
    let status = events
        .iter()
        .find(|e| e["status_update"] == true)
        .expect("a status update tells the client");
    assert_eq!(status["type"], "error");
    assert_eq!(status["id"], "STATUS$ERROR_LLM_SERVICE_UNAVAILABLE");
    assert_eq!(llm.requests().len(), 3, "the first attempt and two retries");
    let conversation = node.conversation(&token("alice"), &id).await;
    assert_eq!(conversation["status"], "running");

    llm.then_always(None);
    let recovered = turn(&mut client, "now?", "awaiting_user_input").await;
    assert_eq!(answer_of(&recovered), "model says: now?");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_429_ends_the_turn_rate_limited() {
    let llm = FakeLlm::start(KEY).await;
    llm.then_always(Some(LlmReply::RateLimited {
        retry_after_secs: None,
    }));
    let node = node_with_model(&llm).await;
    let (_, mut client) = ready_conversation(&node, &token("alice")).await;
    client
        .emit_with_ack("oh_user_action", message_action("busy?"))
        .await;
    let events = client.events_until(|e| is_state(e, "rate_limited")).await;
    let status = events.iter().find(|e| e["status_update"] == true).unwrap();
    assert_eq!(status["id"], "STATUS$ERROR_LLM_RATE_LIMITED");
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_not_retried() {
    let llm = FakeLlm::start("another-key").await;
    let node = node_with_model(&llm).await;
    let (_, mut client) = ready_conversation(&node, &token("alice")).await;
    client
        .emit_with_ack("oh_user_action", message_action("let me in"))
        .await;
    let events = client.events_until(|e| is_state(e, "error")).await;
    let status = events.iter().find(|e| e["status_update"] == true).unwrap();
    assert!(
        status["message"].as_str().unwrap().contains("401"),
        "{status}"
    );
    assert!(
        llm.requests().is_empty(),
        "the fake records authenticated requests only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_llm_completion_goes_through_the_conversations_model() {
    let llm = FakeLlm::start(KEY).await;
    let node = node_with_model(&llm).await;
    let (id, _client) = ready_conversation(&node, &token("alice")).await;
    let conversation = ConversationId::parse(&id).unwrap();
    let messages = vec![
        ChatMessage::new(ChatRole::System, "Summarise the conversation."),
        ChatMessage::new(ChatRole::User, "a title please"),
    ];
    let answer = node
        .handle
        .request_llm_completion(&conversation, messages)
        .await
        .expect("a completion");
    assert_eq!(answer, "model says: a title please");
    assert_eq!(llm.requests()[0]["messages"][0]["role"], "system");

    let stopped = ConversationId::parse("never-started").unwrap();
    let refused = node
        .handle
        .request_llm_completion(&stopped, vec![ChatMessage::new(ChatRole::User, "hi")])
        .await;
    assert!(
        refused.is_err(),
        "a conversation nobody runs has no model to ask"
    );
}

/// A conversation created without a title is named by the model from its first message (the title
/// request beside the turn's); when the model fails, by the message's first words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_message_is_titled_by_the_model_or_by_its_first_words() {
    let llm = FakeLlm::start(KEY).await;
    let node = node_with_model(&llm).await;
    let alice = token("alice");
    let id = node
        .create_conversation(&alice, Some("why is CI red?"))
        .await;
    let titled = node.wait_for(&alice, &id, |c| c["title"].is_string()).await;
    assert_eq!(
        titled["title"],
        "model says: Write a title of at most 8 words for a conversation starting with: why is CI red?"
    );
    let asked = llm.requests().into_iter().find(|request| {
        request["messages"][0]["content"]
            .as_str()
            .is_some_and(|asked| asked.starts_with("Write a title"))
    });
    assert_eq!(
        asked.expect("a title request")["messages"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    llm.then_always(Some(LlmReply::ServerError(503)));
    let id = node
        .create_conversation(&alice, Some("the model is down, name me anyway"))
        .await;
    let titled = node.wait_for(&alice, &id, |c| c["title"].is_string()).await;
    assert_eq!(titled["title"], "the model is down, name me anyway");
}

/// An untitled conversation with a model of its own is titled by that model: its user's messages go to
/// no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_with_its_own_model_is_titled_by_it() {
    let llm = FakeLlm::start(KEY).await;
    let own = FakeLlm::start("sk-own-key").await;
    let node = node_with_model(&llm).await;
    let alice = token("alice");
    let create = json!({
        "initial_user_msg": "name me",
        "llm_model": "own-model", "llm_base_url": own.url(), "llm_api_key": "sk-own-key",
    });
    let (_, created) = node.post("/api/conversations", Some(&alice), &create).await;
    let id = created["conversation_id"].as_str().expect("created");
    let titled = node.wait_for(&alice, id, |c| c["title"].is_string()).await;
    assert_eq!(
        titled["title"],
        "model says: Write a title of at most 8 words for a conversation starting with: name me"
    );
    assert!(llm.requests().is_empty(), "the node's model is not asked");
}

/// An answer far larger than a store's item (1 MB) is stored cut, with a marker, sent and replayed the
/// same, and the conversation goes on.
async fn a_huge_answer_is_stored_cut_and_the_conversation_goes_on(stores: Stores) {
    let llm = FakeLlm::start(KEY).await;
    let huge = format!("HEAD {} TAIL", "0123456789abcdef".repeat(1 << 16));
    llm.script([LlmReply::Answer(huge.clone())]);
    let options = NodeOptions::new().with_model(llm.url(), KEY);
    let node = TestNode::standalone(&stores, options).await;
    let alice = token("alice");
    let (id, mut client) = ready_conversation(&node, &alice).await;

    let first = turn(&mut client, "tell me everything", "awaiting_user_input").await;
    let live = answer_of(&first);
    assert!(live.starts_with("HEAD ") && live.ends_with(" TAIL"));
    assert!(
        live.contains(&format!(
            "[... truncated: {} bytes in full ...]",
            huge.len()
        )),
        "the marker says how long it was"
    );
    assert!(live.len() < huge.len() / 2);

    let second = turn(&mut client, "and now briefly", "awaiting_user_input").await;
    assert_eq!(answer_of(&second), "model says: and now briefly");

    let stored = node.wait_for_events(&alice, &id, |_| true).await;
    assert_eq!(answer_of(&stored), live, "stored as sent");
    let mut replay =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    let replayed = replay
        .events_until(|e| e["args"]["content"] == "model says: and now briefly")
        .await;
    assert_eq!(answer_of(&replayed), live, "replayed as sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_stored_cut_on_the_embedded_store() {
    a_huge_answer_is_stored_cut_and_the_conversation_goes_on(Stores::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_answer_is_stored_cut_on_dynamodb() {
    a_huge_answer_is_stored_cut_and_the_conversation_goes_on(Stores::dynamo().await).await;
}
