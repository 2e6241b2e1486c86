//! `AGENT_RUNTIME=openhands`: a real OpenHands agent-server (remote to the node) whose agent is driven
//! by the scripted fake model; the node relays its events under our ids, in order, once each.

use std::sync::Arc;

use e2e::agent_server::AgentServer;
use e2e::cluster::{ClusterEnv, NodeProcess};
use e2e::fakes::github::{FakeGitHub, FakeJob, FakePullRequest};
use e2e::fakes::llm::{AgentStep, FakeLlm};
use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, token};
use e2e::socketio::{ConnectOptions, SocketClient, is_state, message_action};
use e2e::trigger_world::{self, Run, TriggerWorld, lifecycle};
use serde_json::{Value, json};
use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::domain::{ConversationId, HeadSha, ProactiveConversationRequested, content_text};
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig};

use super::starter::{PR, REPO};

const KEY: &str = "sk-agent-key";

/// The command the agent runs: its output (42) is not in its text.
const COMMAND: &str = "echo $((6 * 7)) > answer.txt && cat answer.txt";

fn is_terminal_output(event: &Value) -> bool {
    event["observation"] == "terminal"
}

fn ids(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["id"].as_u64()).collect()
}

/// A conversation of alice's on a node with the `openhands` runtime (a remote agent-server), its agent
/// driven by the model's `steps`, with a client connected from its start.
struct Agent {
    llm: FakeLlm,
    server: AgentServer,
    node: TestNode,
    alice: String,
    id: String,
    client: SocketClient,
}

impl Agent {
    async fn start(stores: &Stores, steps: Vec<AgentStep>, first_message: &str) -> Self {
        Self::start_with(stores, steps, json!({ "initial_user_msg": first_message })).await
    }

    /// The conversation created with `create` as the body of `POST /api/conversations`.
    async fn start_with(stores: &Stores, steps: Vec<AgentStep>, create: Value) -> Self {
        let llm = FakeLlm::start(KEY).await;
        llm.script_steps(steps);
        let server = AgentServer::start().await;
        let options = NodeOptions::new().with_openhands(&server, llm.url(), KEY);
        let node = TestNode::standalone(stores, options).await;
        let alice = token("alice");
        let (status, created) = node.post("/api/conversations", Some(&alice), &create).await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
        let id = created["conversation_id"].as_str().unwrap().to_owned();
        let client =
            SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None))
                .await;
        Self {
            llm,
            server,
            node,
            alice,
            id,
            client,
        }
    }

    /// The events up to the agent's message `text`.
    async fn until_it_says(&mut self, text: &str) -> Vec<Value> {
        self.client
            .events_until(|e| is_agent_message(e) && e["args"]["content"] == text)
            .await
    }
}

/// No agent-server event is stored twice.
fn assert_each_remote_event_once(stored: &[Value]) {
    let mut remote: Vec<&str> = stored
        .iter()
        .filter_map(|e| e["remote"]["id"].as_str())
        .collect();
    let relayed = remote.len();
    remote.sort_unstable();
    remote.dedup();
    assert_eq!(remote.len(), relayed, "a remote event stored twice");
}

