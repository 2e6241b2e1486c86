//! Logging: `tracing` with JSON lines on standard error, filtered by `RUST_LOG`; without it, by the level
//! Lambda sets from the function's `LoggingConfig.ApplicationLogLevel` (`AWS_LAMBDA_LOG_LEVEL`), else
//! `info`. Log fields carry ids, never secrets, tokens or e-mail addresses.

use tracing_subscriber::EnvFilter;

/// Installs the global JSON subscriber; a second call is a no-op.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(default_level(
            std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        ))
    });
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The filter for Lambda's application log level (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`;
/// `tracing` has no level above `error`); `info` when it is unset or unknown.
fn default_level(lambda_level: Option<&str>) -> &'static str {
    match lambda_level
        .map(|level| level.trim().to_ascii_uppercase())
        .as_deref()
    {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR" | "FATAL") => "error",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::default_level;

    #[test]
    fn lambdas_application_log_levels_map_to_filters() {
        let cases = [
            (Some("TRACE"), "trace"),
            (Some("DEBUG"), "debug"),
            (Some("INFO"), "info"),
            (Some("warn"), "warn"),
            (Some("ERROR"), "error"),
            (Some("FATAL"), "error"),
            (Some("LOUD"), "info"),
            (None, "info"),
        ];
        for (lambda_level, filter) in cases {
            assert_eq!(default_level(lambda_level), filter, "{lambda_level:?}");
        }
    }
}
