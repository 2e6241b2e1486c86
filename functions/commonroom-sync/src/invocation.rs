//! The function's edges: what an invocation asks for (a scheduled event, EventBridge Scheduler's
//! configured input, or command-line arguments), and the stores it reads, chosen like the local stack
//! chooses them. The run itself is [`crate::sync::run_sync`].

use std::sync::Arc;

use crate::sync::{SYNC_NAME, SyncOptions};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use shared::config::StoreBackend;
use shared::ports::{ConversationStore, SyncStateStore};
use shared::wiring::{self, AwsContext, WiringError};

/// An invocation that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid invocation: {0}")]
pub struct InvalidInvocation(String);

/// What the command line asks for (`commonroom-sync --help`).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Parser)]
#[command(
    name = "commonroom-sync",
    about = "Syncs the conversations created after the stored watermark (or since the given time) to \
             Common Room. Configuration comes from the environment (see docs/sync.md)."
)]
pub struct Args {
    /// Start here instead of the stored watermark: an RFC 3339 time or YYYY-MM-DD.
    #[arg(long, conflicts_with = "minutes")]
    since: Option<String>,
    /// Start this many minutes ago instead of the stored watermark.
    #[arg(long)]
    minutes: Option<u32>,
    /// Send nothing and move no watermark.
    #[arg(long)]
    dry_run: bool,
}

impl Args {
    /// The run these arguments ask for, at `now`.
    pub fn options(self, now: DateTime<Utc>) -> Result<SyncOptions, InvalidInvocation> {
        Request {
            since: self.since,
            minutes: self.minutes,
            dry_run: Some(self.dry_run),
        }
        .options(now)
    }
}

/// Reads a Lambda event: the classic scheduled-event envelope (`detail-type: Scheduled Event`) runs with
/// the defaults; any other object is EventBridge Scheduler's configured input, whose optional `since`,
/// `minutes` and `dry_run` (or `dryRun`) override them; `null` is an empty input.
pub fn options_from_event(
    event: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<SyncOptions, InvalidInvocation> {
    if event.get("detail-type").is_some() || event.is_null() {
        return Ok(SyncOptions::default());
    }
    let request: Request = serde_json::from_value(event.clone())
        .map_err(|e| InvalidInvocation(format!("scheduler input: {e}")))?;
    request.options(now)
}

/// The overrides an invocation may carry.
#[derive(Debug, Default, Deserialize)]
struct Request {
    since: Option<String>,
    minutes: Option<u32>,
    #[serde(alias = "dryRun")]
    dry_run: Option<bool>,
}

impl Request {
    fn options(self, now: DateTime<Utc>) -> Result<SyncOptions, InvalidInvocation> {
        let since = match (self.since, self.minutes) {
            (Some(_), Some(_)) => {
                return Err(InvalidInvocation(
                    "give either since or minutes, not both".into(),
                ));
            }
            (Some(raw), None) => Some(parse_since(&raw)?),
            (None, Some(minutes)) => Some(now - chrono::Duration::minutes(i64::from(minutes))),
            (None, None) => None,
        };
        Ok(SyncOptions {
            since,
            dry_run: self.dry_run.unwrap_or(false),
        })
    }
}

fn parse_since(raw: &str) -> Result<DateTime<Utc>, InvalidInvocation> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            InvalidInvocation(format!(
                "since: expected an RFC 3339 time or YYYY-MM-DD, got {raw}"
            ))
        })
}

/// The conversation store and the sync state, chosen like the local stack chooses them.
pub async fn open_stores(
    backend: &StoreBackend,
) -> Result<(Arc<dyn ConversationStore>, Arc<dyn SyncStateStore>), WiringError> {
    let mut aws = AwsContext::default();
    let db = wiring::embedded_db(backend)?;
    let conversations = wiring::conversation_store(backend, db.as_ref(), &mut aws).await?;
    let state = wiring::sync_state_store(backend, db.as_ref(), &mut aws, SYNC_NAME).await?;
    Ok((conversations, state))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The options a command line asks for, or why it is refused.
    fn args(line: &str) -> Result<SyncOptions, String> {
        let words = std::iter::once("commonroom-sync").chain(line.split_whitespace());
        let parsed = Args::try_parse_from(words).map_err(|e| e.to_string())?;
        parsed.options(now()).map_err(|e| e.to_string())
    }

    #[test]
    fn command_line_overrides() {
        assert_eq!(args(""), Ok(SyncOptions::default()));
        assert_eq!(
            args("--minutes 30 --dry-run"),
            Ok(SyncOptions {
                since: Some(now() - chrono::Duration::minutes(30)),
                dry_run: true
            })
        );
        let options = args("--since=2024-04-30").expect("a date is a valid --since");
        assert_eq!(
            options.since.unwrap().to_rfc3339(),
            "2024-04-30T00:00:00+00:00"
        );
        assert!(args("--since 2024-04-30T10:00:00+02:00").is_ok());
        assert!(args("--help").unwrap_err().contains("--dry-run"));
        assert!(args("--since yesterday").is_err());
        assert!(args("--minutes").is_err());
        assert!(args("--minutes 5 --since 2024-04-30").is_err());
        assert!(args("--frobnicate").is_err());
    }

    #[test]
    fn events_in_both_envelopes() {
        let classic: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/commonroom-sync/scheduled.json"
        ))
        .unwrap();
        assert_eq!(
            options_from_event(&classic, now()),
            Ok(SyncOptions::default())
        );
        let input: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/commonroom-sync/scheduler-input.json"
        ))
        .unwrap();
        assert_eq!(
            options_from_event(&input, now()),
            Ok(SyncOptions::default())
        );
        assert_eq!(
            options_from_event(&json!({"minutes": 90, "dryRun": true}), now()),
            Ok(SyncOptions {
                since: Some(now() - chrono::Duration::minutes(90)),
                dry_run: true
            })
        );
        assert_eq!(
            options_from_event(&serde_json::Value::Null, now()),
            Ok(SyncOptions::default())
        );
        assert!(options_from_event(&json!({"minutes": "many"}), now()).is_err());
    }
}
