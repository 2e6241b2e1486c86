//! The fake's HTTP side: a gate in front of every endpoint (request log, `User-Agent` and API
//! version checks, injected faults, credentials), the endpoints, and answers shaped like GitHub's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::state::{Repo, State as FakeState};
use super::{
    FakeComment, FakeJob, FakePullRequest, FakeRun, Fault, Presented, RequestRecord, Shared,
};

const API_VERSION: &str = "2022-11-28";
const DOCS: &str = "https://docs.github.com/rest";
/// GitHub's page size when `per_page` is absent, and its largest.
const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;
/// Who comments when the caller is an installation, or a plain token.
const APP_BOT: &str = "proactive-app[bot]";
const TOKEN_USER: &str = "fake-user";

type Answer = Result<Response, ApiError>;
type Params = Query<HashMap<String, String>>;

/// An error answer in GitHub's shape: `{"message", "documentation_url", "status"}`.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "message": self.message,
            "documentation_url": DOCS,
            "status": self.status.as_u16().to_string(),
        });
        (self.status, axum::Json(body)).into_response()
    }
}

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/app/installations/{installation}/access_tokens",
            post(create_installation_token),
        )
        .route("/repos/{owner}/{repo}", get(repository))
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run}/jobs",
            get(list_jobs),
        )
        .route(
            "/repos/{owner}/{repo}/actions/jobs/{job}/logs",
            get(job_logs),
        )
        .route(
            "/repos/{owner}/{repo}/collaborators/{user}/permission",
            get(permission),
        )
        .route("/repos/{owner}/{repo}/pulls", get(list_pulls))
        .route("/repos/{owner}/{repo}/pulls/{number}", get(pull))
        .route(
            "/repos/{owner}/{repo}/issues/{number}/comments",
            get(list_comments).post(create_comment),
        )
        .route(
            "/repos/{owner}/{repo}/issues/comments/{id}",
            patch(edit_comment),
        )
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::not_found() })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        // Outside the gate: GitHub's log downloads are pre-signed addresses on another host.
        .route(
            "/_downloads/{owner}/{repo}/jobs/{job}/log",
            get(download_log),
        )
        .with_state(shared)
}

/// Runs before every endpoint and records every answer, whoever produced it.
async fn gate(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    // Read before any await: a request body is not `Sync`, so no borrow of it may live across one.
    let (mut record, authorization) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let record = RequestRecord {
            method: request.method().as_str().to_owned(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().unwrap_or_default().to_owned(),
            status: 0,
            credential: Presented::Nothing,
            user_agent: header("user-agent"),
            accept: header("accept"),
            api_version: header("x-github-api-version"),
        };
        (record, header("authorization"))
    };
    let (fault, auth_required) = {
        let mut state = shared.lock();
        record.credential = state.identify(authorization.as_deref());
        (
            state.take_fault(&record.method, &record.path),
            state.auth_required(),
        )
    };
    let rejection = match record.credential {
        Presented::Invalid => Some("Bad credentials"),
        Presented::Nothing if auth_required => Some("Requires authentication"),
        Presented::AppJwt if !record.path.starts_with("/app/") => {
            Some("A JSON web token cannot be used to access this endpoint")
        }
        _ => None,
    };
    let response = if record.user_agent.is_none() {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        )
        .into_response()
    } else if record
        .api_version
        .as_deref()
        .is_some_and(|v| v != API_VERSION)
    {
        ApiError::new(StatusCode::BAD_REQUEST, "Unsupported API version").into_response()
    } else if let Some(answer) = fault.and_then(fault_answer) {
        answer
    } else if let Some(message) = rejection {
        ApiError::new(StatusCode::UNAUTHORIZED, message).into_response()
    } else {
        request.extensions_mut().insert(record.credential);
        if let Some(Fault::Slow { millis }) = fault {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        }
        let answer = next.run(request).await;
        if fault == Some(Fault::LostAnswer) {
            ApiError::new(StatusCode::BAD_GATEWAY, "Server Error").into_response()
        } else {
            answer
        }
    };
    record.status = response.status().as_u16();
    let _ = shared.answered.send(record.clone());
    shared.lock().log.push(record);
    response
}

