//! `GitHubClient`: the REST calls the product makes, with the credentials of the repository's
//! installation.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::{Response, Url};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::auth::Credentials;
use super::pages::Pages;
use super::transport::{Call, ClientOptions, Transport, decode};
use super::types::{ApiComment, ApiPermission, ApiPullRequest, ApiRepository, JobsPage, RunsPage};
use super::{
    CloneAccess, CommentOutcome, FailedJob, GitHubConfig, GitHubError, Permission, PullRequest,
    RepoRef, logs,
};
use crate::domain::{HeadSha, WorkflowRun};

/// GitHub's largest page.
const PER_PAGE: &str = "100";

/// Cheap to clone: clones share the HTTP connections and the installation-token cache.
#[derive(Clone)]
pub struct GitHubClient {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    credentials: Credentials,
}

impl GitHubClient {
    pub fn new(config: GitHubConfig) -> Result<Self, GitHubError> {
        Self::with_options(config, ClientOptions::default())
    }

    /// A client with its own timeouts, retry bounds and rate-limit patience.
    pub fn with_options(config: GitHubConfig, options: ClientOptions) -> Result<Self, GitHubError> {
        let transport = Transport::new(&config.api_url, options)?;
        let credentials = Credentials::new(&config.auth)?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                credentials,
            }),
        })
    }

    /// Every workflow run of a commit (`GET /repos/{o}/{r}/actions/runs?head_sha=`, all pages).
    pub async fn workflow_runs_for_commit(
        &self,
        repo: RepoRef<'_>,
        head_sha: &HeadSha,
    ) -> Result<Vec<WorkflowRun>, GitHubError> {
        let mut url = self.repo_url(repo, &["actions", "runs"]);
        url.query_pairs_mut()
            .append_pair("head_sha", head_sha.as_str())
            .append_pair("per_page", PER_PAGE);
        let listed = Pages::new(self, repo, url)
            .collect(|page: RunsPage| page.workflow_runs)
            .await?;
        // A run that changes while the pages are read can be listed twice: keep its newest state.
        let mut runs = BTreeMap::<u64, WorkflowRun>::new();
        for run in listed.into_iter().map(|r| r.into_domain()) {
            match runs.get(&run.id) {
                Some(known) if !run.supersedes(known) => {}
                _ => {
                    runs.insert(run.id, run);
                }
            }
        }
        Ok(runs.into_values().collect())
    }

    /// The failed jobs of a run's latest attempt, with their failed steps
    /// (`GET /repos/{o}/{r}/actions/runs/{id}/jobs?filter=latest`, all pages).
    pub async fn failed_jobs(
        &self,
        repo: RepoRef<'_>,
        run_id: u64,
    ) -> Result<Vec<FailedJob>, GitHubError> {
        let mut url = self.repo_url(repo, &["actions", "runs", &run_id.to_string(), "jobs"]);
        url.query_pairs_mut()
            .append_pair("filter", "latest")
            .append_pair("per_page", PER_PAGE);
        let jobs = Pages::new(self, repo, url)
            .collect(|page: JobsPage| page.jobs)
            .await?;
        Ok(jobs
            .into_iter()
            .filter_map(|job| job.into_failed())
            .collect())
    }

    /// The last `lines` lines of a job's log (`GET /repos/{o}/{r}/actions/jobs/{id}/logs`, which
    /// redirects to the log itself), without GitHub's timestamps.
    pub async fn job_log_tail(
        &self,
        repo: RepoRef<'_>,
        job_id: u64,
        lines: usize,
    ) -> Result<String, GitHubError> {
        let url = self.repo_url(repo, &["actions", "jobs", &job_id.to_string(), "logs"]);
        let response = self.send(repo, Call::get(&url)).await?;
        logs::tail(response, lines).await
    }

    /// A user's permission; a non-collaborator (404) is `Permission::None`.
    pub async fn collaborator_permission(
        &self,
        repo: RepoRef<'_>,
        user: &str,
    ) -> Result<Permission, GitHubError> {
        let url = self.repo_url(repo, &["collaborators", user, "permission"]);
        match self.get_json::<ApiPermission>(repo, &url).await {
            Ok(answer) => Ok(answer.level()),
            Err(GitHubError::Status { status: 404, .. }) => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }

    /// How to clone a repository (`GET /repos/{o}/{r}`'s `clone_url`), with the token the client reads
    /// it with: the installation's for an App, the configured one otherwise.
    pub async fn clone_access(&self, repo: RepoRef<'_>) -> Result<CloneAccess, GitHubError> {
        let url = self.repo_url(repo, &[]);
        let answer: ApiRepository = self.get_json(repo, &url).await?;
        let Inner {
            transport,
            credentials,
        } = &*self.inner;
        let token = credentials.bearer(transport, repo.installation_id).await?;
        Ok(CloneAccess {
            url: answer.clone_url,
            token,
        })
    }

    /// One pull request, `None` when it does not exist.
    pub async fn pull_request(
        &self,
        repo: RepoRef<'_>,
        number: u64,
    ) -> Result<Option<PullRequest>, GitHubError> {
        let url = self.repo_url(repo, &["pulls", &number.to_string()]);
        match self.get_json::<ApiPullRequest>(repo, &url).await {
            Ok(pr) => Ok(Some(pr.into())),
            Err(GitHubError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Open pull requests whose head is `head_owner:branch` (for fork PRs).
    pub async fn open_pull_requests_by_head(
        &self,
        repo: RepoRef<'_>,
        head_owner: &str,
        branch: &str,
    ) -> Result<Vec<PullRequest>, GitHubError> {
        let mut url = self.repo_url(repo, &["pulls"]);
        url.query_pairs_mut()
            .append_pair("state", "open")
            .append_pair("head", &format!("{head_owner}:{branch}"))
            .append_pair("per_page", PER_PAGE);
        let pulls = Pages::new(self, repo, url)
            .collect(|page: Vec<ApiPullRequest>| page)
            .await?;
        Ok(pulls.into_iter().map(PullRequest::from).collect())
    }

    /// Creates the PR comment holding `marker` (an HTML comment) or edits the existing one.
    /// A body without the marker gets it appended, so that the next call finds the comment.
    pub async fn upsert_pr_comment(
        &self,
        repo: RepoRef<'_>,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<CommentOutcome, GitHubError> {
        let body = if body.contains(marker) {
            body.to_owned()
        } else {
            format!("{body}\n\n{marker}")
        };
        let payload = json!({ "body": body });
        let mut attempt = 1;
        loop {
            if let Some(id) = self.find_comment(repo, number, marker).await? {
                self.edit_comment(repo, id, &body).await?;
                return Ok(CommentOutcome::Updated { id });
            }
            let url = self.repo_url(repo, &["issues", &number.to_string(), "comments"]);
            match self.send(repo, Call::post(&url, Some(&payload))).await {
                Ok(response) => {
                    let created: ApiComment = decode(response, "the created comment").await?;
                    return Ok(CommentOutcome::Created { id: created.id });
                }
                // A create whose answer was lost may have landed: look for it again before retrying.
                Err(GitHubError::Unavailable(reason))
                    if attempt < self.inner.transport.options().max_attempts =>
                {
                    tracing::warn!(attempt, %reason, "creating the PR comment failed; looking again");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Replaces the body of comment `id` (an issue's or a pull request's).
    pub async fn edit_comment(
        &self,
        repo: RepoRef<'_>,
        id: u64,
        body: &str,
    ) -> Result<(), GitHubError> {
        let url = self.repo_url(repo, &["issues", "comments", &id.to_string()]);
        self.send(repo, Call::patch(&url, &json!({ "body": body })))
            .await?;
        Ok(())
    }

    /// The first (oldest) comment of the PR holding `marker`, reading no further pages than needed.
    async fn find_comment(
        &self,
        repo: RepoRef<'_>,
        number: u64,
        marker: &str,
    ) -> Result<Option<u64>, GitHubError> {
        let mut url = self.repo_url(repo, &["issues", &number.to_string(), "comments"]);
        url.query_pairs_mut().append_pair("per_page", PER_PAGE);
        let mut pages = Pages::new(self, repo, url);
        while let Some(page) = pages.next::<Vec<ApiComment>>().await? {
            let found = page
                .into_iter()
                .find(|c| c.body.as_deref().is_some_and(|b| b.contains(marker)));
            if let Some(comment) = found {
                return Ok(Some(comment.id));
            }
        }
        Ok(None)
    }

    fn repo_url(&self, repo: RepoRef<'_>, rest: &[&str]) -> Url {
        let mut segments = vec!["repos", repo.owner, repo.name];
        segments.extend_from_slice(rest);
        self.inner.transport.url(&segments)
    }

    pub(super) fn is_api_url(&self, url: &Url) -> bool {
        self.inner.transport.is_api_url(url)
    }

    pub(super) async fn get(
        &self,
        installation: Option<u64>,
        url: &Url,
    ) -> Result<Response, GitHubError> {
        self.send_as(installation, Call::get(url)).await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        repo: RepoRef<'_>,
        url: &Url,
    ) -> Result<T, GitHubError> {
        let response = self.get(repo.installation_id, url).await?;
        decode(response, url.path()).await
    }

    async fn send(&self, repo: RepoRef<'_>, call: Call<'_>) -> Result<Response, GitHubError> {
        self.send_as(repo.installation_id, call).await
    }

    /// Sends `call` with the credentials for `installation`. An installation token GitHub refuses
    /// (revoked, or expired early) is replaced once.
    async fn send_as(
        &self,
        installation: Option<u64>,
        call: Call<'_>,
    ) -> Result<Response, GitHubError> {
        let Inner {
            transport,
            credentials,
        } = &*self.inner;
        let mut replaced = false;
        loop {
            let token = credentials.bearer(transport, installation).await?;
            let result = transport.send(call.clone().bearer(token.as_deref())).await;
            if let Err(GitHubError::Auth(_)) = &result
                && !replaced
                && credentials.forget(installation, token.as_deref()).await
            {
                replaced = true;
                continue;
            }
            return result;
        }
    }
}
