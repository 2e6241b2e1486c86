//! Driving the official Socket.IO clients from a test: each [`SocketClient`] is a process running one of
//! them (or one of many in a [`ClientHost`] process, for benchmarks), `socket.io-client` from npm
//! (`node tests/js/sio-client.mjs`, the default) or `python-socketio` from PyPI
//! (`python3 tests/py/sio_client.py`), both speaking the same JSON lines: the test reads what happened
//! (connect, errors, `oh_event`s, acks, the transport) and writes what to emit.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

/// How long a test waits for something it expects from the server.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Which official client a [`SocketClient`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Official {
    /// `socket.io-client` (npm), what browsers run.
    JavaScript,
    /// `python-socketio` (PyPI), the original's own stack.
    Python,
}

impl Official {
    /// Starts the client's program with `args`, its stdin and stdout piped to the test.
    fn spawn(self, args: &[&str]) -> Child {
        self.command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("{self:?} client: {error} (the test stack installs both clients)")
            })
    }

    fn command(self) -> Command {
        let (program, script) = match self {
            Self::JavaScript => (
                "node",
                concat!(env!("CARGO_MANIFEST_DIR"), "/js/sio-client.mjs"),
            ),
            Self::Python => (
                "python3",
                concat!(env!("CARGO_MANIFEST_DIR"), "/py/sio_client.py"),
            ),
        };
        let mut command = Command::new(program);
        command.arg(script);
        command
    }
}

/// Which transports a client may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transports {
    /// WebSocket from the start (what most tests use: the quickest to connect).
    #[default]
    Websocket,
    /// The library's default: long-polling first, then the upgrade to WebSocket.
    Default,
    /// Long-polling alone.
    Polling,
}

/// How to connect.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectOptions {
    /// The connect query (`conversation_id`, `latest_event_id`, `session_api_key`).
    pub query: serde_json::Map<String, Value>,
    /// A bearer token sent in the auth payload.
    pub auth_token: Option<String>,
    /// A bearer token sent in the `Authorization` header.
    pub header_token: Option<String>,
    /// Reconnect by itself when the connection drops (the official client's automatic reconnection),
    /// asking for the events after the latest one it received, as the original web client does.
    pub reconnection: bool,
    pub transports: Transports,
}

impl ConnectOptions {
    /// The usual options: a conversation, a token in the auth payload, and the replay start if any.
    pub fn conversation(conversation_id: &str, token: &str, latest_event_id: Option<i64>) -> Self {
        let mut query = serde_json::Map::new();
        query.insert("conversation_id".into(), json!(conversation_id));
        if let Some(latest) = latest_event_id {
            query.insert("latest_event_id".into(), json!(latest.to_string()));
        }
        Self {
            query,
            auth_token: Some(token.to_owned()),
            header_token: None,
            reconnection: false,
            transports: Transports::Websocket,
        }
    }

    /// These options, on other transports.
    pub fn over(self, transports: Transports) -> Self {
        Self { transports, ..self }
    }

    /// These options, reconnecting by themselves.
    pub fn reconnecting(self) -> Self {
        Self {
            reconnection: true,
            ..self
        }
    }
}

/// One official client, connected (or refused) in its own process, or hosted with others in one
/// ([`ClientHost`]); gone when dropped.
pub struct SocketClient {
    link: Link,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Lines read while looking for something else, in order.
    unread: Vec<Value>,
    next_ack: u64,
}

/// Where a client's commands go.
enum Link {
    /// Its own process (boxed: a child process is large beside a host's handle).
    Process(Box<(Child, ChildStdin)>),
    /// A client among others in a [`ClientHost`]'s process.
    Hosted { host: Arc<ClientHost>, id: u64 },
}

impl Drop for SocketClient {
    fn drop(&mut self) {
        match &mut self.link {
            Link::Process(process) => {
                let _ = process.0.start_kill();
            }
            Link::Hosted { host, id } => host.forget(*id),
        }
    }
}

/// Reads a client process's JSON lines, each to `route` (which says where it goes; `false`: stop).
fn read_lines(stdout: ChildStdout, mut route: impl FnMut(Value) -> bool + Send + 'static) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            match serde_json::from_str(&line) {
                Ok(value) => {
                    if !route(value) {
                        return;
                    }
                }
                Err(_) => eprintln!("socket client printed a non-JSON line: {line}"),
            }
        }
    });
}

