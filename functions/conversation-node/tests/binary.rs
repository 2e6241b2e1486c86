//! The real `conversation-node` binary as a child process, configured by its environment (DynamoDB on the
//! moto server of `TEST_AWS_ENDPOINT_URL`): it serves, answers a conversation, and on SIGTERM closes its
//! Socket.IO clients and stops cleanly; its logs carry no token or secret.

use std::process::Stdio;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use serde_json::{Value, json};
use shared::adapters::dynamo::create_tables;
use shared::config::TableNames;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

const SECRET: &str = "binary-test-jwt-secret";
/// The official Socket.IO client's driver script, shared with the e2e tests.
const SOCKET_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/js/sio-client.mjs");
const PATIENCE: Duration = Duration::from_secs(30);

fn moto_endpoint() -> String {
    std::env::var("TEST_AWS_ENDPOINT_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .expect("TEST_AWS_ENDPOINT_URL is not set: run `make test`, which starts a moto server")
}

async fn fresh_tables(endpoint: &str) -> TableNames {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .load()
        .await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let tables = TableNames {
        proactive: format!("proactive-{suffix}"),
        conversations: format!("conversations-{suffix}"),
        events: format!("conversation-events-{suffix}"),
    };
    create_tables(&aws_sdk_dynamodb::Client::new(&config), &tables)
        .await
        .expect("tables on moto");
    tables
}

fn token(user: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": user, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_on_sigterm() {
    let endpoint = moto_endpoint();
    let tables = fresh_tables(&endpoint).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_conversation-node"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("JWT_HS256_SECRET", SECRET)
        .env("INTERNAL_API_KEY", "binary-test-internal-key")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("PROACTIVE_TABLE", &tables.proactive)
        .env("CONVERSATIONS_TABLE", &tables.conversations)
        .env("EVENTS_TABLE", &tables.events)
        .env("SHUTDOWN_GRACE", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let (sender, mut logs) = mpsc::unbounded_channel::<String>();
    let stderr = child.stderr.take().expect("its logs");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = sender.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut address = None;
    // It listens first, and serves once its ports are ready.
    loop {
        let line = tokio::time::timeout(PATIENCE, logs.recv())
            .await
            .expect("the node logs where it listens, then that it started")
            .expect("the node is running");
        seen.push(line.clone());
        let parsed: Value = serde_json::from_str(&line).expect("logs are JSON lines");
        match parsed["fields"]["message"].as_str() {
            Some("listening") => address = parsed["fields"]["address"].as_str().map(str::to_owned),
            Some("node started") => break,
            _ => {}
        }
    }
    let address = address.expect("it logged where it listens");
    let port = address.rsplit(':').next().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    let ready: Value = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({ "status": "ready" }));
    let alice = token("alice");
    let created: Value = http
        .post(format!("{base}/api/conversations"))
        .bearer_auth(&alice)
        .json(&json!({ "initial_user_msg": "hello binary" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["conversation_id"]
        .as_str()
        .expect("created")
        .to_owned();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let page: Value = http
            .get(format!("{base}/api/conversations/{id}/events?limit=100"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let answered = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "agent" && e["action"] == "message");
        if answered {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A connected Socket.IO client is disconnected by the stop.
    let options = json!({ "query": { "conversation_id": id }, "auth_token": alice }).to_string();
    let mut socket = Command::new("node")
        .args([SOCKET_CLIENT, &base, &options])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("`node` runs the Socket.IO client");
    let mut socket_lines = BufReader::new(socket.stdout.take().unwrap()).lines();
    let next_type = async |lines: &mut tokio::io::Lines<_>| -> String {
        let line: String = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the client prints")
            .expect("readable")
            .expect("a line");
        let parsed: Value = serde_json::from_str(&line).unwrap();
        parsed["type"].as_str().unwrap().to_owned()
    };
    assert_eq!(next_type(&mut socket_lines).await, "connect");

    let pid = child.id().expect("a running child").to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(signalled.expect("kill runs").success());
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the node exits after SIGTERM")
        .expect("an exit status");
    assert!(status.success(), "{status}");
    loop {
        if next_type(&mut socket_lines).await == "disconnect" {
            break;
        }
    }
    while let Ok(line) = logs.try_recv() {
        seen.push(line);
    }
    assert!(
        seen.iter().any(|line| line.contains("node stopped")),
        "{seen:#?}"
    );
    for line in &seen {
        assert!(
            !line.contains(&alice) && !line.contains(SECRET),
            "a secret in the logs: {line}"
        );
    }
}