/// Whether the agent's model was asked with a user message holding `text`.
fn agent_was_asked(llm: &FakeLlm, text: &str) -> bool {
    llm.requests().iter().any(|request| {
        request["tools"].is_array()
            && request["messages"].as_array().is_some_and(|messages| {
                messages
                    .iter()
                    .any(|m| m["role"] == "user" && content_text(&m["content"]).contains(text))
            })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_a_command_in_the_conversations_workspace() {
    let steps = vec![
        AgentStep::Terminal(COMMAND.into()),
        AgentStep::Finish("The answer is in answer.txt.".into()),
    ];
    let mut agent = Agent::start(&Stores::embedded().await, steps, "compute the answer").await;
    let events = agent.until_it_says("The answer is in answer.txt.").await;

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
    let written = std::fs::read_to_string(agent.server.workspace(&agent.id).join("answer.txt"))
        .expect("the file the agent wrote in the conversation's workspace");
    assert_eq!(written.trim(), "42");
    let sent = ids(&events);
    assert_eq!(
        sent,
        (sent[0]..sent[0] + sent.len() as u64).collect::<Vec<_>>(),
        "ids in order without gaps"
    );
    assert!(agent_was_asked(&agent.llm, "compute the answer"));
    let Agent {
        node,
        server,
        alice,
        id,
        mut client,
        ..
    } = agent;
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
    // One remote conversation for it on the agent-server, named in its metadata.
    let remote = server.conversations().await;
    assert_eq!(remote.len(), 1);
    let shown = node.conversation(&alice, &id).await;
    assert_eq!(shown["remote_conversation_id"], remote[0]["id"], "{shown}");
    node.stop().await;
}

/// A conversation created with a model of its own: its agent asks that model, with its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversations_own_model_drives_its_agent() {
    let own = FakeLlm::start("sk-own-key").await;
    own.script_steps([
        AgentStep::Terminal(COMMAND.into()),
        AgentStep::Finish("Done with my own model.".into()),
    ]);
    let create = json!({
        "initial_user_msg": "compute the answer",
        "llm_model": "own-model", "llm_base_url": own.url(), "llm_api_key": "sk-own-key",
    });
    let mut agent = Agent::start_with(&Stores::embedded().await, vec![], create).await;
    let events = agent.until_it_says("Done with my own model.").await;
    assert!(events.iter().any(is_terminal_output));
    assert!(agent_was_asked(&own, "compute the answer"));
    assert_eq!(own.requests()[0]["model"], "own-model");
    assert!(
        agent.llm.requests().is_empty(),
        "the node's model is not asked"
    );
    agent.node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_the_agent_works_reaches_its_model() {
    let steps = vec![
        AgentStep::Terminal("sleep 4 && echo slept".into()),
        AgentStep::Finish("Done waiting.".into()),
    ];
    let mut agent = Agent::start(&Stores::embedded().await, steps, "wait a little").await;
    agent
        .client
        .events_until(|e| e["action"] == "terminal")
        .await;

    agent
        .client
        .emit_with_ack("oh_user_action", message_action("also check the README"))
        .await;
    agent.until_it_says("Done waiting.").await;
    assert!(
        agent_was_asked(&agent.llm, "also check the README"),
        "the model's later request holds the message"
    );
    agent.node.stop().await;
}

/// A tool call carrying a whole file (1 MB) is stored cut to the store's item limit with its marker, on
/// both stores, replays as stored, and the conversation goes on. (The SDK cuts a terminal's output to
/// 30 KB itself; a file the agent writes is the event that can be this large.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_tool_call_is_stored_cut_on_the_embedded_store() {
    a_huge_tool_call_is_stored_cut(Stores::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_tool_call_is_stored_cut_on_dynamodb() {
    a_huge_tool_call_is_stored_cut(Stores::dynamo().await).await;
}

async fn a_huge_tool_call_is_stored_cut(stores: Stores) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("big.txt");
    let text = format!("BEGIN{}END", "x".repeat(1 << 20));
    let steps = vec![
        AgentStep::CreateFile {
            path: path.display().to_string(),
            text: text.clone(),
        },
        AgentStep::Finish("Wrote it.".into()),
    ];
    let mut agent = Agent::start(&stores, steps, "write a big file").await;
    let live = agent.until_it_says("Wrote it.").await;

    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the agent wrote it whole"
    );
    let call = live
        .iter()
        .find(|e| e["action"] == "file_editor")
        .expect("the file editor's call");
    let stored_text = call["args"]["file_text"].as_str().unwrap();
    assert!(stored_text.starts_with("BEGIN") && stored_text.ends_with("END"));
    assert!(stored_text.contains(&format!(
        "[... truncated: {} bytes in full ...]",
        text.len()
    )));
    assert!(call.to_string().len() <= shared::domain::MAX_EVENT_BYTES);
    let stored = agent.node.all_events(&agent.alice, &agent.id).await;
    let replayed = stored
        .iter()
        .find(|e| e["id"] == call["id"])
        .expect("stored");
    assert_eq!(replayed, call, "replayed as it was sent live");
    // The whole of it, from the agent-server, through the node.
    let path = format!(
        "/api/conversations/{}/events/{}/remote",
        agent.id, call["id"]
    );
    let (status, whole) = agent.node.get(&path, Some(&agent.alice)).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(whole["event"], *call);
    assert_eq!(whole["remote_event"]["action"]["file_text"], text.as_str());
    let first = format!("/api/conversations/{}/events/0/remote", agent.id);
    let (status, refused) = agent.node.get(&first, Some(&agent.alice)).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{refused}");
    let (status, _) = agent.node.get(&path, Some(&token("mallory"))).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "another user's");
    // The conversation goes on.
    agent
        .client
        .emit_with_ack("oh_user_action", message_action("thanks"))
        .await;
    agent.until_it_says("model says: thanks").await;
    agent.node.stop().await;
}

/// The agent-server dies mid-run and comes back: the conversation goes on (the relay reconnects and
/// resumes after the last event it stored), or says why it cannot; nothing hangs, nothing repeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_survives_its_agent_server_restarting() {
    let steps = vec![AgentStep::Terminal("sleep 2 && echo slept".into())];
    let mut agent = Agent::start(&Stores::embedded().await, steps, "take a nap").await;
    agent
        .client
        .events_until(|e| e["action"] == "terminal")
        .await;

    agent.server.restart().await;
    agent
        .client
        .emit_with_ack("oh_user_action", message_action("are you back?"))
        .await;
    let after = agent.until_it_says("model says: are you back?").await;
    let stored = agent.node.all_events(&agent.alice, &agent.id).await;
    let sent = ids(&stored);
    assert_eq!(sent, (0..stored.len() as u64).collect::<Vec<_>>(), "no gap");
    assert_each_remote_event_once(&stored);
    assert!(after.iter().any(is_agent_message));
    agent.node.stop().await;
}

