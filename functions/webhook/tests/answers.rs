//! Every row of the webhook's answer table, through the function's router fed API Gateway v2 requests
//! (as `lambda_http::run` serves it) carrying the real GitHub payloads of `events/github-webhooks/`.

use std::sync::Arc;

use base64::Engine;
use http::StatusCode;
use lambda_http::Request;
use serde_json::{Value, json};
use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::adapters::in_process_bus::InProcessBus;
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig};
use shared::proactive::AccountLinks;
use tower::ServiceExt;
use webhook::signature::sign;
use webhook::{WebhookService, WebhookSettings};

const SECRET: &str = "answers-test-secret";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/github-webhooks");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("a fixture in events/github-webhooks")
}

struct Harness {
    service: WebhookService,
    bus: InProcessBus,
    _dir: tempfile::TempDir,
}

/// A service over a fresh embedded store. Its GitHub base URL is a closed port: these cases are all
/// answered before any GitHub call, and a stray call would surface as a 503, failing the test.
async fn harness(settings: WebhookSettings) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedProactiveStore::open(EmbeddedDb::open(dir.path()).unwrap())
        .await
        .unwrap();
    let bus = InProcessBus::default();
    let github = GitHubClient::new(GitHubConfig {
        api_url: "http://127.0.0.1:9".into(),
        auth: GitHubAuth::Anonymous,
    })
    .unwrap();
    let links = AccountLinks::configured("*=local-user").unwrap();
    let service = WebhookService::new(
        Arc::new(store),
        Arc::new(bus.clone()),
        github,
        links,
        settings,
    );
    Harness {
        service,
        bus,
        _dir: dir,
    }
}