/// The answer a fault replaces the endpoint's with; `LostAnswer` and `Slow` let the endpoint run.
fn fault_answer(fault: Fault) -> Option<Response> {
    let header = |value: u64| HeaderValue::from(value);
    Some(match fault {
        Fault::RateLimited { retry_after_secs } => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            )
            .into_response();
            response
                .headers_mut()
                .insert("retry-after", header(retry_after_secs));
            response
        }
        Fault::QuotaExhausted { reset_in_secs } => {
            let reset = Utc::now().timestamp().max(0) as u64 + reset_in_secs;
            let mut response = ApiError::new(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for installation.",
            )
            .into_response();
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", header(5000));
            headers.insert("x-ratelimit-remaining", header(0));
            headers.insert("x-ratelimit-reset", header(reset));
            response
        }
        Fault::ServerError(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::new(status, "Server Error").into_response()
        }
        Fault::LostAnswer | Fault::Slow { .. } => return None,
    })
}

async fn create_installation_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(installation): Path<String>,
) -> Answer {
    let mut state = shared.lock();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    state
        .verify_app_jwt(authorization)
        .map_err(|m| ApiError::new(StatusCode::UNAUTHORIZED, m))?;
    let installation = installation.parse().map_err(|_| ApiError::not_found())?;
    if !state.has_installation(installation) {
        return Err(ApiError::not_found());
    }
    let (token, expires_at) = state.issue_token(installation);
    let body = json!({
        "token": token,
        "expires_at": timestamp(expires_at),
        "permissions": {"actions": "read", "issues": "write", "metadata": "read", "pull_requests": "write"},
        "repository_selection": "selected",
    });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn list_runs(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name)): Path<(String, String)>,
    Query(params): Params,
    uri: Uri,
) -> Answer {
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    // Newest first, as GitHub lists them.
    let runs: Vec<&FakeRun> = repo
        .runs
        .values()
        .rev()
        .filter(|run| {
            params
                .get("head_sha")
                .is_none_or(|sha| sha.eq_ignore_ascii_case(&run.head_sha))
        })
        .collect();
    let total = runs.len();
    let (page, link) = paginate(&runs, &params, &base, &uri);
    let body = json!({
        "total_count": total,
        "workflow_runs": page.iter().map(|run| run_json(&base, repo, run)).collect::<Vec<_>>(),
    });
    Ok(listing(body, link))
}

