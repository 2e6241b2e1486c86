//! `ProactiveConversationRequested`: the event published once per red (repository, PR, head commit),
//! then once per later change of the commit's outcome (a re-run that went green, a failure after it).
//! Its JSON schema is `events/schemas/ProactiveConversationRequested.schema.json`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{GroupKey, HeadSha, RepoId, TriggerId, UserId};
use super::repository::Repository;
use super::workflow::{Outcome, WorkflowRunGroup};

/// EventBridge `source` of the events the webhook publishes.
pub const TRIGGER_SOURCE: &str = "proactive.github";
/// EventBridge `detail-type` of a trigger.
pub const TRIGGER_DETAIL_TYPE: &str = "ProactiveConversationRequested";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProactiveConversationRequested {
    pub trigger_id: TriggerId,
    pub repository: TriggerRepository,
    pub pull_request: TriggerPullRequest,
    pub installation_id: Option<u64>,
    pub user_id: UserId,
    pub failed_runs: Vec<FailedRun>,
    pub run_count: usize,
    pub decided_at: DateTime<Utc>,
    /// 0 for the trigger, then one more per follow-up. Consumers deduplicate on
    /// (`trigger_id`, `sequence`).
    #[serde(default)]
    pub sequence: u32,
    /// `red` (the trigger, or a failure after a re-run went green) or `green` (the runs pass now).
    #[serde(default)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRepository {
    pub id: RepoId,
    pub owner: String,
    pub name: String,
}

impl TriggerRepository {
    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerPullRequest {
    pub number: u64,
    pub head_sha: HeadSha,
    pub head_branch: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRun {
    pub id: u64,
    pub name: String,
    pub conclusion: String,
    pub url: String,
}

impl ProactiveConversationRequested {
    /// The event of a group just decided (red: the trigger, or a follow-up at `group.sequence`), for
    /// `user` (the product user linked to the run's actor).
    pub fn for_group(
        group: &WorkflowRunGroup,
        repository: &Repository,
        head_branch: &str,
        user: &UserId,
        decided_at: DateTime<Utc>,
    ) -> Self {
        Self {
            trigger_id: group.key.trigger_id(),
            repository: TriggerRepository {
                id: repository.id.clone(),
                owner: repository.owner.clone(),
                name: repository.name.clone(),
            },
            pull_request: TriggerPullRequest {
                number: group.key.pr_number,
                head_sha: group.key.head_sha.clone(),
                head_branch: head_branch.to_owned(),
            },
            installation_id: repository.installation_id,
            user_id: user.clone(),
            failed_runs: group
                .failed_runs()
                .map(|run| FailedRun {
                    id: run.id,
                    name: run.name.clone(),
                    conclusion: run.conclusion.clone().unwrap_or_default(),
                    url: run.html_url.clone(),
                })
                .collect(),
            run_count: group.runs.len(),
            decided_at,
            sequence: group.sequence,
            outcome: group.outcome().unwrap_or_default(),
        }
    }

    pub fn group_key(&self) -> GroupKey {
        GroupKey {
            repo_id: self.repository.id.clone(),
            pr_number: self.pull_request.number,
            head_sha: self.pull_request.head_sha.clone(),
        }
    }
}

/// A decided trigger not yet known to be published: written atomically with the `triggered` state,
/// cleared after a successful publish, re-published by the cleanup function when it lingers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub event: ProactiveConversationRequested,
}

impl OutboxEntry {
    pub fn key(&self) -> GroupKey {
        self.event.group_key()
    }
}
