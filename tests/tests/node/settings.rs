//! Where proactive conversations are wanted: a user's own setting (`/api/settings`) and a repository's
//! (`PATCH /api/repositories/{owner}/{name}/settings`, for its admins on GitHub), written where the
//! webhook reads them.

use e2e::fakes::github::FakeGitHub;
use e2e::node::{NodeOptions, Stores, TestNode, token};
use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::domain::{RepoId, Repository, UserId, UserSettings};
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig, Permission};
use shared::proactive::AccountLinks;

const REPO: &str = "octo-org/widgets";
const SETTINGS: &str = "/api/repositories/octo-org/widgets/settings";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_turns_proactive_conversations_off_and_on() {
    let stores = Stores::embedded().await;
    let node = TestNode::standalone(&stores, NodeOptions::new()).await;
    let alice = token("alice");

    let (status, shown) = node.get("/api/settings", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        shown,
        json!({ "proactive_conversations": true }),
        "the default"
    );
    let off = json!({ "proactive_conversations": false });
    let (status, shown) = node
        .send(
            node.request(Method::PATCH, "/api/settings")
                .bearer_auth(&alice)
                .json(&off),
        )
        .await;
    assert_eq!((status, shown), (StatusCode::OK, off.clone()));
    assert_eq!(node.get("/api/settings", Some(&alice)).await.1, off);
    let stored = stores
        .proactive
        .get_user_settings(&UserId::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(
        stored,
        UserSettings {
            proactive_conversations: Some(false)
        },
        "where the webhook reads it"
    );
    let bob = token("bob");
    assert_eq!(
        node.get("/api/settings", Some(&bob)).await.1["proactive_conversations"],
        true,
        "bob's own"
    );

    let (status, body) = node
        .send(
            node.request(Method::PATCH, "/api/settings")
                .bearer_auth(&alice)
                .json(&json!({ "proactive_conversations": "no" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "bad_request");
    let (status, _) = node.get("/api/settings", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_of_a_repository_changes_its_setting() {
    let github = FakeGitHub::start().await;
    github.set_permission(REPO, "ada", Permission::Admin);
    github.set_permission(REPO, "wes", Permission::Write);
    let stores = Stores::embedded().await;
    let id = RepoId::from_github(42);
    let registered = Repository {
        id: id.clone(),
        owner: "octo-org".into(),
        name: "widgets".into(),
        installation_id: None,
        account: "octo-org".into(),
        user_id: UserId::from_github(1),
        proactive_enabled: true,
    };
    stores.proactive.put_repository(&registered).await.unwrap();
    let mut options = NodeOptions::new();
    options.github = Some(
        GitHubClient::new(GitHubConfig {
            api_url: github.url().to_owned(),
            auth: GitHubAuth::Anonymous,
        })
        .unwrap(),
    );
    options.links = AccountLinks::configured("ada=alice,wes=bob").unwrap();
    let node = TestNode::standalone(&stores, options).await;
    let patch = |user: &str, path: &str, on: bool| {
        node.request(Method::PATCH, path)
            .bearer_auth(token(user))
            .json(&json!({ "proactive_conversations": on }))
    };
    let enabled = || async {
        stores
            .proactive
            .get_repository(&id)
            .await
            .unwrap()
            .unwrap()
            .proactive_enabled
    };

    let (status, body) = node.send(patch("bob", SETTINGS, false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("admin"),
        "{body}"
    );
    let (status, body) = node.send(patch("carol", SETTINGS, false)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["message"].as_str().unwrap().contains("not linked"),
        "{body}"
    );
    assert!(enabled().await, "refused changes change nothing");

    let (status, body) = node.send(patch("alice", SETTINGS, false)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "repository": REPO, "proactive_conversations": false })
    );
    assert!(!enabled().await, "where the webhook reads it");
    let (status, _) = node.send(patch("alice", SETTINGS, true)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(enabled().await);

    let (status, body) = node
        .send(patch(
            "alice",
            "/api/repositories/octo-org/unknown/settings",
            false,
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
}