async fn list_jobs(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name, run)): Path<(String, String, String)>,
    Query(params): Params,
    uri: Uri,
) -> Answer {
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let run: u64 = run.parse().map_err(|_| ApiError::not_found())?;
    let jobs: Vec<&FakeJob> = repo.jobs.values().filter(|job| job.run_id == run).collect();
    if jobs.is_empty() && !repo.runs.contains_key(&run) {
        return Err(ApiError::not_found());
    }
    let total = jobs.len();
    let (page, link) = paginate(&jobs, &params, &base, &uri);
    let full_name = repo.full_name();
    let body = json!({
        "total_count": total,
        "jobs": page.iter().map(|job| json!({
            "id": job.id,
            "run_id": job.run_id,
            "name": job.name,
            "status": "completed",
            "conclusion": job.conclusion,
            "html_url": format!("https://github.com/{full_name}/actions/runs/{}/job/{}", job.run_id, job.id),
            "steps": job.steps.iter().enumerate().map(|(n, (name, conclusion))| json!({
                "name": name, "status": "completed", "conclusion": conclusion, "number": n + 1,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    Ok(listing(body, link))
}

/// GitHub answers with a redirect to the log's download address.
async fn job_logs(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name, job)): Path<(String, String, String)>,
) -> Answer {
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let job: u64 = job.parse().map_err(|_| ApiError::not_found())?;
    if !repo.jobs.contains_key(&job) {
        return Err(ApiError::not_found());
    }
    let location = format!("{base}/_downloads/{owner}/{name}/jobs/{job}/log");
    Ok((StatusCode::FOUND, [("location", location)]).into_response())
}

async fn download_log(
    State(shared): State<Arc<Shared>>,
    Path((owner, name, job)): Path<(String, String, String)>,
) -> Response {
    let state = shared.lock();
    let log = state
        .repos
        .get(&format!("{owner}/{name}").to_ascii_lowercase())
        .and_then(|repo| repo.jobs.get(&job.parse().ok()?))
        .map(|job| job.log.clone());
    match log {
        Some(log) => ([("content-type", "text/plain; charset=utf-8")], log).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn permission(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name, user)): Path<(String, String, String)>,
) -> Answer {
    let mut state = shared.lock();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let role = repo
        .collaborators
        .get(&user.to_ascii_lowercase())
        .copied()
        .ok_or_else(ApiError::not_found)?;
    // `permission` keeps the legacy levels: maintain shows as write, triage as read.
    use shared::github::Permission as P;
    let legacy = match role {
        P::Admin => "admin",
        P::Maintain | P::Write => "write",
        P::Triage | P::Read => "read",
        P::None => "none",
    };
    let body = json!({"permission": legacy, "role_name": role.as_str(), "user": user_json(&user)});
    Ok(axum::Json(body).into_response())
}

async fn list_pulls(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name)): Path<(String, String)>,
    Query(params): Params,
    uri: Uri,
) -> Answer {
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let wanted_state = params.get("state").map(String::as_str).unwrap_or("open");
    // `head` is `user:ref-name`.
    let head = params.get("head").and_then(|h| h.split_once(':'));
    let pulls: Vec<&FakePullRequest> = repo
        .pulls
        .values()
        .rev()
        .filter(|pr| wanted_state == "all" || pr.state == wanted_state)
        .filter(|pr| {
            head.is_none_or(|(user, branch)| {
                head_owner(repo, pr).eq_ignore_ascii_case(user) && pr.head_ref == branch
            })
        })
        .collect();
    let (page, link) = paginate(&pulls, &params, &base, &uri);
    let body: Vec<Value> = page.iter().map(|pr| pull_json(&base, repo, pr)).collect();
    Ok(listing(Value::Array(body), link))
}

async fn repository(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name)): Path<(String, String)>,
) -> Answer {
    let mut state = shared.lock();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let full_name = repo.full_name();
    let clone_url = repo
        .clone_url
        .clone()
        .unwrap_or_else(|| format!("https://github.com/{full_name}.git"));
    Ok(axum::Json(json!({
        "id": repo.id,
        "name": repo.name,
        "full_name": full_name,
        "private": true,
        "default_branch": "main",
        "clone_url": clone_url,
    }))
    .into_response())
}

async fn pull(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name, number)): Path<(String, String, String)>,
) -> Answer {
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let pr = number
        .parse()
        .ok()
        .and_then(|n| repo.pulls.get(&n))
        .ok_or_else(ApiError::not_found)?;
    Ok(axum::Json(pull_json(&base, repo, pr)).into_response())
}

async fn list_comments(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name, number)): Path<(String, String, String)>,
    Query(params): Params,
    uri: Uri,
) -> Answer {
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let number = pull_number(repo, &number)?;
    let comments: Vec<&FakeComment> = repo.comments.get(&number).into_iter().flatten().collect();
    let (page, link) = paginate(&comments, &params, &base, &uri);
    let body: Vec<Value> = page
        .iter()
        .map(|c| comment_json(&base, repo, number, c))
        .collect();
    Ok(listing(Value::Array(body), link))
}

