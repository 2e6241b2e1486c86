//! The floor of the P6/P7 benchmarks: a bare socketioxide server on a current-thread runtime, with the
//! library's defaults, answering the node's flow without any cluster or storage. A client joins the room
//! of its connect query's `conversation_id`; an `oh_user_action` is acknowledged `{success: true}` and
//! answered with an agent `oh_event` quoting its content, to the sender.
//! With `--lean`, it applies the two known memory fixes the node applies too (owned request parts, a
//! small WebSocket read buffer): the floor of P7.
//! Usage: `sio-echo PORT [--lean]` (port 0 picks one); prints `listening <port>` once it accepts
//! connections.

use axum::Router;
use conversation_node::{WS_READ_BUFFER, own_request_parts};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

async fn on_connect(socket: SocketRef) {
    let query = socket
        .req_parts()
        .uri
        .query()
        .unwrap_or_default()
        .to_owned();
    let room = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("conversation_id="))
        .unwrap_or_default()
        .to_owned();
    socket.join(room);
    socket.on("oh_user_action", on_user_action);
}

async fn on_user_action(socket: SocketRef, Data(action): Data<Value>, ack: AckSender) {
    let content = action["args"]["content"].as_str().unwrap_or_default();
    let answer = json!({
        "source": "agent",
        "action": "message",
        "args": { "content": format!("[bare socketioxide] \"{content}\"") },
    });
    let _ = ack.send(&json!({ "success": true }));
    let _ = socket.emit("oh_event", &answer);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    let lean = std::env::args().any(|arg| arg == "--lean");
    let mut builder = SocketIo::builder();
    if lean {
        builder = builder.ws_read_buffer_size(WS_READ_BUFFER);
    }
    let (layer, io) = builder.build_layer();
    io.ns("/", on_connect);
    let mut app = Router::new().layer(layer);
    if lean {
        app = app.layer(axum::middleware::map_request(own_request_parts));
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening {}", listener.local_addr()?.port());
    axum::serve(listener, app).await?;
    Ok(())
}