/// `AGENT_SERVER=process`: the node starts its own agent-server (clean environment, a workspace per
/// conversation under its data directory) and stops it when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_its_own_agent_server() {
    let llm = FakeLlm::start(KEY).await;
    llm.script_steps([
        // The test process has AGENT_SERVER_PYTHON; the server's clean environment does not.
        AgentStep::Terminal("pwd && env | grep -c AGENT_SERVER_PYTHON || true".into()),
        AgentStep::Finish("Looked around.".into()),
    ]);
    let data = tempfile::tempdir().expect("a temporary directory");
    let options = NodeOptions::new().with_own_agent_server(data.path(), llm.url(), KEY);
    let node = TestNode::standalone(&Stores::embedded().await, options).await;
    let alice = token("alice");
    let id = node
        .create_conversation(&alice, Some("where are you?"))
        .await;
    let mut client =
        SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;
    let events = client
        .events_until(|e| is_agent_message(e) && e["args"]["content"] == "Looked around.")
        .await;
    let output = events
        .iter()
        .find(|e| is_terminal_output(e))
        .expect("the terminal's output");
    let workspace = data.path().join("workspaces").join(&id);
    let text = output["content"].as_str().unwrap();
    assert!(text.contains(&workspace.display().to_string()), "{text}");
    assert!(
        text.lines().any(|line| line.trim() == "0"),
        "nothing of the node's environment in the server's: {text}"
    );
    let log = std::fs::read_to_string(data.path().join("agent-server/server.log")).unwrap();
    let port = log
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .expect("the server logs where it listens")
        .to_owned();
    node.stop().await;
    let deadline = tokio::time::Instant::now() + e2e::socketio::PATIENCE;
    while tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .is_ok()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent-server outlived its node"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Clustered node processes on one remote agent-server: the owner is killed (`kill -9`) while its
/// agent works; the survivor takes the conversation over, re-attaches to the same remote conversation
/// after the last event stored, and the client gets every later event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_reattaches_to_the_agent_when_the_owner_is_killed() {
    let llm = FakeLlm::start(KEY).await;
    llm.script_steps([
        AgentStep::Terminal("sleep 3 && echo first-$((1 + 1))".into()),
        AgentStep::Terminal("echo second-$((2 + 2))".into()),
        AgentStep::Finish("Both done.".into()),
    ]);
    let server = AgentServer::start().await;
    let mut env = ClusterEnv::fresh().await;
    env.extra.extend([
        ("AGENT_RUNTIME", "openhands".to_owned()),
        ("AGENT_SERVER_URL", server.url()),
        ("AGENT_SERVER_API_KEY", server.api_key.clone()),
        (
            "AGENT_SERVER_WORKSPACE_ROOT",
            server.workspace_root().display().to_string(),
        ),
        ("LLM_MODEL", "fake-model".to_owned()),
        ("LLM_BASE_URL", llm.url().to_owned()),
        ("LLM_API_KEY", KEY.to_owned()),
    ]);
    let owner = NodeProcess::start(&env).await;
    let survivor = NodeProcess::start(&env).await;
    let alice = token("alice");
    let id = owner.create_conversation(&alice, Some("two steps")).await;
    let mut client = SocketClient::connect(
        &survivor.url,
        &ConnectOptions::conversation(&id, &alice, None),
    )
    .await;
    let before = client.events_until(|e| e["action"] == "terminal").await;

    owner.signal("KILL").await;
    let after = client
        .events_until(|e| is_agent_message(e) && e["args"]["content"] == "Both done.")
        .await;
    let seen = ids(&before.iter().chain(&after).cloned().collect::<Vec<_>>());
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(seen, unique, "every event once, in order");
    let outputs: Vec<&str> = after
        .iter()
        .filter(|e| is_terminal_output(e))
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs[0].contains("first-2") && outputs[1].contains("second-4"));

    let stored = survivor.all_events(&alice, &id).await;
    assert_eq!(ids(&stored), (0..stored.len() as u64).collect::<Vec<_>>());
    assert_each_remote_event_once(&stored);
    assert_eq!(
        server.conversations().await.len(),
        1,
        "one remote conversation"
    );
}

