//! The GitHub REST client: App (JWT -> installation token, cached) or token auth, workflow runs of a
//! commit (all pages), collaborator permission, pull requests, and one PR comment found by a hidden marker.
//!
//! - `config`: `GitHubConfig::from_env` and the redacting `Debug` of credentials.
//! - `transport`: one call with GitHub's headers, rate-limit waits, bounded retries and error mapping.
//! - `pages`: `Link: rel="next"` pagination.
//! - `auth`: the App's JWT and the per-installation token cache.
//! - `types`: the shapes of GitHub's answers and their mapping to domain types.
//! - `client`: `GitHubClient`, the calls the product makes; `logs`: the tail of a job's log.

mod auth;
mod client;
mod config;
mod logs;
mod pages;
mod transport;
mod types;

pub use client::GitHubClient;
pub use transport::ClientOptions;
pub use types::{ApiActor, ApiHeadRepository, ApiPullRequestRef, ApiWorkflowRun};

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

/// A job of a workflow run that failed, with the steps that failed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedJob {
    pub id: u64,
    pub name: String,
    /// The job's page (`html_url`), when GitHub gives it.
    pub url: Option<String>,
    pub failed_steps: Vec<String>,
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

    pub fn is_admin(self) -> bool {
        self == Self::Admin
    }

    /// Parses a role or legacy permission name as GitHub spells it (`admin`, `maintain`, `write`,
    /// `triage`, `read`, `none`); custom role names are not known here.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Self::Admin),
            "maintain" => Some(Self::Maintain),
            "write" => Some(Self::Write),
            "triage" => Some(Self::Triage),
            "read" => Some(Self::Read),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The role name GitHub uses (`role_name` in the permission answer).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Maintain => "maintain",
            Self::Write => "write",
            Self::Triage => "triage",
            Self::Read => "read",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub open: bool,
    pub head_sha: String,
    pub head_ref: String,
    /// Who opened it.
    pub author: Option<ApiActor>,
}

/// How to clone a repository: its clone URL, and the token that reads it (`None`: anonymous). The
/// token is a credential: it never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct CloneAccess {
    pub url: String,
    pub token: Option<String>,
}

impl std::fmt::Debug for CloneAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloneAccess")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentOutcome {
    Created { id: u64 },
    Updated { id: u64 },
}

impl CommentOutcome {
    pub fn id(self) -> u64 {
        match self {
            Self::Created { id } | Self::Updated { id } => id,
        }
    }
}

/// Which repository a call is about, and which installation's token to use for it.
#[derive(Debug, Clone, Copy)]
pub struct RepoRef<'a> {
    pub owner: &'a str,
    pub name: &'a str,
    pub installation_id: Option<u64>,
}

/// A registered repository's calls use its installation (the webhook resolves which one first, see
/// `Repository::with_installation`).
impl<'a> From<&'a crate::domain::Repository> for RepoRef<'a> {
    fn from(repository: &'a crate::domain::Repository) -> Self {
        Self {
            owner: &repository.owner,
            name: &repository.name,
            installation_id: repository.installation_id,
        }
    }
}
