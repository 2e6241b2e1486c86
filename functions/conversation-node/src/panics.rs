//! A panic ends only the task that raised it: the release profile unwinds, tokio turns a task's panic
//! into its `JoinError`, and this hook logs it as one JSON line and counts it
//! (`conversation_node_panics_total`) instead of printing to standard error. Installed by the node's binaries, not by the library.

use std::panic::PanicHookInfo;
use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;

/// Panics since the process started.
pub(crate) static PANICS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Replaces the default panic hook with one that logs and counts.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.inc();
        tracing::error!(
            location = info.location().map(ToString::to_string),
            reason = reason(info),
            "a task panicked: it was stopped, the node goes on"
        );
    }));
}

fn reason<'a>(info: &'a PanicHookInfo<'_>) -> &'a str {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
