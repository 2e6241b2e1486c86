//! The sample webhook deliveries in `events/webhook/` and the matching `events/github-seed.json`, built
//! from the real GitHub payloads in `events/github-webhooks/` (octokit/webhooks, MIT, copied in with their licence).
//!
//! The story they tell: the App is installed on `octo-org/octo-repo`; pull request #2 (branch
//! `changes`) has head commit `3484a3fb…`, whose two workflow runs are `test` and `lint`. `test` is
//! requested, `lint` succeeds, `test` fails: the commit is red once both have finished. Every sample
//! shares the repository, installation, pull request, commit and actor; the seed makes the GitHub fake
//! agree (the PR open at that commit, both runs still in progress, `write` for the actor).
//!
//! Each sample is an API Gateway HTTP API (payload format 2.0) request for `POST /webhooks/github`,
//! signed with [`LOCAL_WEBHOOK_SECRET`]. Everything is deterministic, so regenerating is a no-op.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use uuid::Uuid;
use webhook::signature;

use crate::fakes::github::{FakeJob, FakePullRequest, FakeRun, Seed, SeedRepository};

/// The webhook secret of local runs and of the samples' signatures (documented, not a secret).
pub const LOCAL_WEBHOOK_SECRET: &str = "local-webhook-secret";
/// The token the seeded GitHub fake accepts (`GITHUB_TOKEN` of a local run against it).
pub const LOCAL_GITHUB_TOKEN: &str = "local-github-token";

pub const REPOSITORY_ID: u64 = 300_029_405;
pub const OWNER: &str = "octo-org";
pub const NAME: &str = "octo-repo";
pub const INSTALLATION_ID: u64 = 57_340_162;
pub const APP_ID: u64 = 29_310;
pub const PR_NUMBER: u64 = 2;
pub const HEAD_SHA: &str = "3484a3fb816e0859fd6e1cea078d76385ff50625";
pub const HEAD_BRANCH: &str = "changes";

/// A sample's (or the seed's) text with its head commit [`HEAD_SHA`] replaced by `commit`: a local
/// repository's, so that the flow can check it out.
pub fn at_commit(text: &str, commit: &str) -> String {
    text.replace(HEAD_SHA, commit)
}
/// The pull request's author and the runs' triggering actor.
pub const ACTOR: &str = "Codertocat";

/// The fixtures' own run, workflow and check suite, renumbered for the story's second run.
const FIXTURE_RUN_ID: u64 = 289_782_451;
const FIXTURE_WORKFLOW_ID: u64 = 2_823_525;
const FIXTURE_CHECK_SUITE_ID: u64 = 1_291_536_064;
/// The base commit of the fixture's pull request.
const BASE_SHA: &str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e";
const HOOK_ID: u64 = 109_948_940;
/// Namespace of the samples' delivery ids (UUID v5 of the file name): stable across regenerations.
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b7e_9a4d_4c31_8e5f_0d2a_7b9c_1e40);

/// One workflow run of the story's commit.
struct StoryRun {
    id: u64,
    name: &'static str,
    workflow_id: u64,
    check_suite_id: u64,
    run_number: u64,
}

const TEST_RUN: StoryRun = StoryRun {
    id: FIXTURE_RUN_ID,
    name: "test",
    workflow_id: FIXTURE_WORKFLOW_ID,
    check_suite_id: FIXTURE_CHECK_SUITE_ID,
    run_number: 163,
};

const LINT_RUN: StoryRun = StoryRun {
    id: FIXTURE_RUN_ID + 1,
    name: "lint",
    workflow_id: FIXTURE_WORKFLOW_ID + 1,
    check_suite_id: FIXTURE_CHECK_SUITE_ID + 1,
    run_number: 41,
};

/// When the seed's snapshot of the runs was taken: after `test` was requested, before either ended.
const SNAPSHOT_AT: &str = "2020-10-05T16:33:50Z";

