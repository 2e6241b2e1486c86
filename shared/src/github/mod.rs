//! The GitHub REST client: App (JWT -> installation token, cached) or token auth, workflow runs of a
//! commit (all pages), collaborator permission, pull requests, and one PR comment found by a hidden marker.
//!
//! SKELETON: signatures fixed; bodies to be written (see the helper's task).

use crate::domain::{HeadSha, WorkflowRun};

/// How the client authenticates.
#[derive(Clone)]
pub enum GitHubAuth {
    /// No credentials (public data only; local runs against a fake).
    Anonymous,
    /// A personal or installation token (`GITHUB_TOKEN`).
    Token(String),
    /// A GitHub App: JWTs signed with its private key (PEM), exchanged for installation tokens.
    App {
        app_id: u64,
        private_key_pem: String,
    },
}

#[derive(Clone)]
pub struct GitHubConfig {
    /// `GITHUB_API_URL`, default `https://api.github.com`.
    pub api_url: String,
    pub auth: GitHubAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub unreachable: {0}")]
    Unavailable(String),
    #[error("GitHub answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("GitHub rate limit: retry after {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("GitHub authentication failed: {0}")]
    Auth(String),
    #[error("unexpected GitHub answer: {0}")]
    Decode(String),
}

/// A collaborator's permission on a repository (`GET .../collaborators/{user}/permission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Admin,
    Maintain,
    Write,
    Triage,
    Read,
    None,
}

impl Permission {
    pub fn can_write(self) -> bool {
        matches!(self, Self::Admin | Self::Maintain | Self::Write)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub open: bool,
    pub head_sha: String,
    pub head_ref: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentOutcome {
    Created { id: u64 },
    Updated { id: u64 },
}

/// Which repository a call is about, and which installation's token to use for it.
#[derive(Debug, Clone, Copy)]
pub struct RepoRef<'a> {
    pub owner: &'a str,
    pub name: &'a str,
    pub installation_id: Option<u64>,
}

#[derive(Clone)]
pub struct GitHubClient {}

impl GitHubClient {
    pub fn new(_config: GitHubConfig) -> Result<Self, GitHubError> {
        todo!()
    }

    /// Every workflow run of a commit (`GET /repos/{o}/{r}/actions/runs?head_sha=`, all pages).
    pub async fn workflow_runs_for_commit(
        &self,
        _repo: RepoRef<'_>,
        _head_sha: &HeadSha,
    ) -> Result<Vec<WorkflowRun>, GitHubError> {
        todo!()
    }

    /// A user's permission; a non-collaborator (404) is `Permission::None`.
    pub async fn collaborator_permission(
        &self,
        _repo: RepoRef<'_>,
        _user: &str,
    ) -> Result<Permission, GitHubError> {
        todo!()
    }

    /// One pull request, `None` when it does not exist.
    pub async fn pull_request(
        &self,
        _repo: RepoRef<'_>,
        _number: u64,
    ) -> Result<Option<PullRequest>, GitHubError> {
        todo!()
    }

    /// Open pull requests whose head is `head_owner:branch` (for fork PRs).
    pub async fn open_pull_requests_by_head(
        &self,
        _repo: RepoRef<'_>,
        _head_owner: &str,
        _branch: &str,
    ) -> Result<Vec<PullRequest>, GitHubError> {
        todo!()
    }

    /// Creates the PR comment holding `marker` (an HTML comment) or edits the existing one.
    pub async fn upsert_pr_comment(
        &self,
        _repo: RepoRef<'_>,
        _number: u64,
        _marker: &str,
        _body: &str,
    ) -> Result<CommentOutcome, GitHubError> {
        todo!()
    }
}
