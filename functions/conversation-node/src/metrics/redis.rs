//! The Redis command latency, by command (`conversation_node_redis_command_seconds{command="XRANGE"}`):
//! the Redis adapter times every command the node's coordination sends and tells this hook. The
//! adapter names commands with interned `&'static str`s, so that a label set is made without
//! allocating.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shared::adapters::redis::{CommandTimer, CommandTiming};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
}

type ByCommand = Family<CommandLabels, Histogram, fn() -> Histogram>;

#[derive(Clone)]
pub(super) struct CommandLatency(ByCommand);

impl Default for CommandLatency {
    fn default() -> Self {
        Self(Family::new_with_constructor(super::seconds_histogram))
    }
}

impl CommandLatency {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "redis_command",
            "Redis commands the node's coordination sent, from sending to the reply, by command",
            Unit::Seconds,
            self.0.clone(),
        );
    }

    pub(super) fn timing(&self) -> CommandTiming {
        CommandTiming::new(Arc::new(self.clone()))
    }
}

impl CommandTimer for CommandLatency {
    fn observe(&self, command: &'static str, elapsed: Duration) {
        self.0
            .get_or_create(&CommandLabels { command })
            .observe(elapsed.as_secs_f64());
    }
}
