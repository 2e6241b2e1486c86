//! The GitHub client against the local GitHub fake: pagination, status mapping, permissions, pull
//! requests, the marker comment, rate limits, 5xx, token and App authentication.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use e2e::fakes::github::{
    FakeGitHub, FakePullRequest, FakeRun, Fault, FaultRule, Presented, RequestRecord,
    TEST_APP_PRIVATE_KEY_PEM, TEST_APP_PUBLIC_KEY_PEM, account_id,
};
use shared::config::ConfigError;
use shared::domain::{HeadSha, RunStatus};
use shared::github::{
    ApiActor, ClientOptions, CommentOutcome, GitHubAuth, GitHubClient, GitHubConfig, GitHubError,
    Permission, PullRequest, RepoRef,
};

const REPO: &str = "octo-org/octo-repo";
const TOKEN: &str = "ghp_test_token";
const APP_ID: u64 = 29310;
const INSTALLATION: u64 = 4242;
const MARKER: &str = "<!-- proactive-conversation -->";

fn sha(fill: char) -> HeadSha {
    HeadSha::parse(&fill.to_string().repeat(40)).unwrap()
}

fn repo(installation_id: Option<u64>) -> RepoRef<'static> {
    RepoRef {
        owner: "octo-org",
        name: "octo-repo",
        installation_id,
    }
}

/// Short retry pauses; rate-limit waits stay as GitHub asks (the fake asks for one second).
fn options() -> ClientOptions {
    ClientOptions {
        retry_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    }
}

fn client(fake: &FakeGitHub, auth: GitHubAuth) -> GitHubClient {
    let config = GitHubConfig {
        api_url: fake.url().to_owned(),
        auth,
    };
    GitHubClient::with_options(config, options()).unwrap()
}

/// A fake that requires `TOKEN`, and a client holding it.
async fn with_token() -> (FakeGitHub, GitHubClient) {
    let fake = FakeGitHub::start().await;
    fake.require_token(TOKEN);
    let client = client(&fake, GitHubAuth::Token(TOKEN.into()));
    (fake, client)
}

/// A fake with the test App installed on `REPO`, and a client authenticating as that App.
async fn with_app() -> (FakeGitHub, GitHubClient) {
    let fake = FakeGitHub::start().await;
    fake.register_app(APP_ID, TEST_APP_PUBLIC_KEY_PEM);
    fake.install_app(INSTALLATION, REPO);
    let auth = GitHubAuth::App {
        app_id: APP_ID,
        private_key_pem: TEST_APP_PRIVATE_KEY_PEM.into(),
    };
    let client = client(&fake, auth);
    (fake, client)
}

fn calls<'a>(log: &'a [RequestRecord], method: &str, path_end: &str) -> Vec<&'a RequestRecord> {
    log.iter()
        .filter(|r| r.method == method && r.path.ends_with(path_end))
        .collect()
}

fn exchanges(fake: &FakeGitHub) -> usize {
    calls(&fake.requests(), "POST", "/access_tokens").len()
}

#[tokio::test]
async fn lists_every_run_of_a_commit_across_pages_with_githubs_headers() {
    let (fake, client) = with_token().await;
    let (ours, other) = (sha('a'), sha('b'));
    for id in 1..=230 {
        fake.put_run(
            REPO,
            FakeRun::completed(id, &format!("wf-{id}"), ours.as_str(), "success"),
        );
    }
    for id in 500..505 {
        fake.put_run(
            REPO,
            FakeRun::completed(id, "other", other.as_str(), "failure"),
        );
    }

    let runs = client
        .workflow_runs_for_commit(repo(None), &ours)
        .await
        .unwrap();

    let ids: BTreeSet<u64> = runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=230).collect::<BTreeSet<_>>());
    let log = fake.requests();
    let pages = calls(&log, "GET", "/actions/runs");
    assert_eq!(pages.len(), 3, "230 runs at 100 per page");
    let page_numbers: Vec<Option<String>> = pages.iter().map(|r| r.query_param("page")).collect();
    assert_eq!(page_numbers, [None, Some("2".into()), Some("3".into())]);
    for call in &pages {
        assert_eq!(call.query_param("head_sha").as_deref(), Some(ours.as_str()));
        assert_eq!(call.query_param("per_page").as_deref(), Some("100"));
        assert_eq!(call.accept.as_deref(), Some("application/vnd.github+json"));
        assert_eq!(call.api_version.as_deref(), Some("2022-11-28"));
        assert!(call.user_agent.as_deref().is_some_and(|ua| !ua.is_empty()));
        assert_eq!(call.credential, Presented::Token);
    }
}

