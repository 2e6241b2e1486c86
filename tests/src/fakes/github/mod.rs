//! A local fake of GitHub's REST API for the endpoints the product calls, behaving as GitHub documents
//! them: token and App authentication (RS256 JWT -> installation tokens with `expires_at`), `Link`
//! pagination honouring `per_page`/`page`, 404s, rate limits with `Retry-After`, 5xx, and a log of
//! every request it answered.
//!
//! - `state`: repositories, runs, pull requests, collaborators, comments, credentials, faults.
//! - `routes`: the HTTP endpoints and the answers' JSON.
//! - `seed`: the JSON seed file the `fake-github` binary loads.
//!
//! `github-app-test-key.pem` beside this file is a throwaway RSA key generated for these tests
//! (`openssl genrsa -traditional 2048`); it protects nothing.

mod routes;
mod seed;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::github::Permission;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use seed::{Seed, SeedRepository};

/// A job of a workflow run: its conclusion, its steps' conclusions, and its log (served, as GitHub
/// does, through a redirect to a download address that needs no credentials).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeJob {
    pub id: u64,
    pub run_id: u64,
    pub name: String,
    pub conclusion: String,
    /// Each step's name and conclusion, in order.
    pub steps: Vec<(String, String)>,
    pub log: String,
}

impl FakeJob {
    /// A job that failed at `failed_step` (after a successful checkout), with `log`.
    pub fn failed(id: u64, run_id: u64, name: &str, failed_step: &str, log: &str) -> Self {
        Self {
            id,
            run_id,
            name: name.into(),
            conclusion: "failure".into(),
            steps: vec![
                ("Checkout".into(), "success".into()),
                (failed_step.into(), "failure".into()),
                ("Post Checkout".into(), "skipped".into()),
            ],
            log: log.into(),
        }
    }
}
use state::State;

/// The test App's private key (PKCS#1 PEM, the form GitHub hands out).
/// The id the fake gives the account `login`: the samples' actor keeps its real one, every other
/// login a stable one derived from it (FNV-1a), so that a test can link it in an identity provider.
pub fn account_id(login: &str) -> u64 {
    if login == "Codertocat" {
        return 21_031_067;
    }
    let hash = login.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    100_000_000 + hash % 100_000_000
}

pub const TEST_APP_PRIVATE_KEY_PEM: &str = include_str!("github-app-test-key.pem");
/// Its public key, which the fake verifies App JWTs with.
pub const TEST_APP_PUBLIC_KEY_PEM: &str = include_str!("github-app-test-key.pub.pem");

/// A workflow run the fake lists for its commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    #[serde(default = "default_branch")]
    pub head_branch: String,
    /// `requested`, `queued`, `in_progress` or `completed`.
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default = "first_attempt")]
    pub run_attempt: u32,
    #[serde(default = "Utc::now")]
    pub updated_at: DateTime<Utc>,
}

fn default_branch() -> String {
    "main".into()
}

fn first_attempt() -> u32 {
    1
}

impl FakeRun {
    pub fn completed(id: u64, name: &str, head_sha: &str, conclusion: &str) -> Self {
        Self {
            status: "completed".into(),
            conclusion: Some(conclusion.into()),
            ..Self::in_progress(id, name, head_sha)
        }
    }

    pub fn in_progress(id: u64, name: &str, head_sha: &str) -> Self {
        Self {
            id,
            name: name.into(),
            head_sha: head_sha.into(),
            head_branch: default_branch(),
            status: "in_progress".into(),
            conclusion: None,
            run_attempt: 1,
            updated_at: Utc::now(),
        }
    }
}

/// A pull request; `head_owner` is the login owning the head branch (the fork's owner for fork PRs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakePullRequest {
    pub number: u64,
    /// `open` or `closed`.
    #[serde(default = "open")]
    pub state: String,
    pub head_sha: String,
    pub head_ref: String,
    /// Defaults to the repository's owner.
    #[serde(default)]
    pub head_owner: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
}

fn open() -> String {
    "open".into()
}

impl FakePullRequest {
    pub fn open(number: u64, head_sha: &str, head_ref: &str) -> Self {
        Self {
            number,
            state: open(),
            head_sha: head_sha.into(),
            head_ref: head_ref.into(),
            head_owner: None,
            title: None,
        }
    }
}