/// An API Gateway HTTP API (payload 2.0) request, the body base64-encoded as API Gateway does for binary.
fn request(headers: Value, body: &[u8]) -> Request {
    let event = json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/github",
        "rawPath": "/webhooks/github",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "example.com", "domainPrefix": "example",
            "http": { "method": "POST", "path": "/webhooks/github", "protocol": "HTTP/1.1",
                      "sourceIp": "192.0.2.1", "userAgent": "GitHub-Hookshot/abc" },
            "requestId": "req", "routeKey": "POST /webhooks/github", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 1767225600000u64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

fn signed(event: &str, delivery: &str, body: &[u8]) -> Request {
    request(
        json!({
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": delivery,
            "x-hub-signature-256": sign(SECRET.as_bytes(), body),
        }),
        body,
    )
}

async fn answer(harness: &Harness, request: Request) -> (StatusCode, Value) {
    let response = webhook::lambda_app(harness.service.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    assert_eq!(response.headers()["content-type"], "application/json");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the whole body");
    (status, serde_json::from_slice(&body).expect("JSON body"))
}

#[tokio::test]
async fn a_missing_or_wrong_signature_is_401_and_stores_nothing() {
    let h = harness(WebhookSettings::with_secret(SECRET)).await;
    let body = fixture("ping.json");
    let unsigned = request(
        json!({"x-github-event": "ping", "x-github-delivery": "d-1"}),
        &body,
    );
    let (status, json) = answer(&h, unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256")
    );

    let forged = request(
        json!({"x-github-event": "ping", "x-github-delivery": "d-1",
               "x-hub-signature-256": sign(b"not the secret", &body)}),
        &body,
    );
    assert_eq!(answer(&h, forged).await.0, StatusCode::UNAUTHORIZED);
    // Nothing was remembered: the same delivery, properly signed, is handled, not a duplicate.
    let (status, json) = answer(&h, signed("ping", "d-1", &body)).await;
    assert_eq!((status, json["ok"].clone()), (StatusCode::OK, json!(true)));
}

#[tokio::test]
async fn ping_is_200_and_a_redelivery_is_a_duplicate() {
    let h = harness(WebhookSettings::with_secret(SECRET)).await;
    for name in ["ping.json", "ping.with-app_id.json"] {
        let body = fixture(name);
        let (status, json) = answer(&h, signed("ping", name, &body)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {json}");
        let (status, json) = answer(&h, signed("ping", name, &body)).await;
        assert_eq!(
            (status, json),
            (StatusCode::OK, json!({"duplicate": true})),
            "{name}"
        );
    }
}

#[tokio::test]
async fn events_and_actions_the_product_does_not_use_are_ignored_with_a_reason() {
    let h = harness(WebhookSettings::with_secret(SECRET)).await;
    let cases = [
        (
            "check_suite",
            "check_suite.completed.json",
            "event `check_suite` is not used",
        ),
        (
            "workflow_job",
            "workflow_job.completed.failure.with-organization.json",
            "event `workflow_job` is not used",
        ),
    ];
    for (event, name, reason) in cases {
        let (status, json) = answer(&h, signed(event, name, &fixture(name))).await;
        assert_eq!(
            (status, json),
            (StatusCode::ACCEPTED, json!({ "ignored": reason })),
            "{name}"
        );
    }
    let mut body: Value = serde_json::from_slice(&fixture("workflow_run.completed.json")).unwrap();
    body["action"] = json!("deleted");
    let (status, json) = answer(
        &h,
        signed("workflow_run", "d-action", body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(json["ignored"], "workflow_run action `deleted` is not used");
}

#[tokio::test]
async fn a_run_of_an_unregistered_repository_or_with_proactive_disabled_is_ignored() {
    let h = harness(WebhookSettings::with_secret(SECRET)).await;
    let mut published = h.bus.subscribe();
    let body = fixture("workflow_run.completed.with-pull-requests.json");
    let (status, json) = answer(&h, signed("workflow_run", "d-unreg", &body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        json["ignored"],
        "repository `octo-org/octo-repo` is not registered"
    );

    let disabled = harness(WebhookSettings {
        proactive_enabled: false,
        ..WebhookSettings::with_secret(SECRET)
    })
    .await;
    let (status, json) = answer(&disabled, signed("workflow_run", "d-off", &body)).await;
    assert_eq!(
        (status, json["ignored"].clone()),
        (
            StatusCode::ACCEPTED,
            json!("proactive conversations are disabled")
        )
    );
    assert!(published.try_recv().is_err(), "nothing may be published");
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field() {
    let h = harness(WebhookSettings::with_secret(SECRET)).await;
    let mut body: Value = serde_json::from_slice(&fixture("workflow_run.completed.json")).unwrap();
    body["workflow_run"]
        .as_object_mut()
        .unwrap()
        .remove("head_sha");
    let (status, json) = answer(
        &h,
        signed("workflow_run", "d-400a", body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["field"], "workflow_run.head_sha");

    body = serde_json::from_slice(&fixture("workflow_run.completed.json")).unwrap();
    body["repository"]["id"] = json!("186853002");
    let (status, json) = answer(
        &h,
        signed("workflow_run", "d-400b", body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(
        (status, json["field"].clone()),
        (StatusCode::BAD_REQUEST, json!("repository.id"))
    );

    // Names GitHub could not have sent are refused before any GitHub call is built from them.
    for (field, value, delivery) in [
        ("triggering_actor", "x".repeat(5_000), "d-400e"),
        ("head_branch", "a:b".to_owned(), "d-400f"),
    ] {
        body = serde_json::from_slice(&fixture("workflow_run.completed.json")).unwrap();
        match field {
            "triggering_actor" => body["workflow_run"]["triggering_actor"]["login"] = json!(value),
            _ => body["workflow_run"]["head_branch"] = json!(value),
        }
        let (status, json) = answer(
            &h,
            signed("workflow_run", delivery, body.to_string().as_bytes()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert!(json["error"].as_str().unwrap().contains(field), "{json}");
    }

    let truncated = &fixture("workflow_run.completed.json")[..200];
    let (status, json) = answer(&h, signed("workflow_run", "d-400c", truncated)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("body is not valid JSON"),
        "{json}"
    );

    let no_event = request(
        json!({"x-github-delivery": "d-400d", "x-hub-signature-256": sign(SECRET.as_bytes(), b"{}")}),
        b"{}",
    );
    let (status, json) = answer(&h, no_event).await;
    assert_eq!(
        (status, json),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "missing header X-GitHub-Event"})
        )
    );

    let no_delivery = request(
        json!({"x-github-event": "ping", "x-hub-signature-256": sign(SECRET.as_bytes(), b"{}")}),
        b"{}",
    );
    assert_eq!(answer(&h, no_delivery).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_before_anything_else() {
    let h = harness(WebhookSettings {
        max_body_bytes: 1024,
        ..WebhookSettings::with_secret(SECRET)
    })
    .await;
    let body = vec![b' '; 1025];
    let (status, json) = answer(&h, signed("ping", "d-big", &body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"], "body exceeds 1024 bytes");
}

#[tokio::test]
async fn installation_events_maintain_the_registry() {
    let h = harness(WebhookSettings::with_secret(SECRET)).await;
    let installation = json!({
        "action": "created",
        "installation": { "id": 42, "account": { "login": "octo-org", "id": 6811672 } },
        "repositories": [{ "id": 186853002, "name": "Hello-World", "full_name": "octo-org/Hello-World" }],
        "sender": { "login": "Codertocat", "id": 21031067 }
    });
    let (status, json) = answer(
        &h,
        signed(
            "installation",
            "d-inst",
            installation.to_string().as_bytes(),
        ),
    )
    .await;
    assert_eq!(
        (status, json["repositories"].clone()),
        (StatusCode::ACCEPTED, json!(1)),
        "{json}"
    );

    // Registered now: the same run is no longer stopped at the registry gate but needs GitHub, whose
    // closed port answers nothing: 503, and the delivery is not remembered.
    let mut run: Value =
        serde_json::from_slice(&fixture("workflow_run.completed.with-pull-requests.json")).unwrap();
    run["repository"]["full_name"] = json!("OCTO-ORG/hello-world");
    run["repository"]["name"] = json!("hello-world");
    let (status, json) = answer(
        &h,
        signed("workflow_run", "d-run", run.to_string().as_bytes()),
    )
    .await;
    assert_eq!(
        (status, json["error"].clone()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!("GitHub unavailable, retry the delivery")
        )
    );

    let removed = json!({
        "action": "removed",
        "installation": { "id": 42, "account": { "login": "octo-org", "id": 6811672 } },
        "repositories_removed": [{ "id": 186853002, "name": "Hello-World", "full_name": "octo-org/Hello-World" }],
        "sender": { "login": "Codertocat", "id": 21031067 }
    });
    let (status, _) = answer(
        &h,
        signed(
            "installation_repositories",
            "d-rm",
            removed.to_string().as_bytes(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, json) = answer(
        &h,
        signed("workflow_run", "d-run", run.to_string().as_bytes()),
    )
    .await;
    assert_eq!(
        (status, json["ignored"].clone()),
        (
            StatusCode::ACCEPTED,
            json!("repository `OCTO-ORG/hello-world` is not registered")
        )
    );
}

#[tokio::test]
async fn another_method_or_path_gets_a_json_answer() {
    let h = harness(WebhookSettings::with_secret(SECRET)).await;
    let mut get = signed("ping", "d-get", b"{}");
    *get.method_mut() = http::Method::GET;
    let (status, json) = answer(&h, get).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json["error"], "use POST");
    let mut elsewhere = signed("ping", "d-elsewhere", b"{}");
    *elsewhere.uri_mut() = "/elsewhere".parse().unwrap();
    let (status, json) = answer(&h, elsewhere).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"], "no such route");
}
