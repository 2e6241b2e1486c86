//! The node's metrics: counters, gauges and latency histograms (prometheus-client), one registry per
//! node (tests run several nodes in one process, so nothing is global but the panic count), rendered in
//! Prometheus' text format at `GET /metrics` on the metrics listener. Every name starts with
//! `conversation_node_` (not `node_`, node_exporter's). A map:
//! - this file: [`NodeMetrics`], what the node's parts count and time;
//! - `redis`: the Redis command latency, fed by the Redis adapter's hook.

mod redis;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shared::adapters::redis::CommandTiming;

/// The content type of [`NodeMetrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Seconds, on a 1-2-5 scale from 0.1 ms (a store append, a Redis command) to 30 s (a slow turn):
/// each bar (a 1 ms append, a 5 ms relay, a 2 s takeover) is a bucket's edge.
const SECONDS_BUCKETS: [f64; 18] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0, 20.0, 30.0,
];

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

/// A node's metrics and the registry that renders them. Made before the node's ports, so that an
/// adapter can report into it ([`NodeMetrics::redis_timing`]).
pub struct NodeMetrics {
    pub(crate) connections: Gauge,
    pub(crate) running_conversations: Gauge,
    pub(crate) events_appended: Counter,
    pub(crate) user_actions: Counter,
    pub(crate) actions_refused: Counter,
    pub(crate) actions_rate_limited: Counter,
    pub(crate) llm_requests: Counter,
    pub(crate) llm_failures: Counter,
    pub(crate) conversations_started: Counter,
    pub(crate) conversations_stopped: Counter,
    pub(crate) evictions: Counter,
    pub(crate) leases_lost: Counter,
    pub(crate) sweeps: Counter,
    pub(crate) state_changes_published: Counter,
    pub(crate) state_changes_dropped: Counter,
    pub(crate) runtime_events_relayed: Counter,
    pub(crate) runtime_events_malformed: Counter,
    pub(crate) runtime_failures: Counter,
    /// From the loop taking a user's message (or a start) to the agent's turn recorded finished.
    pub(crate) agent_turn: Histogram,
    /// From an agent-server event read off its socket to it stored and published.
    pub(crate) runtime_event_relay: Histogram,
    /// From a conversation taken off the hand-over list to its loop resumed on this node.
    pub(crate) takeover: Histogram,
    /// One event store append (each attempt).
    pub(crate) store_append: Histogram,
    redis_commands: redis::CommandLatency,
    registry: Registry,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        let mut r = Registrar(Registry::with_prefix("conversation_node"));
        // Process-wide (the panic hook is): every node of the process shows the same count.
        r.0.register(
            "panics",
            "panics caught (each ended only the task that raised it)",
            crate::panics::PANICS.clone(),
        );
        let redis_commands = redis::CommandLatency::default();
        redis_commands.register(&mut r.0);
        Self {
            connections: r.gauge(
                "socket_connections",
                "Socket.IO clients connected to this node",
            ),
            running_conversations: r.gauge(
                "running_conversations",
                "conversations whose agent loop runs on this node",
            ),
            events_appended: r.counter("events_appended", "events this node appended"),
            user_actions: r.counter("user_actions", "user actions accepted by this node"),
            actions_refused: r.counter("actions_refused", "user actions refused as malformed"),
            actions_rate_limited: r.counter(
                "actions_rate_limited",
                "user actions refused by the per-user rate",
            ),
            llm_requests: r.counter("llm_requests", "chat-completion calls made"),
            llm_failures: r.counter(
                "llm_failures",
                "chat-completion calls that failed after retries",
            ),
            conversations_started: r.counter(
                "conversations_started",
                "agent loops started on this node",
            ),
            conversations_stopped: r.counter(
                "conversations_stopped",
                "agent loops stopped on this node",
            ),
            evictions: r.counter("evictions", "conversations evicted by the per-user limit"),
            leases_lost: r.counter(
                "leases_lost",
                "agent loops ended because their lease was lost",
            ),
            sweeps: r.counter("sweeps", "idle sweeps completed"),
            state_changes_published: r.counter(
                "state_changes_published",
                "ConversationStateChanged events published",
            ),
            state_changes_dropped: r.counter(
                "state_changes_dropped",
                "ConversationStateChanged events dropped (queue full or bus down)",
            ),
            runtime_events_relayed: r.counter(
                "runtime_events_relayed",
                "agent-server events stored and fanned out",
            ),
            runtime_events_malformed: r.counter(
                "runtime_events_malformed",
                "agent-server events skipped as unreadable",
            ),
            runtime_failures: r.counter(
                "runtime_failures",
                "conversations put in error because their agent runtime stayed unreachable",
            ),
            agent_turn: r.seconds(
                "agent_turn",
                "from the agent loop taking a user's message (or a start) to the agent's turn finished",
            ),
            runtime_event_relay: r.seconds(
                "runtime_event_relay",
                "from an agent-server event received to it appended and published",
            ),
            takeover: r.seconds(
                "takeover",
                "from a conversation taken off the hand-over list to its agent loop resumed here",
            ),
            store_append: r.seconds("store_append", "event store appends (each attempt)"),
            redis_commands,
            registry: r.0,
        }
    }
}

impl NodeMetrics {
    /// The hook the Redis adapter times its commands with (`RedisSettings::timing`).
    pub fn redis_timing(&self) -> CommandTiming {
        self.redis_commands.timing()
    }

    /// Every metric in Prometheus' text format.
    pub(crate) fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Makes metrics and registers them (a counter's `_total` and a histogram's `_seconds` are added by
/// the encoder).
struct Registrar(Registry);

impl Registrar {
    fn counter(&mut self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        self.0.register(name, help, counter.clone());
        counter
    }

    fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::default();
        self.0.register(name, help, gauge.clone());
        gauge
    }

    fn seconds(&mut self, name: &str, help: &str) -> Histogram {
        let histogram = seconds_histogram();
        self.0
            .register_with_unit(name, help, Unit::Seconds, histogram.clone());
        histogram
    }
}