#[tokio::test]
async fn maps_statuses_conclusions_and_attempts() {
    let (fake, client) = with_token().await;
    let commit = sha('c');
    let at = |status: &str, conclusion: Option<&str>, attempt| FakeRun {
        status: status.into(),
        conclusion: conclusion.map(Into::into),
        run_attempt: attempt,
        ..FakeRun::in_progress(0, "wf", commit.as_str())
    };
    let runs = [
        (1, at("completed", Some("failure"), 2)),
        (2, at("completed", Some("success"), 1)),
        (3, at("in_progress", None, 1)),
        (4, at("queued", None, 1)),
        (5, at("completed", Some("timed_out"), 1)),
        (
            6,
            at("completed", Some("a_conclusion_github_adds_later"), 1),
        ),
        (7, at("completed", Some("startup_failure"), 3)),
    ];
    for (id, run) in runs {
        fake.put_run(
            REPO,
            FakeRun {
                id,
                name: format!("wf-{id}"),
                ..run
            },
        );
    }

    let runs: HashMap<u64, _> = client
        .workflow_runs_for_commit(repo(None), &commit)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r))
        .collect();

    let status = |id| runs[&id].status;
    assert_eq!(status(1), RunStatus::Failure);
    assert_eq!(status(2), RunStatus::Completed);
    assert_eq!(status(3), RunStatus::Pending);
    assert_eq!(status(4), RunStatus::Pending);
    assert_eq!(status(5), RunStatus::Failure);
    assert_eq!(status(6), RunStatus::Completed);
    assert_eq!(status(7), RunStatus::Failure);
    assert_eq!((runs[&1].attempt, runs[&7].attempt), (2, 3));
    assert_eq!(runs[&1].conclusion.as_deref(), Some("failure"));
    assert_eq!(runs[&3].conclusion, None);
    assert_eq!(runs[&2].name, "wf-2");
    assert!(
        runs[&2]
            .html_url
            .ends_with("/octo-org/octo-repo/actions/runs/2")
    );
}

#[tokio::test]
async fn reads_roles_and_treats_non_collaborators_as_none() {
    let (fake, client) = with_token().await;
    let roles = [
        ("alice", Permission::Admin),
        ("Maya", Permission::Maintain),
        ("wes", Permission::Write),
        ("tia", Permission::Triage),
        ("reid", Permission::Read),
    ];
    for (user, role) in roles {
        fake.set_permission(REPO, user, role);
    }

    for (user, role) in roles {
        assert_eq!(
            client
                .collaborator_permission(repo(None), user)
                .await
                .unwrap(),
            role,
            "{user}"
        );
    }
    // Logins are case-insensitive; a maintainer shows as `write` in the legacy field.
    let maya = client
        .collaborator_permission(repo(None), "maya")
        .await
        .unwrap();
    assert!(maya.can_write());
    let stranger = client
        .collaborator_permission(repo(None), "stranger")
        .await
        .unwrap();
    assert_eq!(stranger, Permission::None);
    assert!(!stranger.can_write());
    let log = fake.requests();
    assert_eq!(
        calls(&log, "GET", "/collaborators/stranger/permission")[0].status,
        404
    );
}

#[tokio::test]
async fn looks_pull_requests_up_by_number_and_by_head() {
    let (fake, client) = with_token().await;
    let head = sha('d');
    fake.put_pull_request(REPO, FakePullRequest::open(2, head.as_str(), "changes"));
    fake.put_pull_request(
        REPO,
        FakePullRequest {
            state: "closed".into(),
            ..FakePullRequest::open(3, "e", "old")
        },
    );
    let fork = FakePullRequest {
        head_owner: Some("forker".into()),
        ..FakePullRequest::open(4, "f", "patch-1")
    };
    fake.put_pull_request(REPO, fork);

    let two = client.pull_request(repo(None), 2).await.unwrap().unwrap();
    assert_eq!(
        two,
        PullRequest {
            number: 2,
            open: true,
            head_sha: head.as_str().into(),
            head_ref: "changes".into(),
            author: Some(ApiActor {
                login: "octo-org".into(),
                id: Some(account_id("octo-org")),
                kind: Some("User".into()),
            }),
        }
    );
    assert!(
        !client
            .pull_request(repo(None), 3)
            .await
            .unwrap()
            .unwrap()
            .open
    );
    assert_eq!(client.pull_request(repo(None), 99).await.unwrap(), None);

    let by_fork = client
        .open_pull_requests_by_head(repo(None), "forker", "patch-1")
        .await
        .unwrap();
    assert_eq!(by_fork.iter().map(|pr| pr.number).collect::<Vec<_>>(), [4]);
    assert!(
        client
            .open_pull_requests_by_head(repo(None), "octo-org", "patch-1")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client
            .open_pull_requests_by_head(repo(None), "octo-org", "old")
            .await
            .unwrap()
            .is_empty(),
        "closed"
    );
}

