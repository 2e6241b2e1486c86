//! The proactive starter through `POST /internal/proactive` against the GitHub fake: one conversation
//! and one PR comment per trigger however often it is delivered (the comment edited, never duplicated),
//! the API key, and a 5xx while GitHub fails so that EventBridge retries.

use std::time::Duration;

use chrono::Utc;
use e2e::fakes::github::{FakeGitHub, FakeJob, FakePullRequest, Fault, FaultRule};
use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::domain::trigger::{FailedRun, TriggerPullRequest, TriggerRepository};
use shared::domain::{GroupKey, HeadSha, Outcome, ProactiveConversationRequested, RepoId};
use shared::github::{ClientOptions, GitHubAuth, GitHubClient, GitHubConfig};

pub(crate) const REPO: &str = "octo-org/widgets";
pub(crate) const PR: u64 = 7;
pub(crate) const USER: &str = "keycloak-user-1";
const INTERNAL_KEY: &str = "internal-test-key";
const GITHUB_TOKEN: &str = "gh-test-token";

fn sha(digit: char) -> HeadSha {
    HeadSha::parse(&digit.to_string().repeat(40)).unwrap()
}

/// The trigger of a red commit of PR #7 of `REPO` (its runs 11 and 12 failed), for `USER`.
pub(crate) fn trigger(head: &HeadSha) -> ProactiveConversationRequested {
    let key = GroupKey {
        repo_id: RepoId::from_github(4242),
        pr_number: PR,
        head_sha: head.clone(),
    };
    ProactiveConversationRequested {
        trigger_id: key.trigger_id(),
        repository: TriggerRepository {
            id: key.repo_id.clone(),
            owner: "octo-org".into(),
            name: "widgets".into(),
        },
        pull_request: TriggerPullRequest {
            number: PR,
            head_sha: head.clone(),
            head_branch: "fix-widgets".into(),
        },
        installation_id: None,
        user_id: e2e::user_id(USER),
        failed_runs: vec![
            FailedRun {
                id: 11,
                name: "CI / unit tests".into(),
                conclusion: "failure".into(),
                url: "https://github.com/octo-org/widgets/actions/runs/11".into(),
            },
            FailedRun {
                id: 12,
                name: "Lint".into(),
                conclusion: "timed_out".into(),
                url: "https://github.com/octo-org/widgets/actions/runs/12".into(),
            },
        ],
        run_count: 3,
        decided_at: Utc::now(),
        sequence: 0,
        outcome: Outcome::Red,
    }
}

/// The event as EventBridge's API destination delivers it: the whole envelope.
fn envelope(request: &ProactiveConversationRequested) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "ProactiveConversationRequested",
        "source": "proactive.github",
        "account": "000000000000",
        "time": Utc::now(),
        "region": "us-east-1",
        "resources": [],
        "detail": request,
    })
}

async fn world() -> (FakeGitHub, TestNode) {
    let github = FakeGitHub::start().await;
    github.require_token(GITHUB_TOKEN);
    github.put_pull_request(
        REPO,
        FakePullRequest::open(PR, sha('a').as_str(), "fix-widgets"),
    );
    let config = GitHubConfig {
        api_url: github.url().to_owned(),
        auth: GitHubAuth::Token(GITHUB_TOKEN.into()),
    };
    let options = ClientOptions {
        retry_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    };
    let mut node_options = NodeOptions::new();
    node_options.github =
        Some(GitHubClient::with_options(config, options).expect("a GitHub client"));
    node_options.config.auth.internal_api_key = Some(INTERNAL_KEY.into());
    let node = TestNode::standalone(&Stores::embedded().await, node_options).await;
    (github, node)
}

