// The relay benchmark's two clients in one process: an official socket.io-client on the conversation
// node, and a WebSocket straight on the agent-server's event stream of the same remote conversation.
// Each agent-server event is timed on arrival at both, against the time the agent-server stamped it
// with (the same machine's clock): the server sends to its subscribers one after another, so arrival
// order alone would credit the relay with the server's own fan-out. The node's copy carries the
// agent-server's id and timestamp as `remote`.
//
// Usage: node relay-watch.mjs '<config JSON>'
//   {node_url, conversation_id, token, server_url, api_key, remote_id, message, until}
//   connects both, prints {type: "ready"}, waits for a "go" line on standard input, sends `message` as
//   the user through the node, and once the node delivers the agent's message `until` prints
//   {type: "done", events: [[stamped_us, direct_us, through_node_us], ...]} (microseconds since the
//   epoch, one row per event both clients saw).
// Errors end the process with {type: "error", message} and exit code 1.
import { io } from "socket.io-client";
import WebSocket from "ws";
import readline from "node:readline";

const config = JSON.parse(process.argv[2]);
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const fail = (message) => {
  out({ type: "error", message: String(message) });
  process.exit(1);
};
const now = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
// The agent-server's naive ISO timestamps are its local time: UTC here.
const stamped = (timestamp) => {
  const [whole, fraction = ""] = timestamp.split(".");
  return Date.parse(`${whole}Z`) * 1000 + Number(fraction.padEnd(6, "0").slice(0, 6));
};

const direct = new Map();
const throughNode = new Map();

const stream = new URL(`/sockets/events/${config.remote_id}`, config.server_url);
stream.protocol = stream.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(stream, { headers: { "X-Session-API-Key": config.api_key } });
ws.on("message", (data) => {
  const event = JSON.parse(data.toString());
  if (event.id && !direct.has(event.id)) direct.set(event.id, [stamped(event.timestamp), now()]);
});
ws.on("error", fail);

const socket = io(config.node_url, {
  query: { conversation_id: config.conversation_id },
  auth: { token: config.token },
  transports: ["websocket"],
  reconnection: false,
});
socket.on("connect_error", (error) => fail(`connect: ${error.message}`));
socket.on("oh_event", (event) => {
  const remote = event.remote?.id;
  if (remote && !throughNode.has(remote)) throughNode.set(remote, now());
  if (event.source === "agent" && event.action === "message" && event.args?.content === config.until) {
    const events = [];
    for (const [id, at] of throughNode) {
      if (direct.has(id)) events.push([...direct.get(id), at]);
    }
    out({ type: "done", events });
    process.exit(0);
  }
});

await Promise.all([
  new Promise((resolve) => ws.once("open", resolve)),
  new Promise((resolve) => socket.once("connect", resolve)),
]);
out({ type: "ready" });
const input = readline.createInterface({ input: process.stdin });
input.once("line", () => {
  socket.emit("oh_user_action", { action: "message", args: { content: config.message } }, () => {});
});
input.once("close", () => process.exit(0));