/// One `socket.io-client` process hosting many clients (`sio-client.mjs --many`): for benchmarks, whose
/// hundred clients as a hundred processes would load the machine more than the cluster they measure.
pub struct ClientHost {
    _child: Child,
    commands: mpsc::UnboundedSender<String>,
    routes: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>,
    next_id: AtomicU64,
}

impl ClientHost {
    pub fn start() -> Arc<Self> {
        let mut child = Official::JavaScript.spawn(&["--many"]);
        let mut stdin = child.stdin.take().expect("the host's stdin");
        let routes: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>> = Arc::default();
        let lines = Arc::clone(&routes);
        read_lines(
            child.stdout.take().expect("the host's stdout"),
            move |line| {
                let route = line["client"]
                    .as_u64()
                    .and_then(|id| lines.lock().unwrap().get(&id).cloned());
                if let Some(route) = route {
                    let _ = route.send(line);
                }
                true
            },
        );
        let (commands, mut written) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(line) = written.recv().await {
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    return;
                }
            }
        });
        Arc::new(Self {
            _child: child,
            commands,
            routes,
            next_id: AtomicU64::new(0),
        })
    }

    fn send(&self, id: u64, mut command: Value) {
        command["client"] = json!(id);
        let _ = self.commands.send(format!("{command}\n"));
    }

    /// Starts a client against `base_url` in this process.
    pub fn start_client(
        self: &Arc<Self>,
        base_url: &str,
        options: &ConnectOptions,
    ) -> SocketClient {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, lines) = mpsc::unbounded_channel();
        self.routes.lock().unwrap().insert(id, sender);
        self.send(
            id,
            json!({ "open": { "url": base_url, "options": options } }),
        );
        SocketClient {
            link: Link::Hosted {
                host: Arc::clone(self),
                id,
            },
            lines,
            unread: Vec::new(),
            next_ack: 0,
        }
    }

    /// Closes a client's connection and forgets it.
    fn forget(&self, id: u64) {
        self.send(id, json!({ "close": true }));
        self.routes.lock().unwrap().remove(&id);
    }
}

impl SocketClient {
    /// Starts the JavaScript client against `base_url` (the node's `http://host:port`).
    pub fn start(base_url: &str, options: &ConnectOptions) -> Self {
        Self::start_official(Official::JavaScript, base_url, options)
    }

    /// Starts one of the official clients against `base_url`.
    pub fn start_official(client: Official, base_url: &str, options: &ConnectOptions) -> Self {
        let options = serde_json::to_string(options).expect("options serialise");
        let mut child = client.spawn(&[base_url, &options]);
        let stdin = child.stdin.take().expect("the client's stdin");
        let (sender, lines) = mpsc::unbounded_channel();
        read_lines(
            child.stdout.take().expect("the client's stdout"),
            move |line| sender.send(line).is_ok(),
        );
        Self {
            link: Link::Process(Box::new((child, stdin))),
            lines,
            unread: Vec::new(),
            next_ack: 0,
        }
    }

    /// Starts the JavaScript client and waits for its connection; panics when refused.
    pub async fn connect(base_url: &str, options: &ConnectOptions) -> Self {
        Self::connect_official(Official::JavaScript, base_url, options).await
    }

    /// Starts one of the official clients and waits for its connection; panics when refused.
    pub async fn connect_official(
        client: Official,
        base_url: &str,
        options: &ConnectOptions,
    ) -> Self {
        let mut client = Self::start_official(client, base_url, options);
        if let Err(reason) = client.connection().await {
            panic!("the connection was refused: {reason}");
        }
        client
    }

    /// Waits for the outcome of the connection: `Ok` on connect, `Err(message)` on `connect_error`.
    pub async fn connection(&mut self) -> Result<(), String> {
        let line = self
            .next_matching(|line| {
                matches!(line["type"].as_str(), Some("connect" | "connect_error"))
            })
            .await;
        match line["type"].as_str() {
            Some("connect") => Ok(()),
            _ => Err(line["message"].as_str().unwrap_or_default().to_owned()),
        }
    }

