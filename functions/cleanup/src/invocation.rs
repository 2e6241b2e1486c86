//! What one invocation may change about a pass, read from the Lambda event or the command line.
//!
//! The Lambda accepts both shapes a schedule sends: the classic scheduled event of an EventBridge rule
//! (`{"detail-type": "Scheduled Event", "source": "aws.events", "detail": {...}}`, overrides in
//! `detail`) and EventBridge Scheduler's input, delivered as is (`{"dry_run": true}`, or `{}`).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CleanupOptions;

/// Overrides of the configured options; every field is optional and unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Parser)]
#[serde(default)]
#[command(
    name = "cleanup",
    about = "Deletes workflow-run groups past retention, re-publishes stuck triggers, reaps dead \
             cluster nodes and stops conversations no live node runs, once.",
    long_about = "Deletes workflow-run groups past retention, re-publishes stuck triggers, reaps dead \
                  cluster nodes and stops conversations no live node runs, once. Configuration comes from the same environment variables as the Lambda function; \
                  the summary is printed on standard output as JSON."
)]
pub struct Overrides {
    /// Count what would be deleted and re-published; change nothing.
    #[arg(long)]
    #[serde(deserialize_with = "true_if_set")]
    pub dry_run: bool,
    /// Keep workflow-run groups updated within this many days (default: PROACTIVE_RETENTION_DAYS).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_days: Option<u64>,
    /// Re-publish triggers decided more than this many minutes ago (default: 5).
    #[arg(long, value_name = "MINUTES")]
    pub outbox_grace_minutes: Option<u64>,
    /// Reap cluster nodes silent for more than this many minutes (default: 10).
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub node_silence_minutes: Option<u64>,
    /// Stop conversations recorded as running that no live node runs and that were last updated more
    /// than this many minutes ago (default: 10).
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub running_grace_minutes: Option<u64>,
    /// Only re-check stuck workflow-run groups with GitHub and re-publish stuck triggers (the
    /// frequent schedule's pass).
    #[arg(long)]
    #[serde(deserialize_with = "true_if_set")]
    pub reconcile_only: bool,
    /// Re-check groups still collecting this many minutes after their last update (default:
    /// PROACTIVE_RECONCILE_AFTER_MINUTES, 10).
    #[arg(long, value_name = "MINUTES")]
    pub reconcile_after_minutes: Option<u64>,
}

fn true_if_set<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(false))
}

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("the event is neither a scheduled event nor cleanup options: {0}")]
    Unreadable(serde_json::Error),
    #[error("retention_days must be at least 1: 0 would delete every workflow-run group")]
    ZeroRetention,
    #[error("{0} must be at least 1: 0 would take live nodes and conversations for dead")]
    ZeroClusterThreshold(&'static str),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Invocation {
    Scheduled(EventBridgeEvent<Overrides>),
    Plain(Overrides),
}

impl Overrides {
    /// Reads a Lambda event: a scheduled event (overrides in its `detail`), the overrides themselves,
    /// or nothing (`null`).
    pub fn from_event(event: Value) -> Result<Self, InvocationError> {
        if event.is_null() {
            return Ok(Self::default());
        }
        let overrides = match serde_json::from_value(event).map_err(InvocationError::Unreadable)? {
            Invocation::Scheduled(scheduled) => scheduled.detail,
            Invocation::Plain(overrides) => overrides,
        };
        if overrides.retention_days == Some(0) {
            return Err(InvocationError::ZeroRetention);
        }
        for (name, value) in [
            ("node_silence_minutes", overrides.node_silence_minutes),
            ("running_grace_minutes", overrides.running_grace_minutes),
        ] {
            if value == Some(0) {
                return Err(InvocationError::ZeroClusterThreshold(name));
            }
        }
        Ok(overrides)
    }