async fn deliver(node: &TestNode, body: &Value) -> (StatusCode, Value) {
    node.send(
        node.request(Method::POST, "/internal/proactive")
            .header("X-Api-Key", INTERNAL_KEY)
            .json(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_trigger_twice_makes_one_conversation_and_one_edited_comment() {
    let (github, node) = world().await;
    let request = trigger(&sha('a'));

    let (status, first) = deliver(&node, &envelope(&request)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["created"], true);
    assert_eq!(first["comment"], "created");
    let id = first["conversation_id"].as_str().unwrap().to_owned();
    let comments = github.comments(REPO, PR);
    assert_eq!(comments.len(), 1);
    let body = &comments[0].body;
    assert!(
        body.starts_with("Looks like there are a few issues preventing this PR from being merged!")
    );
    assert!(
        body.contains("[CI / unit tests](https://github.com/octo-org/widgets/actions/runs/11)")
    );
    assert!(body.contains("[Lint]"));
    assert!(body.contains(&format!("http://conversations.test/conversations/{id}")));

    // A redelivery (here the bare detail) finds the same conversation and edits the same comment.
    let (status, second) = deliver(&node, &serde_json::to_value(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["conversation_id"], id.as_str());
    assert_eq!(second["created"], false);
    assert_eq!(second["comment"], "updated");
    let again = github.comments(REPO, PR);
    assert_eq!(again.len(), 1, "edited, not duplicated");
    assert_eq!(again[0].id, comments[0].id);

    let user = token(USER);
    let (_, listed) = node.get("/api/conversations", Some(&user)).await;
    let results = listed["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["trigger_id"], request.trigger_id.as_str());
    assert_eq!(results[0]["selected_repository"], REPO);
    let events = node
        .wait_for_events(&user, &id, |events| events.iter().any(is_agent_message))
        .await;
    let first_message = events
        .iter()
        .find(|e| e["source"] == "user")
        .and_then(|e| e["args"]["content"].as_str())
        .unwrap();
    assert!(first_message.contains("PR #7"), "{first_message}");
    assert!(first_message.contains("`fix-widgets`"));
    assert!(first_message.contains("CI / unit tests, Lint"));
    assert_eq!(events.iter().filter(|e| e["source"] == "user").count(), 1);
}

/// EventBridge's API destination gives up on a call after 5 s and calls again while the first still
/// runs: the second waits for the first's comment and edits it. One comment, one conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_during_a_slow_comment_edits_it_and_never_makes_a_second() {
    let (github, node) = world().await;
    github.inject(FaultRule::next(1, Fault::Slow { millis: 6_000 }).on("POST", "/comments"));
    let request = envelope(&trigger(&sha('b')));
    let (first, retry) = tokio::join!(deliver(&node, &request), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        deliver(&node, &request).await
    });
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    assert_eq!(retry.0, StatusCode::OK, "{}", retry.1);
    assert_eq!(first.1["comment"], "created");
    assert_eq!(retry.1["comment"], "updated");
    assert_eq!(first.1["conversation_id"], retry.1["conversation_id"]);
    assert_eq!(github.comments(REPO, PR).len(), 1, "one comment");
}

/// Follow-ups of a trigger: green again tells the conversation and says so in the comment; a failure
/// after that goes into the same conversation, once however often delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_triggers_follow_ups_reach_its_conversation_and_comment() {
    let (github, node) = world().await;
    let red = trigger(&sha('d'));
    let (_, first) = deliver(&node, &envelope(&red)).await;
    let id = first["conversation_id"].as_str().unwrap().to_owned();
    first_message(&node, &id).await;

    let green = ProactiveConversationRequested {
        sequence: 1,
        outcome: Outcome::Green,
        failed_runs: Vec::new(),
        ..red.clone()
    };
    let (status, answer) = deliver(&node, &envelope(&green)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (
            answer["conversation_id"].as_str(),
            answer["followed"].clone()
        ),
        (Some(id.as_str()), json!(true))
    );
    let comments = github.comments(REPO, PR);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("pass now"),
        "{}",
        comments[0].body
    );
    assert!(comments[0].body.contains(&format!("/conversations/{id}")));

    let again = ProactiveConversationRequested {
        sequence: 2,
        ..red.clone()
    };
    for _ in 0..2 {
        let (status, answer) = deliver(&node, &envelope(&again)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["conversation_id"], id.as_str());
    }
    let messages = user_messages(&node, &id, 3).await;
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[1].contains("pass now"), "{}", messages[1]);
    assert!(
        messages[2].contains("Please fix the failing workflows"),
        "{}",
        messages[2]
    );
    assert!(
        github.comments(REPO, PR)[0]
            .body
            .contains("[CI / unit tests]")
    );
}

/// The first message of the trigger's conversation.
async fn first_message(node: &TestNode, id: &str) -> String {
    user_messages(node, id, 1).await.swap_remove(0)
}

