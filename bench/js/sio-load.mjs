// The Socket.IO load generator of the P5-P7 benchmarks: many official `socket.io-client` clients in one
// process, each on its own WebSocket (`forceNew`). The same script drives the conversation node and the
// peers, which all speak the node's flow: connect with query `conversation_id` and auth `{token}`, emit
// `oh_user_action` `{action: "message", args: {content}}` with an ack, and receive an `oh_event` whose
// `source` is "agent", `action` "message" and `args.content` quotes the content sent.
//
// Usage: node sio-load.mjs '<config JSON>'
//   {mode: "round_trips", clients: [{url, conversation_id, token}], rounds, duration_ms?, warmup}
//     connects every client, warms each up with `warmup` round trips, prints {type: "ready"}, waits for a
//     "go" line on standard input, then each client sends as soon as its previous action was answered,
//     until it made `rounds` round trips or `duration_ms` passed; prints {type: "done", latencies_us,
//     wall_ms, cpu_ms} (cpu_ms: this process's own user + system CPU over the window).
//   {mode: "idle", clients: [...], count, parallel}
//     holds `count` connections, spread over `clients` round-robin, at most `parallel` connecting at once;
//     prints {type: "ready", connected} and keeps them until standard input closes.
// Errors end the process with {type: "error", message} and exit code 1.
import { io } from "socket.io-client";
import readline from "node:readline";

const config = JSON.parse(process.argv[2]);
const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const fail = (message) => {
  out({ type: "error", message: String(message) });
  process.exit(1);
};
const ACK_TIMEOUT_MS = 30000;
// Content markers unique to this process: a conversation's replay of an earlier run's answers on
// connect cannot pass for an answer to this run's actions.
const RUN = `${process.pid}.${Date.now()}`;

function connect(target) {
  return new Promise((resolve, reject) => {
    const socket = io(target.url, {
      query: { conversation_id: target.conversation_id },
      auth: { token: target.token },
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => reject(new Error(`connect_error: ${error.message}`)));
  });
}

// One client that sends an action and waits for the agent's answer quoting it.
class Sender {
  constructor(socket, name) {
    this.socket = socket;
    this.name = name;
    this.sent = 0;
    this.waiting = null;
    socket.on("oh_event", (event) => {
      const content = event?.args?.content;
      if (this.waiting && event?.source === "agent" && event?.action === "message"
          && typeof content === "string" && content.includes(`"${this.waiting.marker}"`)) {
        const { resolve } = this.waiting;
        this.waiting = null;
        resolve();
      }
    });
    socket.on("disconnect", (reason) => fail(`${name} disconnected: ${reason}`));
  }

  // Microseconds from the emit to the answer (the ack must have said success as well).
  async roundTrip() {
    const marker = `${this.name}-${this.sent++}`;
    const answered = new Promise((resolve) => (this.waiting = { marker, resolve }));
    const started = process.hrtime.bigint();
    const acked = this.socket
      .timeout(ACK_TIMEOUT_MS)
      .emitWithAck("oh_user_action", { action: "message", args: { content: marker } });
    const timeout = new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`${marker} not answered`)), ACK_TIMEOUT_MS).unref());
    await Promise.race([answered, timeout]);
    const elapsed = Number(process.hrtime.bigint() - started) / 1000;
    const ack = await acked;
    if (ack?.success !== true) throw new Error(`${marker} acknowledged with ${JSON.stringify(ack)}`);
    return elapsed;
  }
}

function goSignal() {
  return new Promise((resolve) => {
    const lines = readline.createInterface({ input: process.stdin });
    lines.once("line", () => resolve());
  });
}

async function roundTrips() {
  const senders = await Promise.all(
    config.clients.map(async (target, index) => new Sender(await connect(target), `${RUN}-c${index}`)));
  await Promise.all(senders.map(async (sender) => {
    for (let i = 0; i < (config.warmup ?? 0); i++) await sender.roundTrip();
  }));
  out({ type: "ready", connected: senders.length });
  await goSignal();
  const cpuBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  const deadline = config.duration_ms ? Date.now() + config.duration_ms : Infinity;
  const latencies = [];
  await Promise.all(senders.map(async (sender) => {
    for (let i = 0; i < (config.rounds ?? Infinity) && Date.now() < deadline; i++) {
      latencies.push(Math.round(await sender.roundTrip()));
    }
  }));
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  const cpu = process.cpuUsage(cpuBefore);
  for (const sender of senders) sender.socket.off("disconnect").close();
  // Exits once the line is written: a pipe takes a long line in several writes.
  const done = { type: "done", latencies_us: latencies, wall_ms: wallMs, cpu_ms: (cpu.user + cpu.system) / 1000 };
  process.stdout.write(JSON.stringify(done) + "\n", () => process.exit(0));
}

async function idle() {
  const sockets = [];
  let next = 0;
  const worker = async () => {
    while (next < config.count) {
      const target = config.clients[next++ % config.clients.length];
      sockets.push(await connect(target));
    }
  };
  await Promise.all(Array.from({ length: config.parallel ?? 50 }, worker));
  for (const socket of sockets) socket.on("disconnect", (reason) => fail(`disconnected: ${reason}`));
  out({ type: "ready", connected: sockets.length });
  readline.createInterface({ input: process.stdin }).on("close", () => process.exit(0));
}

const modes = { round_trips: roundTrips, idle };
(modes[config.mode] ?? (() => fail(`unknown mode ${config.mode}`)))().catch(fail);