/// Runs git in `dir` as a test author.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The token the node reads GitHub with in the red PR tests.
const CLONE_TOKEN: &str = "gh-clone-token";

/// A repository whose PR head (its second commit) changed the README, served by the GitHub fake as
/// `repo`'s clone URL beside the failed job's log, the scripted model, an agent-server, and a node with
/// the `openhands` runtime reading GitHub with `token`.
struct RedPr {
    _origin: tempfile::TempDir,
    head: String,
    token: &'static str,
    llm: FakeLlm,
    server: AgentServer,
    node: TestNode,
}

impl RedPr {
    async fn start(repo: &str, github: &FakeGitHub, token: &'static str) -> Self {
        let origin = tempfile::tempdir().expect("a temporary directory");
        git(origin.path(), &["init", "--quiet", "-b", "main"]);
        std::fs::write(origin.path().join("README.md"), "widgets v1\n").unwrap();
        git(origin.path(), &["add", "."]);
        git(origin.path(), &["commit", "--quiet", "-m", "one"]);
        std::fs::write(origin.path().join("README.md"), "widgets v2: spins twice\n").unwrap();
        git(origin.path(), &["commit", "--quiet", "-am", "two"]);
        let head = git(origin.path(), &["rev-parse", "HEAD"]);
        github.set_clone_url(repo, &format!("file://{}", origin.path().display()));
        github.put_job(
            repo,
            FakeJob::failed(
                501,
                11,
                "unit tests",
                "Run cargo test",
                "test widgets::spin ... FAILED\nassertion failed: spins == 3",
            ),
        );
        let llm = FakeLlm::start(KEY).await;
        llm.script_steps([
            AgentStep::Terminal("git rev-parse HEAD && cat README.md".into()),
            AgentStep::Finish("Found the change.".into()),
        ]);
        let server = AgentServer::start().await;
        let mut options = NodeOptions::new().with_openhands(&server, llm.url(), KEY);
        options.github = Some(
            GitHubClient::new(GitHubConfig {
                api_url: github.url().to_owned(),
                auth: GitHubAuth::Token(token.into()),
            })
            .expect("a GitHub client"),
        );
        let node = TestNode::standalone(&Stores::embedded().await, options).await;
        Self {
            _origin: origin,
            head,
            token,
            llm,
            server,
            node,
        }
    }

    /// Starts the conversation of `request` (as EventBridge would) and checks what its agent did: it
    /// ran a command in the repository at the PR's head with the failed job's log in its first request,
    /// and the token that cloned it is in no event and no file.
    async fn agent_works_in_the_checkout(&self, request: &ProactiveConversationRequested) {
        let started = self
            .node
            .handle
            .start_proactive(request)
            .await
            .expect("started");
        let id = started.conversation_id.to_string();
        let owner = token(request.user_id.as_str());
        let events = self
            .node
            .wait_for_events(&owner, &id, |events| {
                events
                    .iter()
                    .any(|e| is_agent_message(e) && e["args"]["content"] == "Found the change.")
            })
            .await;
        let output = events
            .iter()
            .find(|e| is_terminal_output(e))
            .and_then(|e| e["content"].as_str())
            .expect("the terminal's output");
        assert!(
            output.contains(&self.head),
            "the workspace is at the PR's head: {output}"
        );
        assert!(output.contains("widgets v2: spins twice"), "{output}");
        let first_agent_request = self
            .llm
            .requests()
            .into_iter()
            .find(|request| request["tools"].is_array())
            .expect("the agent asked its model");
        assert!(
            first_agent_request
                .to_string()
                .contains("assertion failed: spins == 3"),
            "the first message holds the log's tail"
        );
        assert!(self.server.workspace(&id).join(".git").is_dir());
        assert!(
            !self
                .server
                .workspace_root()
                .join(format!("{id}.git-credentials"))
                .exists(),
            "no credentials file is left"
        );
        let stored = serde_json::to_string(&events).unwrap();
        assert!(!stored.contains(self.token), "the token is in no event");
    }
}