/// A comment on a pull request's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeComment {
    pub id: u64,
    pub body: String,
    pub user: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl FakeComment {
    pub fn new(id: u64, user: &str, body: &str) -> Self {
        let now = Utc::now();
        Self {
            id,
            body: body.into(),
            user: user.into(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A failure the fake answers with instead of doing its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` (a secondary rate limit).
    RateLimited { retry_after_secs: u64 },
    /// 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` this far ahead (the primary limit).
    QuotaExhausted { reset_in_secs: u64 },
    /// This status (5xx) without doing anything.
    ServerError(u16),
    /// Does the work, then answers 502 as a gateway that lost the answer would.
    LostAnswer,
    /// Waits this long, then does the work and answers (a slow GitHub).
    Slow { millis: u64 },
}

/// Which requests a fault hits, and how many times.
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub fault: Fault,
    pub times: usize,
    pub method: Option<String>,
    /// Only paths containing this text.
    pub path_contains: Option<String>,
}

impl FaultRule {
    /// The next `times` requests, whatever they are.
    pub fn next(times: usize, fault: Fault) -> Self {
        Self {
            fault,
            times,
            method: None,
            path_contains: None,
        }
    }

    /// Only requests with this method whose path contains `path_contains`.
    pub fn on(self, method: &str, path_contains: &str) -> Self {
        Self {
            method: Some(method.to_ascii_uppercase()),
            path_contains: Some(path_contains.into()),
            ..self
        }
    }
}

/// The credential a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    Nothing,
    Token,
    InstallationToken {
        installation: u64,
    },
    AppJwt,
    /// Unknown, revoked or expired.
    Invalid,
}

impl std::fmt::Display for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nothing => f.write_str("anonymous"),
            Self::Token => f.write_str("token"),
            Self::InstallationToken { installation } => write!(f, "installation {installation}"),
            Self::AppJwt => f.write_str("App JWT"),
            Self::Invalid => f.write_str("invalid credential"),
        }
    }
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string (empty when none).
    pub query: String,
    pub status: u16,
    pub credential: Presented,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
    pub api_version: Option<String>,
}

impl RequestRecord {
    /// One decoded query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        reqwest::Url::parse(&format!("http://fake/?{}", self.query))
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What the server's handlers share.
pub(crate) struct Shared {
    state: Mutex<State>,
    answered: broadcast::Sender<RequestRecord>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake; the server stops when this is dropped.
pub struct FakeGitHub {
    url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGitHub {
    /// An empty fake on a free loopback port, open to anonymous calls until credentials are configured.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binding a loopback port for the GitHub fake")
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (answered, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(url.clone())),
            answered,
        });
        let app = routes::router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the GitHub fake stopped");
            }
        });
        Ok(Self {
            url,
            shared,
            server,
        })
    }

    /// The base URL to use as `GITHUB_API_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Loads repositories, runs, pull requests, collaborators and tokens from a seed.
    pub fn apply_seed(&self, seed: &Seed) -> Result<(), String> {
        self.shared.lock().apply_seed(seed)
    }

    /// From now on every call needs a credential; `token` is one (as `Bearer` or `token`).
    pub fn require_token(&self, token: &str) {
        self.shared.lock().tokens.insert(token.to_owned());
    }

    /// Registers a GitHub App whose JWTs are checked against `public_key_pem` and `app_id` (`iss`).
    pub fn register_app(&self, app_id: u64, public_key_pem: &str) {
        self.shared.lock().register_app(app_id, public_key_pem);
    }

    /// Installs the App on `repo` under `installation_id`.
    pub fn install_app(&self, installation_id: u64, repo: &str) {
        self.shared.lock().repo_mut(repo).installation = Some(installation_id);
    }

    /// How long installation tokens live (GitHub: one hour).
    pub fn set_installation_token_ttl(&self, ttl: Duration) {
        self.shared.lock().token_ttl = ttl;
    }

    /// Revokes every installation token issued so far, as an early expiry would.
    pub fn revoke_installation_tokens(&self) {
        self.shared.lock().installation_tokens.clear();
    }

    /// Adds or replaces (by id) a job of one of `repo`'s workflow runs, with its log.
    pub fn put_job(&self, repo: &str, job: FakeJob) {
        self.shared.lock().repo_mut(repo).jobs.insert(job.id, job);
    }

    /// Makes `repo`'s `clone_url` `url` (e.g. a local repository's `file://` URL).
    pub fn set_clone_url(&self, repo: &str, url: &str) {
        self.shared.lock().repo_mut(repo).clone_url = Some(url.to_owned());
    }

    /// Adds or replaces (by id) a workflow run of `repo`.
    pub fn put_run(&self, repo: &str, run: FakeRun) {
        self.shared.lock().repo_mut(repo).put_run(run);
    }

    pub fn set_permission(&self, repo: &str, user: &str, permission: Permission) {
        self.shared
            .lock()
            .repo_mut(repo)
            .collaborators
            .insert(user.to_ascii_lowercase(), permission);
    }

    /// Adds or replaces (by number) a pull request of `repo`.
    pub fn put_pull_request(&self, repo: &str, pr: FakePullRequest) {
        self.shared
            .lock()
            .repo_mut(repo)
            .pulls
            .insert(pr.number, pr);
    }

    /// Adds a comment as `user` on pull request `pr`; returns its id.
    pub fn add_comment(&self, repo: &str, pr: u64, user: &str, body: &str) -> u64 {
        self.shared.lock().add_comment(repo, pr, user, body)
    }

    /// The comments of a pull request, oldest first.
    pub fn comments(&self, repo: &str, pr: u64) -> Vec<FakeComment> {
        let state = self.shared.lock();
        state
            .repo(repo)
            .and_then(|r| r.comments.get(&pr).cloned())
            .unwrap_or_default()
    }

    pub fn inject(&self, rule: FaultRule) {
        self.shared.lock().faults.push(rule);
    }

    /// Removes every fault still pending: GitHub is well again.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().log.clone()
    }

    /// Each request as it is answered (for the binary's console).
    pub fn subscribe(&self) -> broadcast::Receiver<RequestRecord> {
        self.shared.answered.subscribe()
    }
}
