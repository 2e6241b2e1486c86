//! The real `conversation-node` binary as a child process, configured by its environment (DynamoDB on the
//! moto server of `TEST_AWS_ENDPOINT_URL`): it serves, answers a conversation, and on SIGTERM closes its
//! Socket.IO clients and stops cleanly; its logs carry no token or secret. And hostile input, as an
//! attacker would send it, is refused before it costs anything, without a panic.

use std::process::Stdio;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::config::Credentials;
use e2e::socketio::{ConnectOptions, SocketClient, message_action};
use serde_json::{Value, json};
use shared::adapters::dynamo::create_tables;
use shared::config::TableNames;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
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

/// A token with these claims, signed with the node's secret.
fn signed(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn token(user: &str) -> String {
    signed(json!({ "sub": user, "exp": now() + 600 }))
}

/// The binary running as a child process, its log lines collected.
struct NodeProcess {
    child: Child,
    base: String,
    /// Its metrics listener (`/ready`, `/metrics`).
    metrics_base: String,
    logs: mpsc::UnboundedReceiver<String>,
    /// Every log line read so far.
    seen: Vec<String>,
}

impl NodeProcess {
    /// Starts the binary with `env` (and nothing else of this process's environment but `PATH`), and
    /// waits until it serves.
    async fn spawn(env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_conversation-node"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("JWT_HS256_SECRET", SECRET)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let (sender, logs) = mpsc::unbounded_channel::<String>();
        let stderr = child.stderr.take().expect("its logs");
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = sender.send(line);
            }
        });
        let mut node = Self {
            child,
            base: String::new(),
            metrics_base: String::new(),
            logs,
            seen: Vec::new(),
        };
        let (mut address, mut metrics_address) = (None, None);
        // It listens first, and serves once its ports are ready.
        loop {
            let line = tokio::time::timeout(PATIENCE, node.logs.recv())
                .await
                .expect("the node logs where it listens, then that it started")
                .expect("the node is running");
            node.seen.push(line.clone());
            let parsed: Value = serde_json::from_str(&line).expect("logs are JSON lines");
            match parsed["fields"]["message"].as_str() {
                Some("listening") => {
                    address = parsed["fields"]["address"].as_str().map(str::to_owned);
                    metrics_address = parsed["fields"]["metrics_address"]
                        .as_str()
                        .map(str::to_owned);
                }
                Some("node started") => break,
                _ => {}
            }
        }
        let address = address.expect("it logged where it listens");
        let port = address.rsplit(':').next().unwrap();
        node.base = format!("http://127.0.0.1:{port}");
        let metrics_address = metrics_address.expect("it logged where its metrics are");
        node.metrics_base = format!("http://{metrics_address}");
        node
    }

    /// Every log line so far.
    fn logs(&mut self) -> &[String] {
        while let Ok(line) = self.logs.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// The process's resident memory, in bytes.
    fn rss(&self) -> u64 {
        let pid = self.child.id().expect("a running child");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
        let kilobytes: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kilobytes * 1024
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_and_stops_on_sigterm() {
    let endpoint = moto_endpoint();
    let tables = fresh_tables(&endpoint).await;
    let mut node = NodeProcess::spawn(&[
        ("INTERNAL_API_KEY", "binary-test-internal-key"),
        ("AWS_ENDPOINT_URL", &endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("PROACTIVE_TABLE", &tables.proactive),
        ("CONVERSATIONS_TABLE", &tables.conversations),
        ("EVENTS_TABLE", &tables.events),
        ("SHUTDOWN_GRACE", "5"),
    ])
    .await;
    let base = node.base.clone();
    let http = reqwest::Client::new();

    let ready = format!("{}/ready", node.metrics_base);
    let ready: Value = serde_json::from_str(&text(&http, &ready).await).unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    let alice = token("alice");
    let id = create_conversation(
        &http,
        &base,
        &alice,
        json!({ "initial_user_msg": "hello binary" }),
    )
    .await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let page = events_page(&http, &base, &alice, &id, 0).await;
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

    let pid = node.child.id().expect("a running child").to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().await;
    assert!(signalled.expect("kill runs").success());
    let status = tokio::time::timeout(PATIENCE, node.child.wait())
        .await
        .expect("the node exits after SIGTERM")
        .expect("an exit status");
    assert!(status.success(), "{status}");
    loop {
        if next_type(&mut socket_lines).await == "disconnect" {
            break;
        }
    }
    let seen = node.logs();
    assert!(
        seen.iter().any(|line| line.contains("node stopped")),
        "{seen:#?}"
    );
    for line in seen {
        assert!(
            !line.contains(&alice) && !line.contains(SECRET),
            "a secret in the logs: {line}"
        );
    }
}

/// Opens a raw engine.io WebSocket (no Socket.IO connect, no token) and sends one text message of
/// `bytes`; returns whether the node closed the connection without answering it.
async fn oversized_websocket_message(base: &str, bytes: usize) -> bool {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("a WebSocket handshake");
    let open = socket.next().await.expect("the open packet").expect("read");
    assert!(
        open.to_text().unwrap_or_default().starts_with('0'),
        "{open:?}"
    );
    let mut message = String::with_capacity(bytes);
    message.push('4');
    message.extend(std::iter::repeat_n('a', bytes - 1));
    // The node may close while the message is still being written.
    let _ = socket.send(Message::text(message)).await;
    loop {
        match tokio::time::timeout(PATIENCE, socket.next()).await {
            Err(_) => return false,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return true,
            // Pings (engine.io's "2") may come first; anything else is an answer.
            Ok(Some(Ok(Message::Text(text)))) if text.as_str() == "2" => {}
            Ok(Some(Ok(_))) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_before_it_costs_anything_and_nothing_panics() {
    let data = tempfile::tempdir().expect("a data dir");
    let mut node = NodeProcess::spawn(&[
        ("DATA_DIR", data.path().to_str().unwrap()),
        ("INTERNAL_API_KEY", "binary-test-internal-key"),
        ("JWT_LEEWAY", "0"),
        ("ACTION_RATE_PER_SECOND", "2"),
        ("ACTION_RATE_BURST", "10"),
    ])
    .await;
    let base = node.base.clone();
    let http = reqwest::Client::new();

    // The internal endpoint checks its key before it reads the body: a malformed one, and one announced
    // at 3 MB of which only the start is ever sent, are answered 401 at once.
    for (announced, sent) in [(9, "{not json"), (3 << 20, "{\"detail\": ")] {
        let (status, reason) = answer_without_the_body(&base, announced, sent).await;
        assert_eq!(status, 401, "{reason}");
        assert!(reason.contains("\"unauthorized\""), "{reason}");
    }

    // Tokens: not yet valid, a blank user, an oversized user.
    let refused_tokens = [
        signed(json!({ "sub": "alice", "exp": now() + 600, "nbf": now() + 300 })),
        signed(json!({ "sub": "   ", "exp": now() + 600 })),
        signed(json!({ "sub": "u".repeat(256), "exp": now() + 600 })),
        signed(json!({ "sub": "u".repeat(10 * 1024), "exp": now() + 600 })),
    ];
    for refused in &refused_tokens {
        let answer = http
            .get(format!("{base}/api/conversations"))
            .bearer_auth(refused)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    let alice = token("alice");
    let id = create_conversation(&http, &base, &alice, json!({})).await;
    let mut refused = SocketClient::start(
        &base,
        &ConnectOptions::conversation(&id, &refused_tokens[0], None),
    );
    assert_eq!(refused.connection().await, Err("invalid token".to_owned()));

    // Client-chosen numbers at and past the integer limits are refused at the edge.
    for latest in [
        "9223372036854775807",
        "9223372036854775806",
        "9223372036854775808",
        "18446744073709551616",
        "9007199254740992",
        "-2",
        "1.5",
    ] {
        let mut options = ConnectOptions::conversation(&id, &alice, None);
        options
            .query
            .insert("latest_event_id".into(), json!(latest));
        let mut client = SocketClient::start(&base, &options);
        assert_eq!(
            client.connection().await,
            Err("invalid latest_event_id".to_owned()),
            "latest_event_id={latest}"
        );
    }
    let answer = http
        .get(format!(
            "{base}/api/conversations/{id}/events?start_id=18446744073709551616"
        ))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let at_the_limit = SocketClient::connect(
        &base,
        &ConnectOptions::conversation(&id, &alice, Some((1 << 53) - 1)),
    )
    .await;
    at_the_limit.close().await;

    // Oversized messages: the connection is closed, the memory stays bounded.
    let before = node.rss();
    let closed =
        futures::future::join_all((0..20).map(|_| oversized_websocket_message(&base, 15 << 20)))
            .await;
    assert!(closed.iter().all(|closed| *closed), "{closed:?}");
    let grown = node.rss().saturating_sub(before);
    println!("RSS growth after 20 messages of 15 MB: {} KB", grown / 1024);
    // Buffered whole, 20 messages of 15 MB are 300 MB; refused at their frame header, next to none.
    assert!(grown < 32 << 20, "the node grew by {grown} bytes");
    let handshake = text(&http, &format!("{base}/socket.io/?EIO=4&transport=polling")).await;
    let open: Value = serde_json::from_str(&handshake[1..]).expect("an open packet");
    assert_eq!(open["maxPayload"], json!(conversation_node::MAX_PAYLOAD));
    let sid = open["sid"].as_str().unwrap();
    let polled = http
        .post(format!(
            "{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
        ))
        .body(format!("4{}", "a".repeat(15 << 20)))
        .send()
        .await;
    match polled {
        Ok(answer) => assert!(!answer.status().is_success(), "{}", answer.status()),
        // The node answered and closed before the whole body was written: refused all the same
        // (the node still serving is shown below).
        Err(error) => assert!(error.is_request() && !error.is_connect(), "{error}"),
    }

    // Malformed actions are answered.
    let mut client =
        SocketClient::connect(&base, &ConnectOptions::conversation(&id, &alice, None)).await;
    let no_data = client.emit_without_data_with_ack("oh_user_action").await;
    assert_eq!(no_data["success"], false, "{no_data}");
    let mut nested = json!(0);
    for _ in 0..200 {
        nested = json!([nested]);
    }
    let deep = client.emit_with_ack("oh_user_action", nested).await;
    assert_eq!(deep["success"], false, "{deep}");
    assert!(
        deep["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed action")
    );
    client.emit("oh_user_action", json!("not an object")).await;
    let error = client
        .next_matching_event(|event| event["error"] == true)
        .await;
    assert!(error["message"].as_str().is_some(), "{error}");

    // A flood past the user's rate is refused, counted, and not recorded.
    let mut accepted = 0;
    let mut limited = 0;
    for n in 0..60 {
        let ack = client
            .emit_with_ack("oh_user_action", message_action(&format!("flood {n}")))
            .await;
        if ack["success"] == true {
            accepted += 1;
        } else {
            let reason = ack["message"].as_str().unwrap_or_default();
            assert!(reason.starts_with("too many actions"), "{ack}");
            limited += 1;
        }
    }
    assert!(
        limited > 0 && accepted > 0,
        "{accepted} accepted, {limited} limited"
    );
    let metrics = text(&http, &format!("{}/metrics", node.metrics_base)).await;
    let counted = metric(&metrics, "conversation_node_actions_rate_limited_total");
    // The refused actions before the flood (no data, too deep, not an object) were within the rate.
    assert_eq!(counted, limited, "{metrics}");
    let recorded = wait_for_user_messages(&http, &base, &alice, &id, accepted).await;
    assert_eq!(recorded, accepted, "only the accepted actions are recorded");

    // A socket whose token expires is told and closed.
    let brief = signed(json!({ "sub": "alice", "exp": now() + 4 }));
    let mut expiring =
        SocketClient::connect(&base, &ConnectOptions::conversation(&id, &brief, None)).await;
    let told = expiring
        .next_matching_event(|event| event["error"] == true)
        .await;
    assert!(
        told["message"].as_str().unwrap().contains("token expired"),
        "{told}"
    );
    assert_eq!(expiring.disconnection().await, "io server disconnect");

    assert_eq!(metric(&metrics, "conversation_node_panics_total"), 0);
    let panics: Vec<_> = node
        .logs()
        .iter()
        .filter(|line| line.contains("panic"))
        .cloned()
        .collect();
    assert!(panics.is_empty(), "{panics:#?}");
}

/// Posts to the internal endpoint without a key, announcing a body of `announced` bytes and sending
/// only `sent`; returns the status and the body of the answer that comes without waiting for the rest.
async fn answer_without_the_body(base: &str, announced: usize, sent: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let head = format!(
        "POST /internal/proactive HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {announced}\r\n\r\n{sent}"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    // The answer's head and its small JSON body; the connection may stay open for the rest.
    while !String::from_utf8_lossy(&answer).contains('}') {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("an answer without the rest of the body")
            .expect("read");
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP answer: {answer}"));
    (status, answer)
}

/// Creates a conversation over REST; returns its id.
async fn create_conversation(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: Value,
) -> String {
    let created: Value = http
        .post(format!("{base}/api/conversations"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["conversation_id"]
        .as_str()
        .expect("created")
        .to_owned()
}

/// A page of up to 100 stored events from `start` on.
async fn events_page(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    start: u64,
) -> Value {
    http.get(format!(
        "{base}/api/conversations/{id}/events?start_id={start}&limit=100"
    ))
    .bearer_auth(token)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap()
}

/// The body of a GET, as text.
async fn text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// A counter's value in Prometheus text.
fn metric(text: &str, name: &str) -> usize {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// The number of user messages stored once `expected` of them are (or after the patience).
async fn wait_for_user_messages(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    expected: usize,
) -> usize {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut count = 0;
        let mut start = 0;
        loop {
            let page = events_page(http, base, token, id, start).await;
            let events = page["events"].as_array().unwrap();
            count += events
                .iter()
                .filter(|e| e["source"] == "user" && e["action"] == "message")
                .count();
            match events.last() {
                Some(last) if page["has_more"] == true => start = last["id"].as_u64().unwrap() + 1,
                _ => break,
            }
        }
        if count >= expected || tokio::time::Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
