//! `make run`'s program, end to end: the local stack binary with the GitHub fake seeded like
//! `events/github-seed.json`, the signed samples of `events/webhook/` sent in the README's order, and
//! the proactive conversation they start watched with the official Socket.IO client.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use e2e::fakes::github::{FakeGitHub, Seed};
use e2e::socketio::{ConnectOptions, SocketClient, Transports};
use e2e::webhook_sender::{read_delivery, send};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const SECRET: &str = "local-stack-test-secret";
const SAMPLES: [&str; 4] = [
    "installation-created",
    "workflow-run-requested",
    "workflow-run-completed-success",
    "workflow-run-completed-failure",
];

fn repository_file(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads the stack's standard output until a line satisfies `wanted`.
async fn line_where(
    lines: &mut Lines<BufReader<ChildStdout>>,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let read = async {
        while let Some(line) = lines.next_line().await.expect("the stack's output") {
            if wanted(&line) {
                return line;
            }
        }
        panic!("the local stack exited before printing the expected line");
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the expected line within a minute")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_red_commit_ends_in_a_proactive_conversation_a_client_watches() {
    let github = FakeGitHub::start().await;
    github
        .apply_seed(&Seed::load(&repository_file("events/github-seed.json")).unwrap())
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut stack: Child = Command::new(env!("CARGO_BIN_EXE_local-stack"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("DATA_DIR", data.path())
        .env("GITHUB_API_URL", github.url())
        .env("GITHUB_TOKEN", "local-github-token")
        .env("GITHUB_WEBHOOK_SECRET", SECRET)
        .env("PROACTIVE_USERS", "*=local-user")
        .env("JWT_HS256_SECRET", "local-stack-test-jwt")
        .env("INTERNAL_API_KEY", "local-stack-test-internal")
        .env("PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the local stack");
    let mut lines = BufReader::new(stack.stdout.take().unwrap()).lines();
    line_where(&mut lines, |l| l.starts_with("local stack on")).await;

    let url = format!("http://127.0.0.1:{port}/webhooks/github");
    for sample in SAMPLES {
        let file =
            std::fs::read(repository_file(&format!("events/webhook/{sample}.json"))).unwrap();
        let delivery = read_delivery(&file, None).unwrap();
        let answer = send(&url, SECRET.as_bytes(), &delivery)
            .await
            .expect("the webhook answers");
        assert_eq!(answer.status, 202, "{sample}: {:?}", answer.body);
    }

    let event = line_where(&mut lines, |l| {
        l.contains("\"detail-type\":\"ProactiveConversationRequested\"")
    })
    .await;
    let trigger: serde_json::Value = serde_json::from_str(&event).unwrap();
    let watch = line_where(&mut lines, |l| l.trim_start().starts_with("watch it:")).await;
    let options: serde_json::Value =
        serde_json::from_str(watch.rsplit_once(" '").unwrap().1.trim_end_matches('\'')).unwrap();
    let conversation = options["query"]["conversation_id"].as_str().unwrap();
    let token = options["auth_token"].as_str().unwrap();
    assert_eq!(
        options["transports"], "default",
        "connects as a browser does"
    );
    assert_eq!(
        conversation,
        format!(
            "proactive-{}",
            trigger["detail"]["trigger_id"]
                .as_str()
                .unwrap()
                .trim_start_matches("trg-")
        )
    );

    let mut client = SocketClient::connect(
        &format!("http://127.0.0.1:{port}"),
        &ConnectOptions::conversation(conversation, token, None).over(Transports::Default),
    )
    .await;
    let events = client.events_until(|e| e["source"] == "agent").await;
    let first_message = events
        .iter()
        .find(|e| e["source"] == "user")
        .expect("the first message");
    assert!(
        first_message["message"]
            .as_str()
            .unwrap()
            .contains("Please fix the failing workflows on PR #2"),
        "{first_message}"
    );
    // The evidence from the seeded GitHub: the failed job, its failed step, the end of its log.
    let message = first_message["message"].as_str().unwrap();
    assert!(
        message.contains("### Job `test (ubuntu-latest, node 20)`, failed at: Run npm test"),
        "{message}"
    );
    assert!(
        message.contains("Expected: \"Hello, Octocat!\""),
        "{message}"
    );
    client.close().await;

    let comments = github.comments("octo-org/octo-repo", 2);
    assert_eq!(comments.len(), 1, "one PR comment");
    assert!(
        comments[0].body.contains(conversation),
        "the comment links the conversation"
    );
    stack.start_kill().unwrap();
}
