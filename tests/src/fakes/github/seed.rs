//! The seed file of the `fake-github` binary (`events/github-seed.json`): the repositories it serves
//! and the tokens it accepts.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FakeJob, FakePullRequest, FakeRun};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    /// Tokens accepted as `Bearer`/`token`; none (and no App) means anonymous calls are answered.
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub repositories: Vec<SeedRepository>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRepository {
    /// `owner/name`.
    pub full_name: String,
    /// GitHub's repository id (the webhook payloads' `repository.id`).
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub installation_id: Option<u64>,
    /// Login -> `admin`, `maintain`, `write`, `triage`, `read` or `none`.
    #[serde(default)]
    pub collaborators: BTreeMap<String, String>,
    #[serde(default)]
    pub pull_requests: Vec<FakePullRequest>,
    #[serde(default)]
    pub workflow_runs: Vec<FakeRun>,
    /// The runs' jobs, with their logs.
    #[serde(default)]
    pub jobs: Vec<FakeJob>,
}

impl Seed {
    pub fn load(path: &Path) -> Result<Self, String> {
        Self::load_at(path, None)
    }

    /// The seed of `path`, its samples' head commit replaced by `commit` when given (a local
    /// repository's, which the fake then serves as the repository's clone).
    pub fn load_at(path: &Path, commit: Option<&str>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = match commit {
            Some(commit) => crate::webhook_samples::at_commit(&text, commit),
            None => text,
        };
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