#[tokio::test]
async fn lists_every_open_pull_request_of_a_head_across_pages() {
    let (fake, client) = with_token().await;
    for number in 1..=130 {
        fake.put_pull_request(REPO, FakePullRequest::open(number, "a", "release"));
    }

    let pulls = client
        .open_pull_requests_by_head(repo(None), "octo-org", "release")
        .await
        .unwrap();

    assert_eq!(pulls.len(), 130);
    let log = fake.requests();
    let pages = calls(&log, "GET", "/pulls");
    assert_eq!(pages.len(), 2);
    assert_eq!(
        pages[0].query_param("head").as_deref(),
        Some("octo-org:release")
    );
    assert_eq!(pages[0].query_param("state").as_deref(), Some("open"));
}

#[tokio::test]
async fn creates_the_marker_comment_once_then_edits_it_on_page_two() {
    let (fake, client) = with_token().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));
    for n in 0..150 {
        fake.add_comment(REPO, 2, "reviewer", &format!("comment {n}"));
    }

    let first = client
        .upsert_pr_comment(
            repo(None),
            2,
            MARKER,
            &format!("{MARKER}\nTwo workflows failed."),
        )
        .await
        .unwrap();
    let CommentOutcome::Created { id } = first else {
        panic!("expected a new comment, got {first:?}")
    };
    let second = client
        .upsert_pr_comment(
            repo(None),
            2,
            MARKER,
            &format!("{MARKER}\nOne workflow failed."),
        )
        .await
        .unwrap();

    assert_eq!(second, CommentOutcome::Updated { id });
    let comments = fake.comments(REPO, 2);
    assert_eq!(comments.len(), 151, "never duplicated");
    let ours: Vec<_> = comments
        .iter()
        .filter(|c| c.body.contains(MARKER))
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].id, id);
    assert!(ours[0].body.ends_with("One workflow failed."));
    let log = fake.requests();
    assert_eq!(calls(&log, "POST", "/issues/2/comments").len(), 1);
    let edits = calls(&log, "PATCH", &format!("/issues/comments/{id}"));
    assert_eq!(edits.len(), 1);
    // The second upsert found the comment on page 2.
    assert_eq!(
        calls(&log, "GET", "/issues/2/comments")
            .last()
            .unwrap()
            .query_param("page")
            .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn a_body_without_the_marker_gets_it_so_the_next_call_finds_it() {
    let (fake, client) = with_token().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));

    let first = client
        .upsert_pr_comment(repo(None), 2, MARKER, "Red CI.")
        .await
        .unwrap();
    let second = client
        .upsert_pr_comment(repo(None), 2, MARKER, "Still red.")
        .await
        .unwrap();

    let CommentOutcome::Created { id } = first else {
        panic!("expected a new comment, got {first:?}")
    };
    assert_eq!(second, CommentOutcome::Updated { id });
    assert_eq!(fake.comments(REPO, 2).len(), 1);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_duplicated() {
    let (fake, client) = with_token().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));
    fake.inject(FaultRule::next(1, Fault::LostAnswer).on("POST", "/issues/2/comments"));

    let outcome = client
        .upsert_pr_comment(repo(None), 2, MARKER, MARKER)
        .await
        .unwrap();

    let comments = fake.comments(REPO, 2);
    assert_eq!(comments.len(), 1);
    assert_eq!(outcome, CommentOutcome::Updated { id: comments[0].id });
}

