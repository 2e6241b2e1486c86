//! `AGENT_RUNTIME=openhands`: a real OpenHands agent-server (remote to the node) whose agent is driven
//! by the scripted fake model; the node relays its events under our ids, in order, once each.

use e2e::agent_server::AgentServer;
use e2e::fakes::llm::{AgentStep, FakeLlm, text_of};
use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, token};
use e2e::socketio::{ConnectOptions, SocketClient, is_state, message_action};
use serde_json::Value;

const KEY: &str = "sk-agent-key";

/// The command the agent runs: its output (42) is not in its text.
const COMMAND: &str = "echo $((6 * 7)) > answer.txt && cat answer.txt";

fn is_terminal_output(event: &Value) -> bool {
    event["observation"] == "terminal"
}

fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["id"].as_u64()).collect()
}

async fn openhands_node(server: &AgentServer, llm: &FakeLlm) -> TestNode {
    let options = NodeOptions::new().with_openhands(server, llm.url(), KEY);
    TestNode::standalone(&Stores::embedded().await, options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_a_command_in_the_conversations_workspace() {
    let llm = FakeLlm::start(KEY).await;
    llm.script_steps([
        AgentStep::Terminal(COMMAND.into()),
        AgentStep::Finish("The answer is in answer.txt.".into()),
    ]);
    let server = AgentServer::start().await;
    let node = openhands_node(&server, &llm).await;
    let alice = token("alice");

    let id = node
        .create_conversation(&alice, Some("compute the answer"))
        .await;
    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    let events = client
        .events_until(|e| {
            is_agent_message(e) && e["args"]["content"] == "The answer is in answer.txt."
        })
        .await;

    let call = events
        .iter()
        .find(|e| e["action"] == "terminal")
        .expect("the terminal call");
    assert_eq!(call["args"]["command"], COMMAND);
    assert!(call["remote"]["id"].is_string(), "{call}");
    let output = events
        .iter()
        .find(|e| is_terminal_output(e))
        .expect("the terminal's output");
    assert!(
        output["content"].as_str().unwrap().contains("42"),
        "{output}"
    );
    let written = std::fs::read_to_string(server.workspace(&id).join("answer.txt"))
        .expect("the file the agent wrote in the conversation's workspace");
    assert_eq!(written.trim(), "42");
    let sent = ids(&events);
    assert_eq!(
        sent,
        (sent[0]..sent[0] + sent.len() as u64).collect::<Vec<_>>(),
        "ids in order without gaps"
    );
    // The model got the user's message (through the agent-server).
    let asked = llm
        .requests()
        .iter()
        .filter(|request| request["tools"].is_array())
        .any(|request| {
            request["messages"].as_array().is_some_and(|messages| {
                messages
                    .iter()
                    .any(|m| text_of(&m["content"]).contains("compute the answer"))
            })
        });
    assert!(asked, "the agent's model was asked about the message");
    client
        .events_until(|e| is_state(e, "finished") || is_state(e, "awaiting_user_input"))
        .await;
    client.close().await;

    // A client reconnecting after the terminal call replays what followed it, once.
    let after = call["id"].as_i64().unwrap();
    let mut again = SocketClient::connect(
        &node.url,
        &ConnectOptions::conversation(&id, &alice, Some(after)),
    )
    .await;
    let stored = node.all_events(&alice, &id).await;
    let last = stored.last().unwrap()["id"].as_u64().unwrap();
    let replayed = again.events_through(last).await;
    assert_eq!(
        ids(&replayed),
        (after as u64 + 1..=last).collect::<Vec<_>>()
    );
    assert!(replayed.iter().any(is_terminal_output));
    assert_eq!(
        again
            .next_event_within(std::time::Duration::from_millis(500))
            .await,
        None,
        "nothing twice"
    );
    // One remote conversation for it on the agent-server.
    assert_eq!(server.conversations().await.len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_the_agent_works_reaches_its_model() {
    let llm = FakeLlm::start(KEY).await;
    llm.script_steps([
        AgentStep::Terminal("sleep 4 && echo slept".into()),
        AgentStep::Finish("Done waiting.".into()),
    ]);
    let server = AgentServer::start().await;
    let node = openhands_node(&server, &llm).await;
    let alice = token("alice");
    let id = node
        .create_conversation(&alice, Some("wait a little"))
        .await;
    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    client.events_until(|e| e["action"] == "terminal").await;

    client
        .emit_with_ack("oh_user_action", message_action("also check the README"))
        .await;
    client
        .events_until(|e| is_agent_message(e) && e["args"]["content"] == "Done waiting.")
        .await;
    let reached = llm.requests().iter().any(|request| {
        request["tools"].is_array()
            && request["messages"].as_array().is_some_and(|messages| {
                messages.iter().any(|m| {
                    m["role"] == "user" && text_of(&m["content"]).contains("also check the README")
                })
            })
    });
    assert!(reached, "the model's later request holds the message");
    node.stop().await;
}