    /// The next line satisfying `wanted`; other lines stay unread for later calls.
    async fn next_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(position) = self.unread.iter().position(&wanted) {
            return self.unread.remove(position);
        }
        loop {
            let line = match tokio::time::timeout(PATIENCE, self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => panic!("the socket client exited; unread: {:?}", self.unread),
                Err(_) => panic!(
                    "not received within {PATIENCE:?}; unread: {:?}",
                    self.unread
                ),
            };
            if wanted(&line) {
                return line;
            }
            self.unread.push(line);
        }
    }

    /// The next `oh_event` payload.
    pub async fn next_event(&mut self) -> Value {
        let line = self.next_matching(|line| line["type"] == "oh_event").await;
        line["data"].clone()
    }

    /// The next `oh_event` payload that `wanted` accepts; the others stay unread.
    pub async fn next_matching_event(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let line = self
            .next_matching(|line| line["type"] == "oh_event" && wanted(&line["data"]))
            .await;
        line["data"].clone()
    }

    /// The next `oh_event` payload, or `None` when none arrives within `wait`.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.next_event()).await.ok()
    }

    /// `oh_event` payloads up to and including the first one `last` accepts.
    pub async fn events_until(&mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next_event().await;
            let done = last(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Stored events (with an `id`) up to and including the one with id `last_id`.
    pub async fn events_through(&mut self, last_id: u64) -> Vec<Value> {
        self.events_until(|event| event["id"].as_u64() == Some(last_id))
            .await
    }

    async fn write(&mut self, command: Value) {
        match &mut self.link {
            Link::Process(process) => {
                let stdin = &mut process.1;
                let mut line = command.to_string();
                line.push('\n');
                stdin
                    .write_all(line.as_bytes())
                    .await
                    .expect("write to the socket client");
                stdin.flush().await.expect("flush the socket client");
            }
            Link::Hosted { host, id } => host.send(*id, command),
        }
    }

    /// Emits without asking for an acknowledgement.
    pub async fn emit(&mut self, event: &str, data: Value) {
        self.write(json!({ "emit": event, "data": data })).await;
    }

    /// Emits and waits for the server's acknowledgement.
    pub async fn emit_with_ack(&mut self, event: &str, data: Value) -> Value {
        self.acknowledged(json!({ "emit": event, "data": data }))
            .await
    }

    /// Emits the event with no data at all and waits for the server's acknowledgement.
    pub async fn emit_without_data_with_ack(&mut self, event: &str) -> Value {
        self.acknowledged(json!({ "emit": event })).await
    }

    async fn acknowledged(&mut self, mut command: Value) -> Value {
        self.next_ack += 1;
        let id = self.next_ack;
        command["ack_id"] = json!(id);
        self.write(command).await;
        let line = self
            .next_matching(|line| line["type"] == "ack" && line["ack_id"] == id)
            .await;
        assert!(line.get("error").is_none(), "no ack: {line}");
        line["data"].clone()
    }

    /// Waits for the server to end the connection; returns the reason the client saw.
    pub async fn disconnection(&mut self) -> String {
        let line = self
            .next_matching(|line| line["type"] == "disconnect")
            .await;
        line["reason"].as_str().unwrap_or_default().to_owned()
    }

    /// The transport the client uses now (`polling` or `websocket`).
    pub async fn transport(&mut self) -> String {
        self.write(json!({ "transport": true })).await;
        let line = self.next_matching(|line| line["type"] == "transport").await;
        line["name"].as_str().unwrap_or_default().to_owned()
    }

    /// Closes the connection from the client's side.
    pub async fn close(mut self) {
        self.write(json!({ "close": true })).await;
        let _ = self.disconnection().await;
    }
}

/// A user message action, as the original's clients send it.
pub fn message_action(content: &str) -> Value {
    json!({ "action": "message", "args": { "content": content } })
}

/// Whether an `oh_event` is an agent state change to `state`.
pub fn is_state(event: &Value, state: &str) -> bool {
    event["observation"] == "agent_state_changed" && event["extras"]["agent_state"] == state
}