/// A red pull request's conversation on the `openhands` runtime, from the trigger EventBridge delivers
/// to the node's starter, GitHub read with a token: the workspace is the repository at the PR's head
/// (cloned before the agent starts, the token handed over as a file that is gone afterwards and in no
/// event), the first message holds the failed job's log tail, and the agent runs a command in the
/// checkout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_prs_agent_works_in_the_checkout_with_the_failure_in_hand() {
    let github = FakeGitHub::start().await;
    github.require_token(CLONE_TOKEN);
    let red = RedPr::start(REPO, &github, CLONE_TOKEN).await;
    github.put_pull_request(REPO, FakePullRequest::open(PR, &red.head, "fix-widgets"));
    let request = super::starter::trigger(&HeadSha::parse(&red.head).unwrap());
    red.agent_works_in_the_checkout(&request).await;
    red.node.stop().await;
}

/// A red pull request end to end: the signed `workflow_run` deliveries of its failing run through the
/// webhook (the real service, its decision store), the trigger it publishes to the node's starter, and
/// the agent at work in the checkout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_red_pr_goes_from_the_webhook_to_an_agent_in_the_checkout() {
    let store = EmbeddedProactiveStore::open(EmbeddedDb::in_memory().unwrap())
        .await
        .unwrap();
    let mut world = TriggerWorld::new(Arc::new(store)).await;
    let red = RedPr::start(trigger_world::REPO, &world.github, CLONE_TOKEN).await;
    world.open_pr_with_runs(2, &red.head, &[(11, "unit tests")]);
    let run = Run {
        pr: 2,
        head: &red.head,
        id: 11,
        name: "unit tests",
    };
    for delivery in lifecycle(run, "failure") {
        let answer = world.send(&delivery).await;
        assert!(answer.status.is_success(), "{answer:?}");
    }
    let triggers = world.triggers().await;
    assert_eq!(triggers.len(), 1, "one trigger for the red commit");
    let request: ProactiveConversationRequested =
        serde_json::from_value(triggers[0].clone()).expect("the trigger's shape");
    assert_eq!(
        request.user_id.as_str(),
        trigger_world::OWNER,
        "the user linked to the run's actor"
    );
    // The webhook read GitHub anonymously; the node's starter writes (the PR comment) with a token.
    world.github.require_token(CLONE_TOKEN);
    red.agent_works_in_the_checkout(&request).await;
    // The App's installer (the repository's registrant) does not see it.
    let conversation = ConversationId::for_trigger(&request.trigger_id);
    let installer = token("github:21031067");
    let path = format!("/api/conversations/{conversation}");
    assert_eq!(
        red.node.get(&path, Some(&installer)).await.0,
        reqwest::StatusCode::NOT_FOUND
    );
    red.node.stop().await;
}

/// In confirmation mode the agent asks before each action (the SDK's `AlwaysConfirm`): the command runs
/// only once the user confirms it (`change_agent_state` to `user_confirmed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_confirmation_mode_the_agent_acts_once_the_user_confirms() {
    let steps = vec![
        AgentStep::Terminal("echo yes > confirmed.txt".into()),
        AgentStep::Finish("Done after asking.".into()),
    ];
    let create = json!({ "initial_user_msg": "write it", "confirmation_mode": true });
    let mut agent = Agent::start_with(&Stores::embedded().await, steps, create).await;
    let written = agent.server.workspace(&agent.id).join("confirmed.txt");
    let asked = agent
        .client
        .events_until(|e| is_state(e, "awaiting_user_confirmation"))
        .await;
    assert!(asked.iter().any(|e| e["action"] == "terminal"), "{asked:?}");
    assert!(!written.exists(), "nothing runs before the user confirms");

    let confirm =
        json!({ "action": "change_agent_state", "args": { "agent_state": "user_confirmed" } });
    // Every action waits for its confirmation, the finish included.
    for _ in 0..3 {
        agent
            .client
            .emit_with_ack("oh_user_action", confirm.clone())
            .await;
        let next = agent
            .client
            .events_until(|e| {
                is_state(e, "awaiting_user_confirmation")
                    || (is_agent_message(e) && e["args"]["content"] == "Done after asking.")
            })
            .await;
        if next.iter().any(is_agent_message) {
            break;
        }
    }
    assert_eq!(std::fs::read_to_string(&written).unwrap().trim(), "yes");
    agent.node.stop().await;
}
