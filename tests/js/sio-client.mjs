// Socket.IO clients driven by a test: the official `socket.io-client`, one process per client, or
// many in one process (`--many`, for benchmarks whose clients would otherwise be as many processes).
// Usage: node sio-client.mjs <base url> '<options JSON>'
//        node sio-client.mjs --many   (then {client, open: {url, options}} per client on stdin)
//   options: {query: {...}, auth_token?, header_token?, transports?, reconnection?}
//   transports: "websocket" (the default here), "polling", or "default" (the library's own default:
//   long-polling first, then the upgrade to WebSocket, as a browser connects).
//   With reconnection, the client reconnects by itself (the library's own backoff) and, like the
//   original web client, asks for the events after the latest one it received (`latest_event_id`).
// Prints one JSON line per happening: {type: "connect"|"connect_error"|"disconnect"|"oh_event"|"ack", ...}
// (with `--many`, each also names its `client`).
// Reads one JSON command per line: {emit, data?, ack_id?} (with ack_id, waits for the server's ack and
// prints {type: "ack", ack_id, data}; without data, emits the event alone), {transport: true} (prints
// {type: "transport", name}), or {close: true} (with `--many`, each names its `client`).
import { io } from "socket.io-client";
import readline from "node:readline";

const write = (line) => process.stdout.write(JSON.stringify(line) + "\n");

// Connects one client; returns what runs its commands.
function startClient(url, options, out) {
  const transports = { websocket: ["websocket"], polling: ["polling"] }[options.transports ?? "websocket"];
  const socket = io(url, {
    query: options.query ?? {},
    auth: options.auth_token ? { token: options.auth_token } : undefined,
    extraHeaders: options.header_token ? { Authorization: `Bearer ${options.header_token}` } : undefined,
    // "default" passes no `transports` at all: exactly what a browser's `io(url)` does.
    ...(transports ? { transports } : {}),
    reconnection: options.reconnection ?? false,
    // Each client its own connection, as separate browsers have (the library shares one per URL).
    forceNew: true,
  });

  // The query of every later handshake (reconnections) is the manager's: it follows the stored events.
  const followLatest = (event) => {
    const latest = Number(socket.io.opts.query.latest_event_id ?? -1);
    if (Number.isInteger(event?.id) && event.id > latest) {
      socket.io.opts.query.latest_event_id = String(event.id);
    }
  };

  socket.on("connect", () =>
    out({ type: "connect", id: socket.id, transport: socket.io.engine?.transport?.name }),
  );
  socket.on("connect_error", (error) => out({ type: "connect_error", message: error.message }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
  socket.on("oh_event", (data) => {
    followLatest(data);
    out({ type: "oh_event", data });
  });

  const run = async (command) => {
    if (command.close) {
      socket.close();
      return;
    }
    if (command.transport) {
      out({ type: "transport", name: socket.io.engine?.transport?.name ?? null });
      return;
    }
    const args = "data" in command ? [command.data] : [];
    if (command.ack_id === undefined) {
      socket.emit(command.emit, ...args);
      return;
    }
    try {
      const reply = await socket.timeout(30000).emitWithAck(command.emit, ...args);
      out({ type: "ack", ack_id: command.ack_id, data: reply });
    } catch (error) {
      out({ type: "ack", ack_id: command.ack_id, error: String(error) });
    }
  };
  return { run, close: () => socket.close() };
}

const clients = new Map();
let single;
if (process.argv[2] === "--many") {
  // Clients come and go by command; what each prints names it.
} else {
  const [url, rawOptions] = process.argv.slice(2);
  single = startClient(url, JSON.parse(rawOptions ?? "{}"), write);
}

readline
  .createInterface({ input: process.stdin })
  .on("line", (line) => {
    const command = JSON.parse(line);
    if (single) {
      single.run(command);
      return;
    }
    const id = command.client;
    if (command.open) {
      clients.set(id, startClient(command.open.url, command.open.options ?? {}, (happened) =>
        write({ ...happened, client: id }),
      ));
      return;
    }
    clients.get(id)?.run(command);
    if (command.close) clients.delete(id);
  })
  .on("close", () => {
    single?.close();
    for (const client of clients.values()) client.close();
    process.exit(0);
  });