#[tokio::test]
async fn commenting_on_a_missing_pull_request_is_a_404() {
    let (_fake, client) = with_token().await;
    let err = client
        .upsert_pr_comment(repo(None), 77, MARKER, MARKER)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitHubError::Status { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn waits_out_a_short_secondary_rate_limit() {
    let (fake, client) = with_token().await;
    fake.put_run(
        REPO,
        FakeRun::completed(1, "ci", sha('a').as_str(), "failure"),
    );
    fake.inject(FaultRule::next(
        1,
        Fault::RateLimited {
            retry_after_secs: 1,
        },
    ));

    let runs = client
        .workflow_runs_for_commit(repo(None), &sha('a'))
        .await
        .unwrap();

    assert_eq!(runs.len(), 1);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test]
async fn waits_for_an_exhausted_quota_to_reset() {
    let (fake, client) = with_token().await;
    fake.set_permission(REPO, "wes", Permission::Write);
    fake.inject(FaultRule::next(
        1,
        Fault::QuotaExhausted { reset_in_secs: 1 },
    ));

    assert_eq!(
        client
            .collaborator_permission(repo(None), "wes")
            .await
            .unwrap(),
        Permission::Write
    );
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [403, 200]);
}

#[tokio::test]
async fn a_long_rate_limit_is_reported_instead_of_waited() {
    let (fake, client) = with_token().await;
    fake.inject(FaultRule::next(
        1,
        Fault::RateLimited {
            retry_after_secs: 3600,
        },
    ));

    let err = client.pull_request(repo(None), 2).await.unwrap_err();

    assert!(
        matches!(
            err,
            GitHubError::RateLimited {
                retry_after_secs: 3600
            }
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn persistent_server_errors_become_unavailable_after_bounded_attempts() {
    let (fake, client) = with_token().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));
    fake.inject(FaultRule::next(100, Fault::ServerError(502)));

    let err = client.pull_request(repo(None), 2).await.unwrap_err();

    assert!(matches!(err, GitHubError::Unavailable(_)), "{err:?}");
    assert_eq!(
        fake.requests().len(),
        ClientOptions::default().max_attempts as usize
    );
}

#[tokio::test]
async fn a_passing_server_error_is_retried() {
    let (fake, client) = with_token().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));
    fake.inject(FaultRule::next(1, Fault::ServerError(503)));

    assert!(client.pull_request(repo(None), 2).await.unwrap().is_some());
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 200]);
}

#[tokio::test]
async fn an_unreachable_github_is_unavailable() {
    // A port that was free a moment ago and that nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = GitHubConfig {
        api_url: format!("http://{closed}"),
        auth: GitHubAuth::Anonymous,
    };
    let client = GitHubClient::with_options(config, options()).unwrap();

    let err = client.pull_request(repo(None), 2).await.unwrap_err();

    assert!(matches!(err, GitHubError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_an_auth_error() {
    let (fake, _) = with_token().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));

    for auth in [GitHubAuth::Token("ghp_wrong".into()), GitHubAuth::Anonymous] {
        let err = client(&fake, auth)
            .pull_request(repo(None), 2)
            .await
            .unwrap_err();
        assert!(matches!(err, GitHubError::Auth(_)), "{err:?}");
    }
    assert!(fake.requests().iter().all(|r| r.status == 401));
}

#[tokio::test]
async fn app_auth_exchanges_one_token_for_many_calls() {
    let (fake, client) = with_app().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));
    fake.set_permission(REPO, "wes", Permission::Write);
    let on = repo(Some(INSTALLATION));

    client
        .workflow_runs_for_commit(on, &sha('a'))
        .await
        .unwrap();
    client.collaborator_permission(on, "wes").await.unwrap();
    client.pull_request(on, 2).await.unwrap();
    client
        .upsert_pr_comment(on, 2, MARKER, MARKER)
        .await
        .unwrap();

    assert_eq!(exchanges(&fake), 1);
    let log = fake.requests();
    let exchange = &calls(&log, "POST", "/access_tokens")[0];
    assert_eq!(
        exchange.path,
        format!("/app/installations/{INSTALLATION}/access_tokens")
    );
    assert_eq!(
        (exchange.credential, exchange.status),
        (Presented::AppJwt, 201)
    );
    let api_calls: Vec<_> = log
        .iter()
        .filter(|r| r.path.starts_with("/repos/"))
        .collect();
    assert!(api_calls.len() >= 5);
    assert!(api_calls.iter().all(|r| r.credential
        == Presented::InstallationToken {
            installation: INSTALLATION
        }));
    assert_eq!(fake.comments(REPO, 2)[0].user, "proactive-app[bot]");
}

