//! The node's counters and gauges, rendered in Prometheus' text format at `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct Metrics {
    pub connections: AtomicI64,
    pub sessions: AtomicI64,
    pub events_appended: AtomicU64,
    pub user_actions: AtomicU64,
    pub actions_refused: AtomicU64,
    pub actions_rate_limited: AtomicU64,
    pub llm_requests: AtomicU64,
    pub llm_failures: AtomicU64,
    pub conversations_started: AtomicU64,
    pub conversations_stopped: AtomicU64,
    pub evictions: AtomicU64,
    pub leases_lost: AtomicU64,
    pub sweeps: AtomicU64,
    pub state_changes_published: AtomicU64,
    pub state_changes_dropped: AtomicU64,
    pub runtime_events_relayed: AtomicU64,
    pub runtime_events_malformed: AtomicU64,
    pub runtime_failures: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Moves a gauge by `delta`.
pub(crate) fn add(gauge: &AtomicI64, delta: i64) {
    gauge.fetch_add(delta, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn render(&self) -> String {
        let gauges = [
            (
                "node_socket_connections",
                "Socket.IO clients connected to this node",
                &self.connections,
            ),
            (
                "node_sessions",
                "conversations whose agent loop runs on this node",
                &self.sessions,
            ),
        ];
        let counters = [
            (
                "node_events_appended_total",
                "events this node appended",
                &self.events_appended,
            ),
            (
                "node_user_actions_total",
                "user actions accepted by this node",
                &self.user_actions,
            ),
            (
                "node_actions_refused_total",
                "user actions refused as malformed",
                &self.actions_refused,
            ),
            (
                "node_actions_rate_limited_total",
                "user actions refused by the per-user rate",
                &self.actions_rate_limited,
            ),
            (
                "node_panics_total",
                "panics caught (each ended only the task that raised it)",
                &crate::panics::PANICS,
            ),
            (
                "node_llm_requests_total",
                "chat-completion calls made",
                &self.llm_requests,
            ),
            (
                "node_llm_failures_total",
                "chat-completion calls that failed after retries",
                &self.llm_failures,
            ),
            (
                "node_conversations_started_total",
                "agent loops started on this node",
                &self.conversations_started,
            ),
            (
                "node_conversations_stopped_total",
                "agent loops stopped on this node",
                &self.conversations_stopped,
            ),
            (
                "node_evictions_total",
                "conversations evicted by the per-user limit",
                &self.evictions,
            ),
            (
                "node_leases_lost_total",
                "agent loops ended because their lease was lost",
                &self.leases_lost,
            ),
            ("node_sweeps_total", "idle sweeps completed", &self.sweeps),
            (
                "node_state_changes_published_total",
                "ConversationStateChanged events published",
                &self.state_changes_published,
            ),
            (
                "node_state_changes_dropped_total",
                "ConversationStateChanged events dropped (queue full or bus down)",
                &self.state_changes_dropped,
            ),
            (
                "node_runtime_events_relayed_total",
                "agent-server events stored and fanned out",
                &self.runtime_events_relayed,
            ),
            (
                "node_runtime_events_malformed_total",
                "agent-server events skipped as unreadable",
                &self.runtime_events_malformed,
            ),
            (
                "node_runtime_failures_total",
                "conversations put in error because their agent runtime stayed unreachable",
                &self.runtime_failures,
            ),
        ];
        let mut out = String::new();
        for (name, help, gauge) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", gauge.load(Ordering::Relaxed));
        }
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        out
    }
}
