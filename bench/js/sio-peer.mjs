// The node.js peer of the P5-P7 benchmarks: socket.io with `@socket.io/redis-adapter`, the conversation
// node's flow without storage, exactly as the python-socketio peer (`bench/py/sio_peer.py`) does it.
// Several of these servers share one Redis; server `index` of `count` owns the conversations `c<k>` with
// `k % count == index`. One user action:
// 1. a client on any server emits `oh_user_action` `{action: "message", args: {content}}` with an ack;
// 2. that server publishes `{conversation_id, content}` on the owner's channel `<prefix>:owner:<index>`
//    (one PUBLISH), then acknowledges `{success: true}`;
// 3. the owner, subscribed to its channel, answers `io.to(conversation_id).emit("oh_event", answer)`,
//    which the Redis adapter publishes to every server;
// 4. each server emits the answer to its clients in that room, among them the sender.
// Usage: node sio-peer.mjs <port> <redis url> <prefix> <index> <count>
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";

const [port, redisUrl, prefix, index, count] = process.argv.slice(2);
const ownerOf = (conversation) => Number(conversation.slice(1)) % Number(count);
const answer = (content) => ({
  source: "agent",
  action: "message",
  args: { content: `[node.js peer] I received your message: "${content}".` },
});

const publisher = createClient({ url: redisUrl });
const adapterSubscriber = publisher.duplicate();
const ownerSubscriber = publisher.duplicate();
await Promise.all([publisher.connect(), adapterSubscriber.connect(), ownerSubscriber.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, { adapter: createAdapter(publisher, adapterSubscriber, { key: prefix }) });

io.on("connection", (socket) => {
  const conversation = String(socket.handshake.query.conversation_id ?? "");
  socket.join(conversation);
  socket.on("oh_user_action", async (action, ack) => {
    const message = JSON.stringify({ conversation_id: conversation, content: action.args.content });
    await publisher.publish(`${prefix}:owner:${ownerOf(conversation)}`, message);
    if (typeof ack === "function") ack({ success: true });
  });
});

// Subscribed before listening, so that no action for this owner is published unheard.
await ownerSubscriber.subscribe(`${prefix}:owner:${index}`, (raw) => {
  const action = JSON.parse(raw);
  io.to(action.conversation_id).emit("oh_event", answer(action.content));
});
httpServer.listen(Number(port), "127.0.0.1");
