//! The webhook's answers: a status and a JSON body, never a secret or a stack trace.

use http::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAnswer {
    pub status: StatusCode,
    pub body: Value,
}

impl WebhookAnswer {
    pub fn new(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }

    pub fn error(status: StatusCode, reason: impl Into<String>) -> Self {
        Self::new(status, json!({ "error": reason.into() }))
    }

    pub fn ignored(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::ACCEPTED, json!({ "ignored": reason.into() }))
    }

    /// Ignored for a reason a caller can match on (`code`), explained in `reason`.
    pub fn skipped(code: &str, reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::ACCEPTED,
            json!({ "ignored": code, "reason": reason.into() }),
        )
    }

    pub fn duplicate() -> Self {
        Self::new(StatusCode::OK, json!({ "duplicate": true }))
    }

    pub fn unavailable(what: &str) -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{what} unavailable, retry the delivery"),
        )
    }

    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}