/// One delivery: the GitHub event, its payload and when GitHub sent it.
pub struct Sample {
    /// The file under `events/webhook/`.
    pub file_name: &'static str,
    pub event: &'static str,
    pub payload: Value,
    /// RFC 3339.
    pub sent_at: &'static str,
    /// Whether API Gateway hands the body over base64-encoded.
    pub base64: bool,
}

impl Sample {
    pub fn delivery_id(&self) -> Uuid {
        Uuid::new_v5(&DELIVERY_NAMESPACE, self.file_name.as_bytes())
    }

    /// The exact body GitHub signs and sends.
    pub fn body(&self) -> String {
        serde_json::to_string(&self.payload).expect("JSON values serialise")
    }

    /// The API Gateway HTTP API (payload format 2.0) request carrying this delivery, signed with `secret`.
    pub fn api_gateway_request(&self, secret: &[u8]) -> Value {
        let body = self.body();
        let sent =
            chrono::DateTime::parse_from_rfc3339(self.sent_at).expect("sample times are RFC 3339");
        let domain = "r4nd0m1d.execute-api.us-east-1.amazonaws.com";
        let user_agent = "GitHub-Hookshot/8c3c9f2";
        let source_ip = "140.82.115.1";
        json!({
            "version": "2.0",
            "routeKey": "POST /webhooks/github",
            "rawPath": "/webhooks/github",
            "rawQueryString": "",
            "headers": {
                "accept": "*/*",
                "content-length": body.len().to_string(),
                "content-type": "application/json",
                "host": domain,
                "user-agent": user_agent,
                "x-amzn-trace-id": format!("Root=1-{:08x}-{}", sent.timestamp(), &self.delivery_id().simple().to_string()[..24]),
                "x-forwarded-for": source_ip,
                "x-forwarded-port": "443",
                "x-forwarded-proto": "https",
                "x-github-delivery": self.delivery_id().to_string(),
                "x-github-event": self.event,
                "x-github-hook-id": HOOK_ID.to_string(),
                "x-github-hook-installation-target-id": APP_ID.to_string(),
                "x-github-hook-installation-target-type": "integration",
                "x-hub-signature-256": signature::sign(secret, body.as_bytes()),
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "r4nd0m1d",
                "domainName": domain,
                "domainPrefix": "r4nd0m1d",
                "http": {
                    "method": "POST",
                    "path": "/webhooks/github",
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": user_agent,
                },
                "requestId": format!("{}=", &self.delivery_id().simple().to_string()[..15]),
                "routeKey": "POST /webhooks/github",
                "stage": "$default",
                "time": sent.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
                "timeEpoch": sent.timestamp_millis(),
            },
            "body": if self.base64 { BASE64.encode(&body) } else { body },
            "isBase64Encoded": self.base64,
        })
    }
}

/// Every generated file, by its path under `events/`, with its content: the signed samples under
/// `webhook/` and `github-seed.json`.
pub fn render(fixtures_dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let mut files = Vec::new();
    for sample in samples(fixtures_dir)? {
        let request = sample.api_gateway_request(LOCAL_WEBHOOK_SECRET.as_bytes());
        files.push((
            Path::new("webhook").join(sample.file_name),
            file_text(&request),
        ));
    }
    files.push((PathBuf::from("github-seed.json"), file_text(&seed())));
    Ok(files)
}

fn file_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("samples serialise") + "\n"
}