    /// The configured options with these overrides applied. A dry run asked for by the configuration
    /// stays a dry run whatever the invocation says.
    pub fn apply(&self, configured: &CleanupOptions) -> CleanupOptions {
        let mut options = configured.clone();
        options.dry_run |= self.dry_run;
        if let Some(days) = self.retention_days {
            options = options.with_retention_days(days);
        }
        let minutes = |minutes: u64| std::time::Duration::from_secs(minutes * 60);
        if let Some(grace) = self.outbox_grace_minutes {
            options.outbox_grace = minutes(grace);
        }
        if let Some(silence) = self.node_silence_minutes {
            options.node_silence = minutes(silence);
        }
        if let Some(grace) = self.running_grace_minutes {
            options.running_grace = minutes(grace);
        }
        if let Some(after) = self.reconcile_after_minutes {
            options.reconcile_after = minutes(after);
        }
        options.reconcile_only |= self.reconcile_only;
        options
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample(name: &str) -> Value {
        let path = format!("{}/../../events/cleanup/{name}", env!("CARGO_MANIFEST_DIR"));
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_slice(&raw).expect("a JSON sample")
    }

    #[test]
    fn the_classic_scheduled_event_runs_with_the_configured_options() {
        let overrides = Overrides::from_event(sample("scheduled.json")).unwrap();
        assert_eq!(overrides, Overrides::default());
        let configured = CleanupOptions::default().with_retention_days(12);
        assert_eq!(overrides.apply(&configured), configured);
    }

    #[test]
    fn scheduler_input_and_scheduled_detail_both_carry_overrides() {
        let expected = Overrides {
            dry_run: true,
            retention_days: Some(7),
            outbox_grace_minutes: Some(15),
            node_silence_minutes: Some(20),
            running_grace_minutes: Some(30),
            ..Overrides::default()
        };
        assert_eq!(
            Overrides::from_event(sample("scheduler-dry-run.json")).unwrap(),
            expected
        );
        let mut scheduled = sample("scheduled.json");
        scheduled["detail"] = json!({
            "dry_run": true,
            "retention_days": 7,
            "outbox_grace_minutes": 15,
            "node_silence_minutes": 20,
            "running_grace_minutes": 30,
        });
        assert_eq!(Overrides::from_event(scheduled).unwrap(), expected);

        let options = expected.apply(&CleanupOptions::default());
        assert!(options.dry_run);
        assert_eq!(options.retention_days(), 7);
        assert_eq!(options.outbox_grace.as_secs(), 15 * 60);
        assert_eq!(options.node_silence.as_secs(), 20 * 60);
        assert_eq!(options.running_grace.as_secs(), 30 * 60);
    }

    #[test]
    fn the_frequent_schedules_input_asks_for_the_reconciliation_only() {
        let overrides = Overrides::from_event(sample("scheduler-reconcile.json")).unwrap();
        let options = overrides.apply(&CleanupOptions::default());
        assert!(options.reconcile_only);
        assert_eq!(
            options.reconcile_after.as_secs(),
            10 * 60,
            "the configured wait"
        );
        let sooner =
            Overrides::from_event(json!({"reconcile_only": true, "reconcile_after_minutes": 0}))
                .unwrap()
                .apply(&CleanupOptions::default());
        assert!(sooner.reconcile_after.is_zero());
    }

    #[test]
    fn empty_input_changes_nothing_and_a_configured_dry_run_stays() {
        for event in [
            Value::Null,
            json!({}),
            json!({"dry_run": null, "unknown": 1}),
        ] {
            assert_eq!(Overrides::from_event(event).unwrap(), Overrides::default());
        }
        let configured = CleanupOptions {
            dry_run: true,
            ..CleanupOptions::default()
        };
        let explicit = Overrides::from_event(json!({"dry_run": false})).unwrap();
        assert!(explicit.apply(&configured).dry_run);
    }

    #[test]
    fn unreadable_input_and_zero_retention_are_refused() {
        for event in [
            json!([1, 2]),
            json!("run"),
            json!({"retention_days": "many"}),
        ] {
            assert!(matches!(
                Overrides::from_event(event),
                Err(InvocationError::Unreadable(_))
            ));
        }
        assert!(matches!(
            Overrides::from_event(json!({"retention_days": 0})),
            Err(InvocationError::ZeroRetention)
        ));
        for name in ["node_silence_minutes", "running_grace_minutes"] {
            assert!(matches!(
                Overrides::from_event(json!({name: 0})),
                Err(InvocationError::ZeroClusterThreshold(refused)) if refused == name
            ));
        }
    }

    #[test]
    fn the_command_line_gives_the_same_overrides() {
        let parsed = Overrides::try_parse_from([
            "cleanup",
            "--dry-run",
            "--retention-days",
            "9",
            "--running-grace-minutes",
            "3",
        ])
        .unwrap();
        assert_eq!(
            parsed,
            Overrides {
                dry_run: true,
                retention_days: Some(9),
                running_grace_minutes: Some(3),
                ..Overrides::default()
            }
        );
        for zero in [
            "--retention-days",
            "--node-silence-minutes",
            "--running-grace-minutes",
        ] {
            assert!(Overrides::try_parse_from(["cleanup", zero, "0"]).is_err());
        }
        assert!(Overrides::try_parse_from(["cleanup", "--retention"]).is_err());
    }
}
