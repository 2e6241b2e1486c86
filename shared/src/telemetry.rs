//! Logging: `tracing` with JSON lines on standard error, filtered by `RUST_LOG` (default `info`). Log fields carry ids,
//! never secrets, tokens or e-mail addresses.

use tracing_subscriber::EnvFilter;

/// Installs the global JSON subscriber; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