/// Every sample of the story, built from the fixtures in `fixtures_dir`.
pub fn samples(fixtures_dir: &Path) -> Result<Vec<Sample>, String> {
    let fixture = |name: &str| -> Result<Value, String> {
        let path = fixtures_dir.join(name);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    let requested = fixture("workflow_run.requested.json")?;
    let completed = fixture("workflow_run.completed.with-pull-requests.json")?;
    let ping = fixture("ping.with-app_id.json")?;
    let check_suite = fixture("check_suite.completed.json")?;
    let story = Story::from_fixture(&completed);

    let mut ping_base64 = story.ping(ping.clone());
    let ping = story.ping(ping);
    ping_base64["zen"] = json!("Keep it logically awesome.");
    Ok(vec![
        Sample {
            file_name: "ping.json",
            event: "ping",
            payload: ping,
            sent_at: "2020-10-05T16:30:00Z",
            base64: false,
        },
        Sample {
            file_name: "ping-base64.json",
            event: "ping",
            payload: ping_base64,
            sent_at: "2020-10-05T16:30:05Z",
            base64: true,
        },
        Sample {
            file_name: "installation-created.json",
            event: "installation",
            payload: story.installation_created(),
            sent_at: "2020-10-05T16:31:00Z",
            base64: false,
        },
        Sample {
            file_name: "installation-repositories-added.json",
            event: "installation_repositories",
            payload: story.installation_repositories_added(),
            sent_at: "2020-10-05T16:31:30Z",
            base64: false,
        },
        Sample {
            file_name: "workflow-run-requested.json",
            event: "workflow_run",
            payload: story.workflow_run(
                requested,
                &TEST_RUN,
                "requested",
                None,
                "2020-10-05T16:33:24Z",
            ),
            sent_at: "2020-10-05T16:33:25Z",
            base64: false,
        },
        Sample {
            file_name: "workflow-run-completed-success.json",
            event: "workflow_run",
            payload: story.workflow_run(
                completed.clone(),
                &LINT_RUN,
                "completed",
                Some("success"),
                "2020-10-05T16:34:30Z",
            ),
            sent_at: "2020-10-05T16:34:31Z",
            base64: false,
        },
        Sample {
            file_name: "workflow-run-completed-failure.json",
            event: "workflow_run",
            payload: story.workflow_run(
                completed,
                &TEST_RUN,
                "completed",
                Some("failure"),
                "2020-10-05T16:35:49Z",
            ),
            sent_at: "2020-10-05T16:35:50Z",
            base64: false,
        },
        Sample {
            file_name: "check-suite-completed.json",
            event: "check_suite",
            payload: story.check_suite(check_suite),
            sent_at: "2020-10-05T16:35:51Z",
            base64: false,
        },
    ])
}

/// The fake GitHub's state at the time of the samples; it accepts [`LOCAL_GITHUB_TOKEN`].
pub fn seed() -> Seed {
    let run = |r: &StoryRun| FakeRun {
        head_branch: HEAD_BRANCH.into(),
        updated_at: SNAPSHOT_AT.parse().expect("an RFC 3339 time"),
        ..FakeRun::in_progress(r.id, r.name, HEAD_SHA)
    };
    Seed {
        tokens: vec![LOCAL_GITHUB_TOKEN.into()],
        repositories: vec![SeedRepository {
            full_name: format!("{OWNER}/{NAME}"),
            id: Some(REPOSITORY_ID),
            installation_id: Some(INSTALLATION_ID),
            collaborators: [(ACTOR.to_owned(), "write".to_owned())].into(),
            pull_requests: vec![FakePullRequest {
                head_owner: Some(OWNER.into()),
                title: Some("ci(action): update actions/setup-node digest to 8c91899".into()),
                ..FakePullRequest::open(PR_NUMBER, HEAD_SHA, HEAD_BRANCH)
            }],
            workflow_runs: vec![run(&TEST_RUN), run(&LINT_RUN)],
            jobs: vec![FakeJob::failed(
                TEST_JOB_ID,
                TEST_RUN.id,
                "test (ubuntu-latest, node 20)",
                "Run npm test",
                TEST_JOB_LOG,
            )],
        }],
    }
}

/// The job of the `test` run that fails in the samples, and the end of its log.
const TEST_JOB_ID: u64 = 1_000_001;
const TEST_JOB_LOG: &str = "\
2020-10-05T16:33:41.0000000Z ##[group]Run npm test
2020-10-05T16:33:41.1000000Z > octo-repo@1.0.0 test
2020-10-05T16:33:41.2000000Z > jest
2020-10-05T16:33:45.0000000Z FAIL src/greeting.test.js
2020-10-05T16:33:45.1000000Z   greeting > says hello
2020-10-05T16:33:45.2000000Z     expect(received).toBe(expected) // Object.is equality
2020-10-05T16:33:45.3000000Z     Expected: \"Hello, Octocat!\"
2020-10-05T16:33:45.4000000Z     Received: \"Hello Octocat\"
2020-10-05T16:33:45.5000000Z Tests: 1 failed, 3 passed, 4 total
2020-10-05T16:33:45.6000000Z ##[error]Process completed with exit code 1.
";

/// The pieces of the fixture every sample shares.
struct Story {
    repository: Value,
    organization: Value,
    sender: Value,
    pull_request: Value,
}

impl Story {
    fn from_fixture(completed: &Value) -> Self {
        // The fixture's pull request belongs to another repository: point it at ours and its head at
        // the run's commit.
        let mut pull_request = completed["workflow_run"]["pull_requests"][0].clone();
        replace_in_strings(
            &mut pull_request,
            "Codertocat/Hello-World",
            &format!("{OWNER}/{NAME}"),
        );
        for side in ["head", "base"] {
            pull_request[side]["repo"]["id"] = json!(REPOSITORY_ID);
            pull_request[side]["repo"]["name"] = json!(NAME);
        }
        pull_request["number"] = json!(PR_NUMBER);
        pull_request["head"]["ref"] = json!(HEAD_BRANCH);
        pull_request["head"]["sha"] = json!(HEAD_SHA);
        pull_request["base"]["sha"] = json!(BASE_SHA);
        Self {
            repository: completed["repository"].clone(),
            organization: completed["organization"].clone(),
            sender: completed["sender"].clone(),
            pull_request,
        }
    }

    /// `installation` as App deliveries carry it.
    fn installation_ref(&self) -> Value {
        json!({"id": INSTALLATION_ID, "node_id": installation_node_id()})
    }

    fn workflow_run(
        &self,
        mut payload: Value,
        run: &StoryRun,
        action: &str,
        conclusion: Option<&str>,
        updated_at: &str,
    ) -> Value {
        replace_in_strings(
            &mut payload,
            &format!("runs/{FIXTURE_RUN_ID}"),
            &format!("runs/{}", run.id),
        );
        replace_in_strings(
            &mut payload,
            &format!("workflows/{FIXTURE_WORKFLOW_ID}"),
            &format!("workflows/{}", run.workflow_id),
        );
        replace_in_strings(
            &mut payload,
            &format!("check-suites/{FIXTURE_CHECK_SUITE_ID}"),
            &format!("check-suites/{}", run.check_suite_id),
        );
        replace_in_strings(
            &mut payload,
            "workflows/test.yml",
            &format!("workflows/{}.yml", run.name),
        );
        replace_in_strings(
            &mut payload,
            "workflows/test/badge",
            &format!("workflows/{}/badge", run.name),
        );
        payload["action"] = json!(action);
        payload["installation"] = self.installation_ref();
        payload["workflow"]["id"] = json!(run.workflow_id);
        payload["workflow"]["name"] = json!(run.name);
        let wr = &mut payload["workflow_run"];
        wr["id"] = json!(run.id);
        wr["name"] = json!(run.name);
        wr["workflow_id"] = json!(run.workflow_id);
        wr["check_suite_id"] = json!(run.check_suite_id);
        wr["run_number"] = json!(run.run_number);
        wr["run_attempt"] = json!(1);
        wr["event"] = json!("pull_request");
        wr["head_branch"] = json!(HEAD_BRANCH);
        wr["head_sha"] = json!(HEAD_SHA);
        wr["head_commit"]["id"] = json!(HEAD_SHA);
        wr["pull_requests"] = json!([self.pull_request.clone()]);
        wr["status"] = json!(if conclusion.is_some() {
            "completed"
        } else {
            "queued"
        });
        wr["conclusion"] = json!(conclusion);
        wr["updated_at"] = json!(updated_at);
        payload
    }

    fn installation(&self) -> Value {
        let account = json!({
            "login": self.organization["login"],
            "id": self.organization["id"],
            "node_id": self.organization["node_id"],
            "avatar_url": self.organization["avatar_url"],
            "url": format!("https://api.github.com/users/{OWNER}"),
            "html_url": format!("https://github.com/{OWNER}"),
            "type": "Organization",
            "site_admin": false,
        });
        json!({
            "id": INSTALLATION_ID,
            "node_id": installation_node_id(),
            "client_id": "Iv1.8a61f9b3a7aba766",
            "account": account,
            "repository_selection": "selected",
            "access_tokens_url": format!("https://api.github.com/app/installations/{INSTALLATION_ID}/access_tokens"),
            "repositories_url": "https://api.github.com/installation/repositories",
            "html_url": format!("https://github.com/organizations/{OWNER}/settings/installations/{INSTALLATION_ID}"),
            "app_id": APP_ID,
            "app_slug": "proactive-app",
            "target_id": self.organization["id"],
            "target_type": "Organization",
            "permissions": {
                "actions": "read",
                "checks": "read",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
            },
            "events": ["workflow_run"],
            "created_at": "2020-10-05T16:31:00.000Z",
            "updated_at": "2020-10-05T16:31:00.000Z",
            "single_file_name": null,
            "has_multiple_single_files": false,
            "single_file_paths": [],
            "suspended_at": null,
            "suspended_by": null,
        })
    }

    /// The short repository entry of installation events.
    fn repository_entry(&self) -> Value {
        json!({
            "id": self.repository["id"],
            "node_id": self.repository["node_id"],
            "name": self.repository["name"],
            "full_name": self.repository["full_name"],
            "private": self.repository["private"],
        })
    }

    fn installation_created(&self) -> Value {
        json!({
            "action": "created",
            "installation": self.installation(),
            "repositories": [self.repository_entry()],
            "requester": null,
            "sender": self.sender,
        })
    }

    fn installation_repositories_added(&self) -> Value {
        json!({
            "action": "added",
            "installation": self.installation(),
            "repository_selection": "selected",
            "repositories_added": [self.repository_entry()],
            "repositories_removed": [],
            "requester": null,
            "sender": self.sender,
        })
    }

    /// An App's ping: the hook is the App's (no repository hook URLs, no repository).
    fn ping(&self, mut payload: Value) -> Value {
        let hook = payload["hook"]
            .as_object_mut()
            .expect("the ping fixture has a hook");
        for repository_hook_url in ["url", "test_url", "ping_url"] {
            hook.remove(repository_hook_url);
        }
        hook.insert("type".into(), json!("App"));
        hook.insert("app_id".into(), json!(APP_ID));
        hook.insert(
            "deliveries_url".into(),
            json!("https://api.github.com/app/hook/deliveries"),
        );
        payload
            .as_object_mut()
            .expect("a payload is an object")
            .remove("repository");
        payload["sender"] = self.sender.clone();
        payload
    }

    /// An event the product does not use, about the story's repository and commit.
    fn check_suite(&self, mut payload: Value) -> Value {
        let fixture_repo = payload["repository"]["full_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !fixture_repo.is_empty() {
            replace_in_strings(&mut payload, &fixture_repo, &format!("{OWNER}/{NAME}"));
        }
        let suite = &mut payload["check_suite"];
        suite["head_sha"] = json!(HEAD_SHA);
        suite["after"] = json!(HEAD_SHA);
        suite["head_branch"] = json!(HEAD_BRANCH);
        suite["pull_requests"] = json!([self.pull_request.clone()]);
        payload["repository"] = self.repository.clone();
        payload["sender"] = self.sender.clone();
        payload["installation"] = self.installation_ref();
        payload
    }
}

/// GitHub's node id of an installation: base64 of `023:IntegrationInstallation<id>`.
fn installation_node_id() -> String {
    BASE64.encode(format!("023:IntegrationInstallation{INSTALLATION_ID}"))
}

fn replace_in_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_in_strings(v, from, to)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|v| replace_in_strings(v, from, to)),
        _ => {}
    }
}