async fn create_comment(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name, number)): Path<(String, String, String)>,
    body: Bytes,
) -> Answer {
    let author = author(caller)?;
    let text = comment_body(&body)?;
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let id = state.next_id();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let number = pull_number(repo, &number)?;
    let comment = FakeComment::new(id, author, &text);
    repo.comments
        .entry(number)
        .or_default()
        .push(comment.clone());
    let full_name = repo.full_name();
    let mut response = (
        StatusCode::CREATED,
        axum::Json(comment_json(&base, repo, number, &comment)),
    )
        .into_response();
    let location = format!("{base}/repos/{full_name}/issues/comments/{id}");
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert("location", location);
    }
    Ok(response)
}

async fn edit_comment(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Presented>,
    Path((owner, name, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Answer {
    author(caller)?;
    let text = comment_body(&body)?;
    let mut state = shared.lock();
    let base = state.base_url.clone();
    let repo = visible_repo(&mut state, caller, &owner, &name)?;
    let id: u64 = id.parse().map_err(|_| ApiError::not_found())?;
    let (number, comment) = repo
        .comments
        .iter_mut()
        .find_map(|(number, comments)| Some((*number, comments.iter_mut().find(|c| c.id == id)?)))
        .ok_or_else(ApiError::not_found)?;
    comment.body = text;
    comment.updated_at = Utc::now();
    let comment = comment.clone();
    Ok(axum::Json(comment_json(&base, repo, number, &comment)).into_response())
}

/// The repository, if it exists and the caller may see it: an installation token sees only its
/// installation's repositories, and GitHub answers 404 (not 403) for the others.
fn visible_repo<'s>(
    state: &'s mut FakeState,
    caller: Presented,
    owner: &str,
    name: &str,
) -> Result<&'s mut Repo, ApiError> {
    let repo = state
        .repos
        .get_mut(&format!("{owner}/{name}").to_ascii_lowercase())
        .ok_or_else(ApiError::not_found)?;
    match caller {
        Presented::InstallationToken { installation }
            if repo.installation != Some(installation) =>
        {
            Err(ApiError::not_found())
        }
        _ => Ok(repo),
    }
}

/// Comments live on issues; the fake models only pull requests, so the number must be one.
fn pull_number(repo: &Repo, raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .ok()
        .filter(|n| repo.pulls.contains_key(n))
        .ok_or_else(ApiError::not_found)
}

/// Writes need a credential, even when reads are open.
fn author(caller: Presented) -> Result<&'static str, ApiError> {
    match caller {
        Presented::InstallationToken { .. } => Ok(APP_BOT),
        Presented::Token => Ok(TOKEN_USER),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
        )),
    }
}

fn comment_body(raw: &[u8]) -> Result<String, ApiError> {
    let value: Value = serde_json::from_slice(raw)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Problems parsing JSON"))?;
    value
        .get("body")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid request.\n\n\"body\" wasn't supplied.",
            )
        })
}

/// One page of `items` by `per_page` (default 30, at most 100) and `page` (from 1), with GitHub's
/// `Link` header pointing at the neighbouring and end pages.
fn paginate<'a, T>(
    items: &'a [T],
    params: &HashMap<String, String>,
    base: &str,
    uri: &Uri,
) -> (&'a [T], Option<String>) {
    let number = |name: &str| {
        params
            .get(name)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
    };
    let per_page = number("per_page")
        .unwrap_or(DEFAULT_PER_PAGE)
        .min(MAX_PER_PAGE);
    let page = number("page").unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    let start = ((page - 1) * per_page).min(items.len());
    let end = (start + per_page).min(items.len());
    let link_to = |target: usize, rel: &str| {
        let mut url =
            reqwest::Url::parse(&format!("{base}{}", uri.path())).expect("the fake's own URL");
        {
            let mut query = url.query_pairs_mut();
            let mut others: Vec<_> = params
                .iter()
                .filter(|(k, _)| k.as_str() != "page")
                .collect();
            others.sort();
            for (k, v) in others {
                query.append_pair(k, v);
            }
            query.append_pair("page", &target.to_string());
        }
        format!("<{url}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link_to(page.min(last + 1) - 1, "prev"));
    }
    if page < last {
        links.push(link_to(page + 1, "next"));
        links.push(link_to(last, "last"));
    }
    if page > 1 {
        links.push(link_to(1, "first"));
    }
    (
        &items[start..end],
        (!links.is_empty()).then(|| links.join(", ")),
    )
}

fn listing(body: Value, link: Option<String>) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert("link", link);
    }
    response
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn user_json(login: &str) -> Value {
    let kind = if login.ends_with("[bot]") {
        "Bot"
    } else {
        "User"
    };
    json!({
        "login": login, "id": super::account_id(login), "type": kind,
        "html_url": format!("https://github.com/{login}"),
    })
}

