//! Workflow runs and the group of runs of one pull request's head commit, with the trigger decision.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{GroupKey, UserId};

/// What the trigger decision needs to know of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Pending,
    Completed,
    Failure,
}

impl RunStatus {
    /// Maps GitHub's `conclusion`; conclusions GitHub adds later count as completed, not failed.
    pub fn from_conclusion(conclusion: Option<&str>) -> Self {
        match conclusion {
            None => Self::Pending,
            Some("failure" | "timed_out" | "startup_failure") => Self::Failure,
            Some(_) => Self::Completed,
        }
    }

    fn progress(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Completed | Self::Failure => 1,
        }
    }
}

/// One workflow run as the group records it. A re-run keeps `id` and raises `attempt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub id: u64,
    pub name: String,
    pub status: RunStatus,
    /// GitHub's raw conclusion, kept for the event (`None` while pending).
    pub conclusion: Option<String>,
    pub attempt: u32,
    pub updated_at: DateTime<Utc>,
    pub html_url: String,
}

impl WorkflowRun {
    /// Whether `self` is a newer state of the same run than `other`: by attempt, then update time,
    /// then status progress, so that an older or repeated delivery never overwrites a newer one.
    pub fn supersedes(&self, other: &Self) -> bool {
        let order = (self.attempt, self.updated_at, self.status.progress()).cmp(&(
            other.attempt,
            other.updated_at,
            other.status.progress(),
        ));
        order == Ordering::Greater
    }
}

/// What a finished commit's runs say: one failed (`red`), or all passed (`green`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Red,
    Green,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    Collecting,
    Triggered,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collecting => "collecting",
            Self::Triggered => "triggered",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "collecting" => Some(Self::Collecting),
            "triggered" => Some(Self::Triggered),
            _ => None,
        }
    }
}

/// Every known run of one (repository, PR, head commit), and whether it has triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRunGroup {
    pub key: GroupKey,
    pub runs: BTreeMap<u64, WorkflowRun>,
    /// Raised by one on every write; writes are conditional on the version read.
    pub version: u64,
    pub state: GroupState,
    pub created_at: DateTime<Utc>,
    pub last_updated_at: DateTime<Utc>,
    /// What a trigger decided without a delivery (the reconciliation) needs: whose conversation it
    /// starts and the PR's branch, as the last delivery recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_branch: Option<String>,
    /// After the trigger: the outcome the last published event told (red at the trigger), and that
    /// event's sequence (0: the trigger). A re-run that changes the outcome is the next event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub told: Option<Outcome>,
    #[serde(default)]
    pub sequence: u32,
}

/// Counts of a group's runs, for answers and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunTally {
    pub total: usize,
    pub pending: usize,
    pub failed: usize,
}

impl WorkflowRunGroup {
    pub fn new(key: GroupKey, now: DateTime<Utc>) -> Self {
        Self {
            key,
            runs: BTreeMap::new(),
            version: 0,
            state: GroupState::Collecting,
            created_at: now,
            last_updated_at: now,
            owner: None,
            head_branch: None,
            told: None,
            sequence: 0,
        }
    }

    /// Records `run` unless the group already holds the same or a newer state of it.
    /// Returns whether anything changed.
    pub fn merge(&mut self, run: WorkflowRun) -> bool {
        match self.runs.get(&run.id) {
            Some(known) if !run.supersedes(known) => false,
            _ => {
                self.runs.insert(run.id, run);
                true
            }
        }
    }

    pub fn tally(&self) -> RunTally {
        let count = |status| self.runs.values().filter(|r| r.status == status).count();
        RunTally {
            total: self.runs.len(),
            pending: count(RunStatus::Pending),
            failed: count(RunStatus::Failure),
        }
    }

    /// The decision: every run finished and at least one failed.
    pub fn is_red(&self) -> bool {
        let tally = self.tally();
        tally.pending == 0 && tally.failed > 0
    }

    /// The outcome of the commit's runs once none is pending.
    pub fn outcome(&self) -> Option<Outcome> {
        let tally = self.tally();
        match (tally.pending, tally.failed) {
            (0, 0) => Some(Outcome::Green),
            (0, _) => Some(Outcome::Red),
            _ => None,
        }
    }

    pub fn failed_runs(&self) -> impl Iterator<Item = &WorkflowRun> {
        self.runs
            .values()
            .filter(|r| r.status == RunStatus::Failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{HeadSha, RepoId};
    use chrono::TimeZone;

    fn run(id: u64, conclusion: Option<&str>, attempt: u32, minute: u32) -> WorkflowRun {
        WorkflowRun {
            id,
            name: format!("wf-{id}"),
            status: RunStatus::from_conclusion(conclusion),
            conclusion: conclusion.map(str::to_owned),
            attempt,
            updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
            html_url: String::new(),
        }
    }

    fn group() -> WorkflowRunGroup {
        let key = GroupKey {
            repo_id: RepoId::from_github(1),
            pr_number: 7,
            head_sha: HeadSha::parse(&"b".repeat(40)).unwrap(),
        };
        WorkflowRunGroup::new(key, Utc::now())
    }

    #[test]
    fn conclusions_map_to_statuses_with_unknown_ones_completed() {
        assert_eq!(RunStatus::from_conclusion(None), RunStatus::Pending);
        for failed in ["failure", "timed_out", "startup_failure"] {
            assert_eq!(RunStatus::from_conclusion(Some(failed)), RunStatus::Failure);
        }
        for done in [
            "success",
            "neutral",
            "skipped",
            "cancelled",
            "stale",
            "action_required",
            "new",
        ] {
            assert_eq!(RunStatus::from_conclusion(Some(done)), RunStatus::Completed);
        }
    }

    #[test]
    fn an_older_delivery_never_overwrites_a_newer_state() {
        let mut g = group();
        assert!(g.merge(run(1, Some("failure"), 1, 5)));
        assert!(!g.merge(run(1, None, 1, 3)), "older pending delivery");
        assert!(!g.merge(run(1, None, 1, 5)), "same time, less progress");
        assert!(!g.merge(run(1, Some("failure"), 1, 5)), "exact duplicate");
        assert!(
            g.merge(run(1, None, 2, 1)),
            "a re-run's first delivery wins"
        );
        assert_eq!(g.runs[&1].status, RunStatus::Pending);
    }

    #[test]
    fn red_only_when_nothing_pending_and_something_failed() {
        let mut g = group();
        g.merge(run(1, Some("failure"), 1, 1));
        g.merge(run(2, None, 1, 1));
        assert!(!g.is_red());
        g.merge(run(2, Some("success"), 1, 2));
        assert!(g.is_red());
        let mut green = group();
        green.merge(run(1, Some("success"), 1, 1));
        assert!(!green.is_red());
    }
}