/// The user messages of conversation `id`, once its agent answered `answers` messages.
async fn user_messages(node: &TestNode, id: &str, answers: usize) -> Vec<String> {
    let events = node
        .wait_for_events(&token(USER), id, |events| {
            events.iter().filter(|e| is_agent_message(e)).count() >= answers
        })
        .await;
    events
        .iter()
        .filter(|e| e["source"] == "user")
        .filter_map(|e| e["args"]["content"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The first message holds the evidence: each failed run's failed jobs, the steps they failed at, and
/// the end of each failed job's log (read through GitHub's redirect, without its timestamps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_message_holds_the_failed_jobs_and_the_end_of_their_logs() {
    let (github, node) = world().await;
    let log: String = (1..=500)
        .map(|n| format!("2026-12-05T10:00:{:02}.1234567Z test line {n}\n", n % 60))
        .chain([
            "2026-12-05T10:01:00.0000000Z error[E0308]: mismatched types in src/lib.rs:42\n"
                .to_owned(),
        ])
        .collect();
    github.put_job(
        REPO,
        FakeJob::failed(901, 11, "test (ubuntu-latest)", "Run cargo test", &log),
    );
    let mut passed = FakeJob::failed(902, 11, "fmt", "cargo fmt", "all good\n");
    passed.conclusion = "success".into();
    passed.steps = vec![("cargo fmt".into(), "success".into())];
    github.put_job(REPO, passed);
    github.put_job(
        REPO,
        FakeJob::failed(903, 12, "lint", "Run clippy", "warning: unused variable\n"),
    );

    let (status, answer) = deliver(&node, &envelope(&trigger(&sha('a')))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let message = first_message(&node, answer["conversation_id"].as_str().unwrap()).await;
    assert!(message.contains("CI / unit tests, Lint"), "{message}");
    assert!(message.contains("### Job `test (ubuntu-latest)`, failed at: Run cargo test"));
    assert!(message.contains("error[E0308]: mismatched types in src/lib.rs:42"));
    assert!(message.contains("test line 500\n"));
    assert!(
        !message.contains("test line 300\n"),
        "only the last 200 lines"
    );
    assert!(
        !message.contains("2026-12-05T10:"),
        "timestamps are dropped"
    );
    assert!(
        !message.contains("`fmt`"),
        "a job that passed is not quoted"
    );
    assert!(message.contains("### Job `lint`, failed at: Run clippy"));
    assert!(message.contains("warning: unused variable"));
}

/// A log GitHub will not give is said so, and the conversation starts all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_github_fails_to_give_is_named_and_the_conversation_starts() {
    let (github, node) = world().await;
    github.put_job(
        REPO,
        FakeJob::failed(901, 11, "test", "Run cargo test", "the failure\n"),
    );
    github.inject(FaultRule::next(100, Fault::ServerError(500)).on("GET", "/logs"));

    let (status, answer) = deliver(&node, &envelope(&trigger(&sha('a')))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let message = first_message(&node, answer["conversation_id"].as_str().unwrap()).await;
    assert!(
        message.contains("### Job `test`, failed at: Run cargo test"),
        "{message}"
    );
    assert!(message.contains("GitHub did not give its log"), "{message}");
    assert!(!message.contains("the failure"));
    // Run 12 is unknown to GitHub: said so as well.
    assert!(
        message.contains("GitHub did not list its jobs"),
        "{message}"
    );
}

/// One running conversation per PR: a new red commit (the agent's own fix, say) goes into the PR's
/// running conversation as a message, once however often it is delivered; once that conversation is
/// stopped, the next red commit gets a conversation of its own, linked in the same comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_red_commit_goes_into_the_prs_running_conversation() {
    let (github, node) = world().await;
    let user = token(USER);
    let (_, first) = deliver(&node, &envelope(&trigger(&sha('a')))).await;
    let running = first["conversation_id"].as_str().unwrap().to_owned();
    first_message(&node, &running).await;

    let next = envelope(&trigger(&sha('b')));
    for _ in 0..2 {
        let (status, second) = deliver(&node, &next).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second["conversation_id"], running.as_str());
        assert_eq!(
            (second["created"].clone(), second["followed"].clone()),
            (json!(false), json!(true))
        );
        assert_eq!(second["comment"], "updated");
    }
    let messages = user_messages(&node, &running, 2).await;
    assert_eq!(
        messages.len(),
        2,
        "the new failure once, however often delivered: {messages:?}"
    );
    assert!(messages[1].contains(sha('b').as_str()), "{}", messages[1]);
    let (_, listed) = node.get("/api/conversations", Some(&user)).await;
    assert_eq!(
        listed["results"].as_array().unwrap().len(),
        1,
        "no second conversation"
    );

    let (status, _) = node
        .post(
            &format!("/api/conversations/{running}/stop"),
            Some(&user),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, third) = deliver(&node, &envelope(&trigger(&sha('c')))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(third["created"], true);
    assert_ne!(third["conversation_id"], running.as_str());
    let comments = github.comments(REPO, PR);
    assert_eq!(comments.len(), 1);
    let link = format!(
        "/conversations/{}",
        third["conversation_id"].as_str().unwrap()
    );
    assert!(comments[0].body.contains(&link));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_the_internal_key_are_refused() {
    let (github, node) = world().await;
    let body = envelope(&trigger(&sha('a')));
    let (status, answer) = node
        .send(
            node.request(Method::POST, "/internal/proactive")
                .json(&body),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "unauthorized");
    let (status, _) = node
        .send(
            node.request(Method::POST, "/internal/proactive")
                .header("X-Api-Key", "guessed")
                .json(&body),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = deliver(&node, &json!({ "detail": { "trigger_id": "nope" } })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(github.comments(REPO, PR).is_empty());
    let (_, listed) = node.get("/api/conversations", Some(&token(USER))).await;
    assert!(listed["results"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_failure_answers_5xx_and_the_retry_completes_the_work() {
    let (github, node) = world().await;
    // Every attempt to find the PR's comment fails (the evidence is read before, and succeeds).
    github.inject(FaultRule::next(3, Fault::ServerError(502)).on("GET", "/comments"));
    let body = envelope(&trigger(&sha('a')));
    let (status, failed) = deliver(&node, &body).await;
    assert!(status.is_server_error(), "{status} {failed}");
    assert!(github.comments(REPO, PR).is_empty());

    let (status, retried) = deliver(&node, &body).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(
        retried["created"], false,
        "the conversation was created by the first delivery"
    );
    assert_eq!(retried["comment"], "created");
    assert_eq!(github.comments(REPO, PR).len(), 1);
    let (_, listed) = node.get("/api/conversations", Some(&token(USER))).await;
    assert_eq!(listed["results"].as_array().unwrap().len(), 1);
}
