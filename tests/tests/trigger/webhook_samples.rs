//! The sample webhooks in `events/webhook/`, the GitHub fake's seed, and the `send-webhook` logic:
//! reproducible, signed, readable by `lambda_http`, telling one consistent story.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use e2e::fakes::github::{FakeGitHub, Seed};
use e2e::webhook_samples::{self, LOCAL_WEBHOOK_SECRET};
use e2e::webhook_sender::{read_delivery, send};
use lambda_http::Body;
use serde_json::{Value, json};
use shared::domain::{HeadSha, RunStatus};
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig, Permission, RepoRef};
use webhook::signature;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// `events/github-webhooks` (copied in with their licence).
fn fixtures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/github-webhooks");
    assert!(
        dir.is_dir(),
        "the GitHub fixtures are expected at {}",
        dir.display()
    );
    dir
}

/// Every committed sample: file name -> the API Gateway request.
fn committed_samples() -> BTreeMap<String, String> {
    std::fs::read_dir(events_dir().join("webhook"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// The GitHub payload a sample carries.
fn payload(file_name: &str) -> Value {
    let text = &committed_samples()[file_name];
    let delivery = read_delivery(text.as_bytes(), None).unwrap();
    serde_json::from_slice(&delivery.body).unwrap()
}

#[test]
fn the_committed_files_are_what_the_generator_writes() {
    let rendered = webhook_samples::render(&fixtures_dir()).unwrap();
    for (relative, text) in &rendered {
        let committed = std::fs::read_to_string(events_dir().join(relative))
            .unwrap_or_else(|e| panic!("events/{}: {e}", relative.display()));
        assert!(
            committed == *text,
            "events/{} differs from the generator's; run `cargo run -p e2e --bin make-webhook-samples`",
            relative.display()
        );
    }
    let generated: BTreeSet<String> = rendered
        .iter()
        .filter_map(|(p, _)| {
            p.strip_prefix("webhook")
                .ok()
                .map(|p| p.display().to_string())
        })
        .collect();
    let committed: BTreeSet<String> = committed_samples().into_keys().collect();
    assert_eq!(
        committed, generated,
        "events/webhook holds exactly the generated samples"
    );
}

#[test]
fn every_sample_is_a_signed_request_lambda_http_reads() {
    let mut deliveries = HashSet::new();
    for (name, text) in committed_samples() {
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(request.method(), "POST", "{name}");
        assert_eq!(request.uri().path(), "/webhooks/github", "{name}");
        let header = |h: &str| {
            request
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        assert!(!header("x-github-event").is_empty(), "{name}");
        assert!(
            deliveries.insert(header("x-github-delivery").to_owned()),
            "{name}: delivery id reused"
        );
        let body: &[u8] = match request.body() {
            Body::Text(text) => text.as_bytes(),
            Body::Binary(bytes) => bytes,
            Body::Empty => panic!("{name}: empty body"),
            _ => panic!("{name}: unexpected body kind"),
        };
        let signed = header("x-hub-signature-256");
        assert!(
            signature::verify(LOCAL_WEBHOOK_SECRET.as_bytes(), body, Some(signed)),
            "{name}: signature"
        );
        assert!(
            serde_json::from_slice::<Value>(body).is_ok(),
            "{name}: body is JSON"
        );
        assert_eq!(header("content-length"), body.len().to_string(), "{name}");

        // The sender reads the same delivery out of the file.
        let delivery = read_delivery(text.as_bytes(), None).unwrap();
        assert_eq!(
            (delivery.event.as_str(), delivery.body.as_slice()),
            (header("x-github-event"), body)
        );
    }
    let raw: Value = serde_json::from_str(&committed_samples()["ping-base64.json"]).unwrap();
    assert_eq!(raw["isBase64Encoded"], json!(true));
}

#[test]
fn the_samples_and_the_seed_tell_one_story() {
    let requested = payload("workflow-run-requested.json");
    let failed = payload("workflow-run-completed-failure.json");
    let succeeded = payload("workflow-run-completed-success.json");
    let created = payload("installation-created.json");
    let added = payload("installation-repositories-added.json");
    let seed = Seed::load(&events_dir().join("github-seed.json")).unwrap();
    let seeded = &seed.repositories[0];

    let run = &failed["workflow_run"];
    assert_eq!(
        (requested["action"].as_str(), run["conclusion"].as_str()),
        (Some("requested"), Some("failure"))
    );
    assert_eq!(succeeded["workflow_run"]["conclusion"], json!("success"));
    assert_eq!(requested["workflow_run"]["conclusion"], Value::Null);
    assert_eq!(
        requested["workflow_run"]["id"], run["id"],
        "the requested run is the one that fails"
    );
    assert_ne!(succeeded["workflow_run"]["id"], run["id"]);

    let repository = &failed["repository"];
    for installation_event in [&created["repositories"][0], &added["repositories_added"][0]] {
        assert_eq!(installation_event["id"], repository["id"]);
        assert_eq!(installation_event["full_name"], repository["full_name"]);
    }
    for event in [&requested, &failed, &succeeded, &created, &added] {
        assert_eq!(event["installation"]["id"], created["installation"]["id"]);
        assert_eq!(event["sender"]["login"], failed["sender"]["login"]);
    }
    for event in [&requested, &succeeded] {
        assert_eq!(event["repository"], *repository);
        assert_eq!(event["workflow_run"]["head_sha"], run["head_sha"]);
        assert_eq!(event["workflow_run"]["pull_requests"], run["pull_requests"]);
    }

    let pr = &run["pull_requests"][0];
    assert_eq!(pr["head"]["sha"], run["head_sha"]);
    assert_eq!(pr["head"]["ref"], run["head_branch"]);
    assert_eq!(pr["base"]["repo"]["id"], repository["id"]);
    assert_eq!(seeded.full_name, repository["full_name"].as_str().unwrap());
    assert_eq!(seeded.id, repository["id"].as_u64());
    assert_eq!(
        seeded.installation_id,
        created["installation"]["id"].as_u64()
    );
    let seeded_pr = &seeded.pull_requests[0];
    assert_eq!(
        (seeded_pr.number, seeded_pr.state.as_str()),
        (pr["number"].as_u64().unwrap(), "open")
    );
    assert_eq!(seeded_pr.head_sha, run["head_sha"].as_str().unwrap());
    assert_eq!(seeded_pr.head_ref, run["head_branch"].as_str().unwrap());
    let seeded_runs: BTreeSet<u64> = seeded.workflow_runs.iter().map(|r| r.id).collect();
    let story_runs: BTreeSet<u64> = [
        run["id"].as_u64().unwrap(),
        succeeded["workflow_run"]["id"].as_u64().unwrap(),
    ]
    .into();
    assert_eq!(seeded_runs, story_runs);
    let actor = run["triggering_actor"]["login"].as_str().unwrap();
    assert_eq!(
        seeded.collaborators.get(actor).map(String::as_str),
        Some("write")
    );
}

#[tokio::test]
async fn the_seeded_fake_answers_what_the_webhook_asks() {
    let fake = FakeGitHub::start().await;
    fake.apply_seed(&Seed::load(&events_dir().join("github-seed.json")).unwrap())
        .unwrap();
    let auth = GitHubAuth::Token(webhook_samples::LOCAL_GITHUB_TOKEN.into());
    let config = GitHubConfig {
        api_url: fake.url().to_owned(),
        auth,
    };
    let client = GitHubClient::new(config).unwrap();
    let repo = RepoRef {
        owner: webhook_samples::OWNER,
        name: webhook_samples::NAME,
        installation_id: Some(webhook_samples::INSTALLATION_ID),
    };
    let head = HeadSha::parse(webhook_samples::HEAD_SHA).unwrap();

    let runs = client.workflow_runs_for_commit(repo, &head).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Pending),
        "both runs still going at snapshot time"
    );
    let pr = client
        .pull_request(repo, webhook_samples::PR_NUMBER)
        .await
        .unwrap()
        .unwrap();
    assert!(pr.open && pr.head_sha == webhook_samples::HEAD_SHA);
    let by_head = client.open_pull_requests_by_head(
        repo,
        webhook_samples::OWNER,
        webhook_samples::HEAD_BRANCH,
    );
    assert_eq!(by_head.await.unwrap(), [pr]);
    let actor = client
        .collaborator_permission(repo, webhook_samples::ACTOR)
        .await
        .unwrap();
    assert_eq!(actor, Permission::Write);
}

/// What a receiving endpoint saw.
#[derive(Default, Clone)]
struct Received {
    headers: Vec<HeaderMap>,
    bodies: Vec<Bytes>,
}

#[tokio::test]
async fn the_sender_resigns_a_sample_and_posts_it_as_github_would() {
    let received = Arc::new(Mutex::new(Received::default()));
    let seen = received.clone();
    let endpoint = axum::Router::new().route(
        "/webhooks/github",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let signed = headers
                .get("x-hub-signature-256")
                .and_then(|v| v.to_str().ok());
            let valid = signature::verify(b"another-secret", &body, signed);
            let mut seen = seen.lock().unwrap();
            seen.headers.push(headers);
            seen.bodies.push(body);
            let status = if valid {
                StatusCode::ACCEPTED
            } else {
                StatusCode::UNAUTHORIZED
            };
            (status, axum::Json(json!({"signature_valid": valid})))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/github", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, endpoint).await });

    let sample = &committed_samples()["ping-base64.json"];
    let mut delivery = read_delivery(sample.as_bytes(), None).unwrap();
    delivery.delivery_id = "resend-1".into();
    let answer = send(&url, b"another-secret", &delivery).await.unwrap();
    let raw = br#"{"zen":"Design for failure."}"#;
    let raw_delivery = read_delivery(raw, Some("ping")).unwrap();
    let raw_answer = send(&url, b"another-secret", &raw_delivery).await.unwrap();
    server.abort();

    assert_eq!(
        (answer.status, answer.body.clone()),
        (202, json!({"signature_valid": true}))
    );
    assert_eq!(raw_answer.status, 202);
    let received = received.lock().unwrap().clone();
    let header = |i: usize, h: &str| {
        received.headers[i]
            .get(h)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        (header(0, "x-github-event"), header(0, "x-github-delivery")),
        ("ping".into(), "resend-1".into())
    );
    assert_eq!(header(0, "content-type"), "application/json");
    assert_eq!(
        received.bodies[0].as_ref(),
        delivery.body.as_slice(),
        "the decoded body, byte for byte"
    );
    assert!(serde_json::from_slice::<Value>(&received.bodies[0]).is_ok());
    assert_eq!(
        received.bodies[1].as_ref(),
        raw,
        "a raw payload is sent as written"
    );
    assert!(
        read_delivery(raw, None).is_err(),
        "a raw payload needs its event named"
    );
}
