//! R2: a mutation fuzzer over the webhook Lambda's handler (`webhook::lambda_app` fed API Gateway requests, the real transport and
//! `WebhookService`) on the embedded store, with the GitHub fake seeded as the samples' story (the
//! repository registered, its pull request open, the actor a writer), so that mutated deliveries reach
//! every gate. Stable Rust has no libFuzzer: inputs come from [`corpus`] and [`mutate`], and each answer
//! is checked: no panic (a hook prints the input before the process ends), no 5xx, a JSON body, a
//! reason in every non-2xx one, and 401 whenever the signature does not verify (413 above the limit).

mod corpus;
mod mutate;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::fakes::github::FakeGitHub;
use e2e::webhook_samples::{LOCAL_GITHUB_TOKEN, LOCAL_WEBHOOK_SECRET, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::adapters::in_process_bus::InProcessBus;
use shared::github::{GitHubAuth, GitHubClient, GitHubConfig};
use shared::proactive::AccountLinks;
use tower::ServiceExt;
use webhook::signature::{sign, verify};
use webhook::{WebhookService, WebhookSettings};

use mutate::{Input, Signature};

/// Delivery ids kept for duplicate deliveries.
const REMEMBERED_DELIVERIES: usize = 256;
/// How much of an example's body is printed.
const EXAMPLE_BYTES: usize = 400;

/// The input being handled, for the panic hook (the release profile aborts on panic).
static CURRENT: Mutex<Option<String>> = Mutex::new(None);

/// What the run found wrong, by kind (a status class and a rule), with the first example of each.
#[derive(Default)]
struct Findings(BTreeMap<String, (u64, String)>);

impl Findings {
    fn add(&mut self, (kind, answer): (String, String), input: &Input) {
        let entry = self
            .0
            .entry(kind)
            .or_insert_with(|| (0, format!("answer {answer:.200}; {}", describe(input))));
        entry.0 += 1;
    }
}

fn describe(input: &Input) -> String {
    let lossy = |bytes: &Option<Vec<u8>>| {
        bytes.as_ref().map(|b| {
            String::from_utf8_lossy(b)
                .chars()
                .take(80)
                .collect::<String>()
        })
    };
    let body = String::from_utf8_lossy(&input.body);
    format!(
        "event {:?}, delivery {:?}, signature {:?}, body ({} bytes) {:?}",
        lossy(&input.event),
        lossy(&input.delivery),
        input.signature,
        input.body.len(),
        body.chars().take(EXAMPLE_BYTES).collect::<String>()
    )
}

/// The service under test, over an embedded store in a temporary directory and the seeded GitHub fake,
/// with the samples' installation registered.
async fn service() -> (WebhookService, FakeGitHub, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = EmbeddedDb::open(dir.path()).expect("the embedded store");
    let store = Arc::new(EmbeddedProactiveStore::open(db).await.expect("schema"));
    let github = FakeGitHub::start().await;
    github.apply_seed(&seed()).expect("the samples' seed");
    let client = GitHubClient::new(GitHubConfig {
        api_url: github.url().to_owned(),
        auth: GitHubAuth::Token(LOCAL_GITHUB_TOKEN.into()),
    })
    .expect("the GitHub client");
    let service = WebhookService::new(
        store,
        Arc::new(InProcessBus::new(16)),
        client,
        AccountLinks::configured("*=local-user").expect("links"),
        WebhookSettings::with_secret(LOCAL_WEBHOOK_SECRET),
    );
    (service, github, dir)
}

/// The webhook's answer to one API Gateway request, through its router as Lambda serves it.
async fn answer(
    service: &WebhookService,
    request: lambda_http::Request,
) -> (http::StatusCode, String) {
    let response = webhook::lambda_app(service.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn request(input: &Input, signature: Option<Vec<u8>>) -> lambda_http::Request {
    let mut request = http::Request::builder()
        .method("POST")
        .uri("/webhooks/github")
        .header("content-type", "application/json")
        .body(lambda_http::Body::Binary(input.body.clone()))
        .expect("a valid request line");
    let headers = request.headers_mut();
    for (name, value) in [
        ("x-github-event", &input.event),
        ("x-github-delivery", &input.delivery),
        ("x-hub-signature-256", &signature),
    ] {
        // Values HTTP cannot carry (control characters) never reach the function.
        if let Some(value) = value
            .as_ref()
            .and_then(|v| http::HeaderValue::from_bytes(v).ok())
        {
            headers.insert(name, value);
        }
    }
    request
}

/// What is wrong with an answer, if anything: the rule it breaks and the answer.
fn check(
    status: u16,
    body: &str,
    signature_verifies: bool,
    oversized: bool,
) -> Option<(String, String)> {
    let answer = || format!("{status} {body}");
    let broken = |rule: &str| Some((format!("{status}: {rule}"), answer()));
    if status >= 500 {
        return broken("a server error");
    }
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return broken("a body that is not JSON");
    };
    let success = (200..300).contains(&status);
    if !success && json["error"].as_str().is_none_or(str::is_empty) {
        return broken("no `error` reason");
    }
    if oversized {
        return (status != 413)
            .then(|| (format!("{status}: an oversized body accepted"), answer()));
    }
    if !signature_verifies && status != 401 {
        return broken("a signature that does not verify, not refused");
    }
    if signature_verifies && status == 401 {
        return broken("a valid signature refused");
    }
    None
}

/// Runs for `duration` (at least `min_executions`); prints the figures; returns whether it ran clean.
pub(crate) async fn run(duration: Duration, rng_seed: Option<u64>) -> bool {
    let rng_seed = rng_seed.unwrap_or_else(rand::random);
    println!("== R2 webhook fuzzing, {duration:?}, seed {rng_seed}");
    std::panic::set_hook(Box::new(|info| {
        let current = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
        eprintln!("R2 PANIC {info}\nwhile handling: {current:?}");
    }));
    let seeds = corpus::seeds();
    let (service, _github, _dir) = service().await;
    let secret = LOCAL_WEBHOOK_SECRET.as_bytes();
    let max_body = service.max_body_bytes();
    let mut rng = StdRng::seed_from_u64(rng_seed);
    // The story's installation first, so that `workflow_run` deliveries pass the registry gate.
    for seed in seeds.iter().filter(|s| s.event == "installation") {
        let input = Input {
            event: Some(seed.event.clone().into_bytes()),
            delivery: Some(uuid::Uuid::new_v4().to_string().into_bytes()),
            signature: Signature::Valid,
            original: seed.body.clone(),
            body: seed.body.clone(),
        };
        let request = request(&input, Some(sign(secret, &seed.body).into_bytes()));
        let (status, _) = answer(&service, request).await;
        assert!(status.is_success(), "the installation registers");
    }

    let mut findings = Findings::default();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut deliveries: Vec<Vec<u8>> = Vec::new();
    let (mut executions, mut slowest) = (0u64, Duration::ZERO);
    let started = Instant::now();
    while started.elapsed() < duration {
        let input = mutate::input(&mut rng, &seeds, &deliveries);
        let valid = sign(secret, &input.body);
        let over_original = sign(secret, &input.original);
        let signature = mutate::signature_header(&mut rng, input.signature, &valid, &over_original);
        let verifies = verify(
            secret,
            &input.body,
            signature
                .as_deref()
                .and_then(|s| std::str::from_utf8(s).ok()),
        );
        if let Ok(mut current) = CURRENT.lock() {
            *current = Some(describe(&input));
        }
        let one = Instant::now();
        let (status, body) = answer(&service, request(&input, signature)).await;
        slowest = slowest.max(one.elapsed());
        executions += 1;
        let status = status.as_u16();
        *statuses.entry(status).or_default() += 1;
        if let Some(kind) = check(status, &body, verifies, input.body.len() > max_body) {
            findings.add(kind, &input);
        }
        if let Some(delivery) = input.delivery {
            if deliveries.len() < REMEMBERED_DELIVERIES {
                deliveries.push(delivery);
            } else {
                let at = rng.random_range(0..deliveries.len());
                deliveries[at] = delivery;
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "R2 {executions} executions in {:.1} s ({:.0}/s) from {} seeds; slowest {:.1} ms; answers by status: {statuses:?}",
        elapsed.as_secs_f64(),
        executions as f64 / elapsed.as_secs_f64(),
        seeds.len(),
        slowest.as_secs_f64() * 1000.0,
    );
    let count: u64 = findings.0.values().map(|(n, _)| n).sum();
    println!("R2 findings: {count} (panics would have ended the run)");
    for (kind, (n, example)) in &findings.0 {
        println!("  {n} x {kind}\n    e.g. {example}");
    }
    count == 0
}
