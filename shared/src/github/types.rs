//! The shapes of GitHub's answers the client reads (unknown fields ignored), mapped to domain types.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{FailedJob, Permission, PullRequest};
use crate::domain::{RunStatus, WorkflowRun};

/// A workflow run as GitHub describes it, both in `GET .../actions/runs` and in the `workflow_run`
/// webhook payload (the webhook reads it directly, so a missing required field is named in its 400).
#[derive(Debug, Clone, Deserialize)]
pub struct ApiWorkflowRun {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub head_sha: String,
    #[serde(default)]
    pub head_branch: Option<String>,
    /// `requested`, `queued`, `in_progress`, `completed`, `waiting`, `pending`, ...
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub run_attempt: Option<u32>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub html_url: String,
    /// The same-repository pull requests whose head is this run's commit (empty for fork PRs).
    #[serde(default)]
    pub pull_requests: Vec<ApiPullRequestRef>,
    #[serde(default)]
    pub triggering_actor: Option<ApiActor>,
    #[serde(default)]
    pub head_repository: Option<ApiHeadRepository>,
}

/// A GitHub account: its login, its id (what identity providers link), its kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiActor {
    pub login: String,
    /// Absent only in hand-made payloads; GitHub always sends it.
    #[serde(default)]
    pub id: Option<u64>,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

impl ApiActor {
    /// A GitHub App acting on its own (Dependabot, Renovate): `type: Bot`, or a `[bot]` login.
    pub fn is_bot(&self) -> bool {
        self.kind.as_deref() == Some("Bot") || self.login.ends_with("[bot]")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiPullRequestRef {
    pub number: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiHeadRepository {
    pub owner: ApiActor,
}

impl ApiWorkflowRun {
    /// Only a `completed` run has a meaningful conclusion; every other status is still pending.
    pub fn into_domain(self) -> WorkflowRun {
        let completed = self.status.as_deref() == Some("completed");
        self.into_domain_as(completed)
    }

    /// The run with its conclusion counted only when `completed` says the run is over; the webhook
    /// decides that from the delivery's action rather than the run's status.
    pub fn into_domain_as(self, completed: bool) -> WorkflowRun {
        let conclusion = if completed { self.conclusion } else { None };
        let name = [self.name, self.path]
            .into_iter()
            .flatten()
            .find(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("workflow run {}", self.id));
        WorkflowRun {
            id: self.id,
            name,
            status: RunStatus::from_conclusion(conclusion.as_deref()),
            conclusion,
            attempt: self.run_attempt.unwrap_or(1),
            updated_at: self.updated_at,
            html_url: self.html_url,
        }
    }
}

/// One page of `GET /repos/{o}/{r}/actions/runs/{id}/jobs`.
#[derive(Deserialize)]
pub(super) struct JobsPage {
    #[serde(default)]
    pub jobs: Vec<ApiJob>,
}

#[derive(Deserialize)]
pub(super) struct ApiJob {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub steps: Vec<ApiStep>,
}

#[derive(Deserialize)]
pub(super) struct ApiStep {
    pub name: String,
    #[serde(default)]
    pub conclusion: Option<String>,
}

/// Conclusions that make a job or step red.
const FAILED: [&str; 3] = ["failure", "timed_out", "startup_failure"];

impl ApiJob {
    /// The job as a [`FailedJob`] when it failed.
    pub(super) fn into_failed(self) -> Option<FailedJob> {
        let failed = |conclusion: &Option<String>| {
            conclusion.as_deref().is_some_and(|c| FAILED.contains(&c))
        };
        failed(&self.conclusion).then(|| FailedJob {
            id: self.id,
            name: self.name,
            url: self.html_url,
            failed_steps: self
                .steps
                .into_iter()
                .filter(|step| failed(&step.conclusion))
                .map(|step| step.name)
                .collect(),
        })
    }
}

/// One page of `GET /repos/{o}/{r}/actions/runs`.
#[derive(Deserialize)]
pub(super) struct RunsPage {
    #[serde(default)]
    pub workflow_runs: Vec<ApiWorkflowRun>,
}

#[derive(Deserialize)]
pub(super) struct ApiPullRequest {
    number: u64,
    state: String,
    head: ApiBranch,
    #[serde(default)]
    user: Option<ApiActor>,
}

#[derive(Deserialize)]
struct ApiBranch {
    sha: String,
    #[serde(rename = "ref")]
    name: String,
}

impl From<ApiPullRequest> for PullRequest {
    fn from(pr: ApiPullRequest) -> Self {
        Self {
            number: pr.number,
            open: pr.state == "open",
            head_sha: pr.head.sha,
            head_ref: pr.head.name,
            author: pr.user,
        }
    }
}

/// `GET .../collaborators/{user}/permission`: `permission` holds the legacy level (`maintain` shows
/// as `write`, `triage` as `read`); `role_name` the role, which may also be a custom role's name.
#[derive(Deserialize)]
pub(super) struct ApiPermission {
    permission: String,
    #[serde(default)]
    role_name: Option<String>,
}

impl ApiPermission {
    pub(super) fn level(&self) -> Permission {
        self.role_name
            .as_deref()
            .and_then(Permission::parse)
            .or_else(|| Permission::parse(&self.permission))
            .unwrap_or(Permission::None)
    }
}

#[derive(Deserialize)]
pub(super) struct ApiComment {
    pub id: u64,
    #[serde(default)]
    pub body: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(fields: serde_json::Value) -> WorkflowRun {
        let mut payload = json!({
            "id": 7,
            "head_sha": "0123456789abcdef0123456789abcdef01234567",
            "updated_at": "2026-01-01T00:00:00Z",
        });
        payload
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value::<ApiWorkflowRun>(payload)
            .unwrap()
            .into_domain()
    }

    #[test]
    fn only_completed_runs_count_their_conclusion() {
        let failed = run(json!({"status": "completed", "conclusion": "failure", "name": "CI"}));
        assert_eq!(
            (failed.status, failed.conclusion.as_deref()),
            (RunStatus::Failure, Some("failure"))
        );
        let early = run(json!({"status": "requested", "conclusion": "failure"}));
        assert_eq!((early.status, early.conclusion), (RunStatus::Pending, None));
        let new_kind = run(json!({"status": "completed", "conclusion": "brand_new_conclusion"}));
        assert_eq!(new_kind.status, RunStatus::Completed);
    }

    #[test]
    fn missing_fields_get_githubs_defaults() {
        let bare =
            run(json!({"name": "", "path": ".github/workflows/ci.yml", "unknown": {"x": 1}}));
        assert_eq!(
            (bare.attempt, bare.name.as_str()),
            (1, ".github/workflows/ci.yml")
        );
        assert_eq!(run(json!({"name": null})).name, "workflow run 7");
    }

    #[test]
    fn the_role_name_wins_over_the_legacy_permission() {
        let level =
            |p: serde_json::Value| serde_json::from_value::<ApiPermission>(p).unwrap().level();
        assert_eq!(
            level(json!({"permission": "write", "role_name": "maintain"})),
            Permission::Maintain
        );
        assert_eq!(
            level(json!({"permission": "read", "role_name": "triage"})),
            Permission::Triage
        );
        assert_eq!(
            level(json!({"permission": "write", "role_name": "custom-deployer"})),
            Permission::Write
        );
        assert_eq!(level(json!({"permission": "admin"})), Permission::Admin);
        assert_eq!(
            level(json!({"permission": "something-new"})),
            Permission::None
        );
    }
}

/// `GET /repos/{o}/{r}`: what the product reads of a repository.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ApiRepository {
    pub clone_url: String,
}