fn repo_json(base: &str, repo: &Repo) -> Value {
    json!({
        "id": repo.id,
        "name": repo.name,
        "full_name": repo.full_name(),
        "owner": user_json(&repo.owner),
        "url": format!("{base}/repos/{}", repo.full_name()),
    })
}

fn head_owner<'r>(repo: &'r Repo, pr: &'r FakePullRequest) -> &'r str {
    pr.head_owner.as_deref().unwrap_or(&repo.owner)
}

fn run_json(base: &str, repo: &Repo, run: &FakeRun) -> Value {
    let full_name = repo.full_name();
    let completed = run.status == "completed";
    json!({
        "id": run.id,
        "name": run.name,
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": format!(".github/workflows/{}.yml", run.name.to_ascii_lowercase().replace(' ', "-")),
        "display_title": run.name,
        "event": "pull_request",
        "status": run.status,
        "conclusion": if completed { json!(run.conclusion) } else { Value::Null },
        "run_attempt": run.run_attempt,
        "url": format!("{base}/repos/{full_name}/actions/runs/{}", run.id),
        "html_url": format!("https://github.com/{full_name}/actions/runs/{}", run.id),
        "pull_requests": [],
        "created_at": timestamp(run.updated_at),
        "updated_at": timestamp(run.updated_at),
        "run_started_at": timestamp(run.updated_at),
        "repository": repo_json(base, repo),
    })
}

fn pull_json(base: &str, repo: &Repo, pr: &FakePullRequest) -> Value {
    let full_name = repo.full_name();
    let owner = head_owner(repo, pr);
    json!({
        "id": pr.number * 1000 + repo.id,
        "number": pr.number,
        "state": pr.state,
        "title": pr.title.clone().unwrap_or_else(|| format!("Pull request #{}", pr.number)),
        "user": user_json(owner),
        "url": format!("{base}/repos/{full_name}/pulls/{}", pr.number),
        "html_url": format!("https://github.com/{full_name}/pull/{}", pr.number),
        "head": {
            "label": format!("{owner}:{}", pr.head_ref),
            "ref": pr.head_ref,
            "sha": pr.head_sha,
            "user": user_json(owner),
        },
        "base": {
            "label": format!("{}:main", repo.owner),
            "ref": "main",
            "user": user_json(&repo.owner),
            "repo": repo_json(base, repo),
        },
        "draft": false,
        "merged_at": null,
    })
}

fn comment_json(base: &str, repo: &Repo, pr: u64, comment: &FakeComment) -> Value {
    let full_name = repo.full_name();
    json!({
        "id": comment.id,
        "body": comment.body,
        "user": user_json(&comment.user),
        "url": format!("{base}/repos/{full_name}/issues/comments/{}", comment.id),
        "html_url": format!("https://github.com/{full_name}/pull/{pr}#issuecomment-{}", comment.id),
        "issue_url": format!("{base}/repos/{full_name}/issues/{pr}"),
        "created_at": timestamp(comment.created_at),
        "updated_at": timestamp(comment.updated_at),
    })
}
