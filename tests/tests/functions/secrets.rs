//! Secrets from Secrets Manager (`SECRETS_ARN`, on moto): the store's reads and refreshes; the webhook
//! function under the Lambda emulator verifying deliveries with the secret's webhook secret, and with the
//! new one once it is rotated and the refresh interval has passed (the old one refused then); and the
//! function's start failing with a clear error, that quotes no secret, on an unreadable secret or one
//! without a key it needs.

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use e2e::lambda_tools::LambdaEmulator;
use e2e::moto;
use e2e::webhook_sender::{read_delivery, send};
use serde_json::json;
use shared::secrets::{SecretStore, SecretsError};

use crate::deployment::{CARGO, function_env};

async fn secretsmanager() -> Client {
    Client::new(&moto::sdk_config().await)
}

/// A new secret holding `values` (a JSON object); its ARN.
async fn create_secret(client: &Client, values: &serde_json::Value) -> String {
    let created = client
        .create_secret()
        .name(moto::unique_name("secrets"))
        .secret_string(values.to_string())
        .send()
        .await
        .expect("create the secret on moto");
    created.arn().expect("an ARN").to_owned()
}

async fn rotate(client: &Client, arn: &str, values: &serde_json::Value) {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(values.to_string())
        .send()
        .await
        .expect("put a new version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_rereads_a_stale_copy_and_tells_a_new_version() {
    let client = secretsmanager().await;
    let arn = create_secret(
        &client,
        &json!({"GITHUB_WEBHOOK_SECRET": "first", "EMPTY": ""}),
    )
    .await;
    let refresh = Duration::from_millis(300);
    let store = SecretStore::read(client.clone(), &arn, refresh)
        .await
        .expect("read the secret");
    assert_eq!(
        store.get("GITHUB_WEBHOOK_SECRET").unwrap().expose(),
        "first"
    );
    assert!(
        store.get("EMPTY").is_none(),
        "an empty value counts as unset"
    );
    assert!(store.get("LLM_API_KEY").is_none());
    let first_version = store.version().expect("a version id");

    rotate(&client, &arn, &json!({"GITHUB_WEBHOOK_SECRET": "second"})).await;
    assert_eq!(store.refresh_if_stale().await, Ok(false), "still fresh");
    assert_eq!(
        store.get("GITHUB_WEBHOOK_SECRET").unwrap().expose(),
        "first"
    );

    tokio::time::sleep(refresh).await;
    assert_eq!(store.refresh_if_stale().await, Ok(true), "a new version");
    assert_eq!(
        store.get("GITHUB_WEBHOOK_SECRET").unwrap().expose(),
        "second"
    );
    assert_ne!(store.version().unwrap(), first_version);

    tokio::time::sleep(refresh).await;
    assert_eq!(
        store.refresh_if_stale().await,
        Ok(false),
        "re-read, same version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_secret_is_an_error_naming_the_variable_never_the_content() {
    let client = secretsmanager().await;
    let missing = SecretStore::read(
        client.clone(),
        moto::unique_name("no-such-secret"),
        Duration::from_secs(1),
    )
    .await
    .expect_err("no such secret");
    assert_eq!(
        missing,
        SecretsError::Unreadable {
            cause: "ResourceNotFoundException".into()
        }
    );
    assert!(
        missing.to_string().starts_with("SECRETS_ARN: "),
        "{missing}"
    );

    for content in [
        "hunter2 is not JSON",
        r#"{"GITHUB_WEBHOOK_SECRET": ["hunter2"]}"#,
    ] {
        let created = client
            .create_secret()
            .name(moto::unique_name("secrets"))
            .secret_string(content)
            .send()
            .await
            .expect("create the secret on moto");
        let error = SecretStore::read(client.clone(), created.arn().unwrap(), Duration::ZERO)
            .await
            .expect_err("not a JSON object of strings");
        assert!(
            matches!(error, SecretsError::NotAnObject { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.starts_with("SECRETS_ARN: "), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

/// The webhook binary started as Lambda would start it, with the secret of `secrets_arn`; what it
/// printed on standard error when it stopped (before it ever polls for an invocation).
async fn failed_start(secrets_arn: &str) -> String {
    let output = tokio::process::Command::new(e2e::built_binary("webhook"))
        .env_clear()
        .envs([
            ("AWS_ENDPOINT_URL", moto::endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_LAMBDA_FUNCTION_NAME", "webhook".into()),
            // Never reached: the start fails first.
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9".into()),
            ("SECRETS_ARN", secrets_arn.into()),
        ])
        .output()
        .await
        .expect("the webhook binary runs");
    assert!(!output.status.success(), "it started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_stops_at_start_on_an_unreadable_secret_or_a_missing_key() {
    let unreadable = failed_start(&moto::unique_name("no-such-secret")).await;
    assert!(
        unreadable
            .contains("SECRETS_ARN: the secret could not be read (ResourceNotFoundException)"),
        "{unreadable}"
    );

    let client = secretsmanager().await;
    let without_key = create_secret(&client, &json!({"LLM_API_KEY": "hunter2"})).await;
    let missing = failed_start(&without_key).await;
    assert!(
        missing.contains("missing configuration: GITHUB_WEBHOOK_SECRET must be set"),
        "{missing}"
    );
    assert!(!missing.contains("hunter2"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_takes_a_rotated_secret_after_the_refresh_interval() {
    let client = secretsmanager().await;
    let arn = create_secret(
        &client,
        &json!({"GITHUB_WEBHOOK_SECRET": "before-rotation"}),
    )
    .await;
    let tables = moto::unique_tables(&moto::dynamodb().await).await;
    let refresh = Duration::from_secs(1);
    // No GITHUB_WEBHOOK_SECRET in the function's environment: the secret is its only source.
    let _turn = CARGO.lock().await;
    let emulator = LambdaEmulator::start(&function_env(
        &tables,
        &[
            ("SECRETS_ARN", arn.clone()),
            ("SECRETS_REFRESH_SECONDS", refresh.as_secs().to_string()),
        ],
    ))
    .await;
    let url = emulator.function_url("webhook", "/webhooks/github");
    let sample =
        std::fs::read(e2e::lambda_tools::workspace_root().join("events/webhook/ping.json"))
            .expect("the ping sample");
    let ping = |delivery: &str| {
        let mut ping = read_delivery(&sample, None).expect("the ping sample");
        ping.delivery_id = format!("{delivery}-{}", uuid::Uuid::new_v4());
        ping
    };

    // The first request waits while the emulator compiles the function.
    let first = send(&url, b"before-rotation", &ping("first"))
        .await
        .expect("an answer");
    assert_eq!(first.status, 200, "{:?}", first.body);
    let forged = send(&url, b"after-rotation", &ping("early"))
        .await
        .expect("an answer");
    assert_eq!(forged.status, 401, "not rotated yet: {:?}", forged.body);

    rotate(
        &client,
        &arn,
        &json!({"GITHUB_WEBHOOK_SECRET": "after-rotation"}),
    )
    .await;
    tokio::time::sleep(refresh + Duration::from_millis(200)).await;
    let rotated = send(&url, b"after-rotation", &ping("rotated"))
        .await
        .expect("an answer");
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let old = send(&url, b"before-rotation", &ping("old"))
        .await
        .expect("an answer");
    assert_eq!(old.status, 401, "the old secret is refused: {:?}", old.body);
    assert!(old.body["error"].is_string(), "{:?}", old.body);
}