#[tokio::test]
async fn concurrent_calls_share_one_exchange() {
    let (fake, client) = with_app().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));

    let calls = (0..8).map(|_| client.pull_request(repo(Some(INSTALLATION)), 2));
    for found in futures::future::join_all(calls).await {
        assert!(found.unwrap().is_some());
    }
    assert_eq!(exchanges(&fake), 1);
}

#[tokio::test]
async fn a_revoked_installation_token_is_replaced_once() {
    let (fake, client) = with_app().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));
    let on = repo(Some(INSTALLATION));
    client.pull_request(on, 2).await.unwrap();

    fake.revoke_installation_tokens();
    assert!(client.pull_request(on, 2).await.unwrap().is_some());

    assert_eq!(exchanges(&fake), 2);
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pulls/2"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 401, 200]);
}

#[tokio::test]
async fn a_token_close_to_expiry_is_not_reused() {
    let (fake, client) = with_app().await;
    fake.put_pull_request(REPO, FakePullRequest::open(2, "a", "changes"));
    // Shorter than the client's five-minute margin: each call needs a fresh token.
    fake.set_installation_token_ttl(Duration::from_secs(120));
    let on = repo(Some(INSTALLATION));

    client.pull_request(on, 2).await.unwrap();
    client.pull_request(on, 2).await.unwrap();

    assert_eq!(exchanges(&fake), 2);
}

#[tokio::test]
async fn app_auth_without_an_installation_is_refused_before_calling() {
    let (fake, client) = with_app().await;
    let err = client.pull_request(repo(None), 2).await.unwrap_err();
    assert!(matches!(err, GitHubError::Auth(_)), "{err:?}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_jwt_of_another_app_or_an_unknown_installation_is_an_auth_error() {
    let (fake, _) = with_app().await;
    let stranger = GitHubAuth::App {
        app_id: APP_ID + 1,
        private_key_pem: TEST_APP_PRIVATE_KEY_PEM.into(),
    };
    let err = client(&fake, stranger)
        .pull_request(repo(Some(INSTALLATION)), 2)
        .await
        .unwrap_err();
    assert!(matches!(err, GitHubError::Auth(_)), "{err:?}");

    let ours = GitHubAuth::App {
        app_id: APP_ID,
        private_key_pem: TEST_APP_PRIVATE_KEY_PEM.into(),
    };
    let err = client(&fake, ours)
        .pull_request(repo(Some(999)), 2)
        .await
        .unwrap_err();
    assert!(matches!(err, GitHubError::Auth(_)), "{err:?}");
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 404]);
}

#[tokio::test]
async fn an_installation_token_sees_only_its_own_repositories() {
    let (fake, client) = with_app().await;
    fake.install_app(INSTALLATION + 1, "someone/else");
    fake.put_pull_request("someone/else", FakePullRequest::open(2, "a", "changes"));
    let elsewhere = RepoRef {
        owner: "someone",
        name: "else",
        installation_id: Some(INSTALLATION),
    };

    assert_eq!(client.pull_request(elsewhere, 2).await.unwrap(), None);
}

#[test]
fn app_configuration_accepts_the_pem_with_escaped_newlines_and_refuses_a_public_key() {
    let vars = |key: &str| {
        let pairs = HashMap::from([
            ("GITHUB_APP_ID", APP_ID.to_string()),
            ("GITHUB_APP_PRIVATE_KEY", key.to_owned()),
        ]);
        move |name: &'static str| pairs.get(name).cloned()
    };
    let config =
        GitHubConfig::from_vars(vars(&TEST_APP_PRIVATE_KEY_PEM.replace('\n', "\\n"))).unwrap();
    let GitHubAuth::App {
        app_id,
        private_key_pem,
    } = &config.auth
    else {
        panic!("expected App auth, got {config:?}");
    };
    assert_eq!(
        (*app_id, private_key_pem.trim()),
        (APP_ID, TEST_APP_PRIVATE_KEY_PEM.trim())
    );
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));

    let refused = GitHubConfig::from_vars(vars(TEST_APP_PUBLIC_KEY_PEM)).unwrap_err();
    assert!(
        matches!(
            refused,
            ConfigError::Invalid {
                name: "GITHUB_APP_PRIVATE_KEY",
                ..
            }
        ),
        "{refused:?}"
    );
}
