//! Least privilege, proven: each Lambda function and the conversation node run their real code (the real
//! adapters, on a moto server of the test's own that enforces IAM as AWS does) as a user holding exactly
//! the statements `template.yaml` gives their role, with the ARNs of the test's own tables, bus and
//! secret. A grant the code needs and the template lacks fails its test: shown by running the node
//! against a scratch copy of the template without `events:PutEvents`. A grant the code never uses
//! fails it too: each scenario ends by comparing what moto allowed the user with what the role grants.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::{TimeDelta, Utc};
use cleanup::{Cleanup, CleanupOptions, ClusterPorts};
use commonroom_sync::{RunOutcome, SYNC_NAME, SyncDeps, SyncOptions, run_sync};
use e2e::cleanup_scenarios::{running_conversation, seed_world};
use e2e::fakes::commonroom::Faults;
use e2e::fakes::github::{FakeGitHub, FakePullRequest, Fault, FaultRule};
use e2e::iam::{IamMoto, Permission, RoleUser, Template, grants, resolve};
use e2e::moto::{EventObserver, unique_name};
use e2e::node::{NodeOptions, Stores, TestNode, is_agent_message, is_stopped, token};
use e2e::sync_world::{SyncWorld, conversations, store_all, test_settings};
use e2e::trigger_world::{Delivery, REPO_GITHUB_ID, Run, TriggerWorld, lifecycle, sha};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::adapters::dynamo::{
    ConversationTable, EventTable, ProactiveTable, SyncStateItem, create_tables,
};
use shared::adapters::eventbridge::EventBridgeBus;
use shared::adapters::in_process_bus::InProcessBus;
use shared::adapters::redis::RedisJanitor;
use shared::config::TableNames;
use shared::domain::state_changed::{NODE_SOURCE, STATE_CHANGED_DETAIL_TYPE};
use shared::domain::{
    ConversationStatus, GroupKey, GroupState, HeadSha, ProactiveConversationRequested, RepoId,
    Repository, RunStatus, TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE, UserId, WorkflowRun,
    WorkflowRunGroup,
};
use shared::github::{ClientOptions, GitHubAuth, GitHubClient, GitHubConfig};
use shared::ports::{ConversationStore, Expected, ProactiveStore, WriteOutcome};
use shared::secrets::SecretStore;

/// How long a publish may take to reach the observer's queue.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);
/// A value of the test's secret, read back by every role.
const SECRET_KEY: &str = "IAM_TEST_VALUE";

/// A role's moto user and what its statements grant.
struct Role {
    user: RoleUser,
    granted: BTreeSet<Permission>,
}

impl std::ops::Deref for Role {
    type Target = SdkConfig;

    fn deref(&self) -> &SdkConfig {
        &self.user.config
    }
}

/// The test's own AWS: the enforcing moto server, the tables, a bus observed through SQS and the secret,
/// all made by moto's admin; and the ARNs that stand for the template's logical ids.
struct World {
    moto: IamMoto,
    admin: SdkConfig,
    tables: TableNames,
    observer: EventObserver,
    secret_arn: String,
    names: BTreeMap<String, String>,
}

impl World {
    async fn start(source: &str) -> Self {
        let moto = IamMoto::start().await;
        let admin = moto.admin().await;
        let tables = TableNames {
            proactive: unique_name("proactive"),
            conversations: unique_name("conversations"),
            events: unique_name("conversation-events"),
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(&admin);
        create_tables(&dynamodb, &tables)
            .await
            .expect("create the tables");
        let observer = EventObserver::start_on(&admin, source).await;
        let secret_arn = aws_sdk_secretsmanager::Client::new(&admin)
            .create_secret()
            .name(unique_name("proactive-secrets"))
            .secret_string(json!({ SECRET_KEY: "read" }).to_string())
            .send()
            .await
            .expect("create the secret")
            .arn
            .expect("the secret's ARN");
        let bus_arn = aws_sdk_eventbridge::Client::new(&admin)
            .describe_event_bus()
            .name(observer.bus_name())
            .send()
            .await
            .expect("describe the bus")
            .arn
            .expect("the bus's ARN");
        let mut names = BTreeMap::from([
            ("EventBus.Arn".to_owned(), bus_arn),
            ("SecretsArn".to_owned(), secret_arn.clone()),
            (
                "NodeMetricsLogGroup.Arn".to_owned(),
                format!(
                    "arn:aws:logs:{}:{}:log-group:/iam-test/metrics:*",
                    e2e::iam::REGION,
                    e2e::iam::ACCOUNT
                ),
            ),
        ]);
        for (logical_id, table) in [
            ("ProactiveTable", &tables.proactive),
            ("ConversationsTable", &tables.conversations),
            ("EventsTable", &tables.events),
        ] {
            let arn = dynamodb
                .describe_table()
                .table_name(table)
                .send()
                .await
                .expect("describe a table")
                .table
                .and_then(|t| t.table_arn)
                .expect("the table's ARN");
            names.insert(format!("{logical_id}.Arn"), arn);
        }
        Self {
            moto,
            admin,
            tables,
            observer,
            secret_arn,
            names,
        }
    }

    /// A user holding exactly `role`'s statements in `template`; it reads the secret, as each
    /// function and the node do at start.
    async fn role(&self, template: &Template, role: &str) -> Role {
        let statements: Vec<Value> = template
            .role_statements(role)
            .iter()
            .map(|statement| resolve(statement, &self.names))
            .collect();
        let user = self.moto.user(role, &statements).await;
        let secrets = SecretStore::read(
            aws_sdk_secretsmanager::Client::new(&user.config),
            &self.secret_arn,
            Duration::from_secs(300),
        )
        .await
        .unwrap_or_else(|e| panic!("{role} reads the secret: {e}"));
        assert_eq!(
            secrets.get(SECRET_KEY).map(|v| v.expose().to_owned()),
            Some("read".into())
        );
        Role {
            user,
            granted: grants(&statements),
        }
    }

    /// Every grant of `role` was used by the code that ran, but `unused` (what no code of the role's
    /// own runs here). Nothing else was allowed, or the calls would have been refused.
    fn assert_every_grant_used(&self, role: &Role, unused: &[(&str, &str)]) {
        let used = self.moto.used_by(&role.user);
        let never: BTreeSet<Permission> = role.granted.difference(&used).cloned().collect();
        let expected: BTreeSet<Permission> = unused
            .iter()
            .map(|(action, name)| ((*action).to_owned(), self.names[*name].clone()))
            .collect();
        println!(
            "{} (action, resource) grants, {} used",
            role.granted.len(),
            used.len()
        );
        assert_eq!(never, expected, "granted but not used");
    }

    fn bus(&self, config: &SdkConfig) -> EventBridgeBus {
        EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(config),
            self.observer.bus_name(),
        )
    }

    fn proactive(&self, config: &SdkConfig) -> Arc<dyn ProactiveStore> {
        Arc::new(ProactiveTable::new(
            aws_sdk_dynamodb::Client::new(config),
            self.tables.proactive.clone(),
        ))
    }

    fn conversations(&self, config: &SdkConfig) -> Arc<dyn ConversationStore> {
        Arc::new(ConversationTable::new(
            aws_sdk_dynamodb::Client::new(config),
            self.tables.conversations.clone(),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_decides_and_publishes_with_its_role_only() {
    let world = World::start(TRIGGER_SOURCE).await;
    let role = world
        .role(&Template::deployed().await, "WebhookFunction")
        .await;
    // The world registers its repository through the role's store, as an installation delivery does.
    let trigger = TriggerWorld::with_bus(
        world.proactive(&role),
        Arc::new(world.bus(&role)),
        InProcessBus::new(16),
    )
    .await;
    let head = sha("iam");
    trigger.open_pr_with_runs(1, &head, &[(1, "build")]);
    let run = Run {
        pr: 1,
        head: &head,
        id: 1,
        name: "build",
    };
    for delivery in lifecycle(run, "failure") {
        let answer = trigger.send(&delivery).await;
        assert!(answer.status.is_success(), "{:?}", answer.body);
    }
    assert_eq!(
        trigger.group_state(1, &head).await,
        Some(GroupState::Triggered)
    );
    let published = world.observer.receive(1, DELIVERY_WAIT).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["detail-type"], TRIGGER_DETAIL_TYPE);

    // The App uninstalled: the repository leaves the registry.
    let uninstalled = trigger.send_event("installation", &uninstallation()).await;
    assert!(uninstalled.status.is_success(), "{:?}", uninstalled.body);
    assert_eq!(
        uninstalled.body["repositories"], 1,
        "{:?}",
        uninstalled.body
    );
    world.assert_every_grant_used(&role, &[]);
}

/// The trigger world's App uninstalled from its organisation.
fn uninstallation() -> Delivery {
    let account = json!({ "login": "octo-org", "id": 21031067 });
    let body = json!({
        "action": "deleted",
        "installation": { "id": 1, "account": account },
        "repositories": [{ "id": REPO_GITHUB_ID, "name": "octo-repo", "full_name": "octo-org/octo-repo" }],
        "sender": account,
    });
    Delivery {
        id: "iam-uninstall".into(),
        body: body.to_string().into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_registers_new_conversations_with_its_role_only() {
    let world = World::start(TRIGGER_SOURCE).await;
    let role = world
        .role(&Template::deployed().await, "CommonRoomSyncFunction")
        .await;
    let sync = SyncWorld::start(Faults::none()).await;
    let users: Vec<String> = sync.add_users(2).into_iter().map(|u| u.id).collect();
    let all = conversations(&users, 4, Utc::now() - TimeDelta::minutes(10));
    store_all(world.conversations(&world.admin).as_ref(), &all).await;
    let deps = SyncDeps::new(
        &sync.config(test_settings(50.0)),
        world.conversations(&role),
        Arc::new(SyncStateItem::new(
            aws_sdk_dynamodb::Client::new(&role),
            &world.tables.proactive,
            SYNC_NAME,
        )),
    )
    .expect("the sync's dependencies");
    let summary = run_sync(&deps, SyncOptions::default())
        .await
        .expect("a sync run");
    assert_eq!(summary.outcome, RunOutcome::Completed, "{summary:?}");
    assert_eq!(
        (summary.conversations_seen, summary.activities_registered),
        (4, 4),
        "{summary:?}"
    );
    world.assert_every_grant_used(&role, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_passes_with_its_role_only() {
    let world = World::start(TRIGGER_SOURCE).await;
    let role = world
        .role(&Template::deployed().await, "CleanupFunction")
        .await;
    // Seeded by the admin: the cleanup itself never creates a conversation.
    let seeded = seed_world(&world.proactive(&world.admin)).await;
    // Still collecting 15 minutes after its last delivery: the reconciliation reads its repository
    // (uninstalled since, so the group is left to retention).
    let stuck_at = Utc::now() - TimeDelta::minutes(15);
    let mut stuck = WorkflowRunGroup::new(
        GroupKey {
            repo_id: RepoId::from_github(9_999),
            pr_number: 1,
            head_sha: HeadSha::parse(&"b".repeat(40)).expect("a sha"),
        },
        stuck_at,
    );
    stuck.merge(WorkflowRun {
        id: 1,
        name: "build".into(),
        status: RunStatus::Pending,
        conclusion: None,
        attempt: 1,
        updated_at: stuck_at,
        html_url: "https://github.com/octo/gone/actions/runs/1".into(),
    });
    let saved = world
        .proactive(&world.admin)
        .save_group(&stuck, Expected::Absent, None)
        .await;
    assert_eq!(saved.expect("seed a stuck group"), WriteOutcome::Written);
    let stale = running_conversation("stale", Utc::now() - TimeDelta::hours(1));
    world
        .conversations(&world.admin)
        .create_conversation(&stale)
        .await
        .expect("seed a running conversation");
    let github = FakeGitHub::start().await;
    let cleanup = Cleanup::new(world.proactive(&role), Some(Arc::new(world.bus(&role))))
        .with_github(github_client(&github))
        .with_cluster(ClusterPorts {
            conversations: world.conversations(&role),
            janitor: Arc::new(RedisJanitor::new(
                &e2e::redis::url(),
                &e2e::redis::unique_prefix(),
            )),
        });
    let summary = cleanup
        .run(&CleanupOptions::default())
        .await
        .expect("a cleanup pass");
    assert!(summary.failed_steps().is_empty(), "{summary:?}");
    let report = serde_json::to_value(&summary).expect("the summary as JSON");
    assert_eq!(report["outbox"]["published"], 3, "{report}");
    assert_eq!(report["retention"]["groups"], 6, "{report}");
    assert_eq!(report["reconcile"]["status"], "done", "{report}");
    assert_eq!(report["stale_running"]["stopped"], 1, "{report}");
    let stopped = world
        .conversations(&world.admin)
        .get_conversation(&stale.id)
        .await
        .expect("read the conversation");
    assert_eq!(stopped.map(|c| c.status), Some(ConversationStatus::Stopped));
    let published = world.observer.receive(4, DELIVERY_WAIT).await;
    assert_eq!(published.len(), seeded.due.len() + 1, "{published:?}");
    world.assert_every_grant_used(&role, &[]);
}

/// The real GitHub client against the fake, retrying quickly.
fn github_client(github: &FakeGitHub) -> GitHubClient {
    github.require_token(GITHUB_TOKEN);
    let config = GitHubConfig {
        api_url: github.url().to_owned(),
        auth: GitHubAuth::Token(GITHUB_TOKEN.into()),
    };
    let options = ClientOptions {
        retry_backoff: Duration::from_millis(10),
        ..ClientOptions::default()
    };
    GitHubClient::with_options(config, options).expect("a GitHub client")
}

const GITHUB_TOKEN: &str = "iam-github-token";
const INTERNAL_KEY: &str = "iam-internal-key";
const PROACTIVE_REPO: &str = "octo-org/widgets";
const PROACTIVE_PR: u64 = 7;

/// A red commit of `PROACTIVE_REPO`'s PR for alice, as the webhook publishes it.
fn proactive_request() -> ProactiveConversationRequested {
    let now = Utc::now();
    let key = GroupKey {
        repo_id: RepoId::from_github(4242),
        pr_number: PROACTIVE_PR,
        head_sha: HeadSha::parse(&"a".repeat(40)).expect("a sha"),
    };
    let mut group = WorkflowRunGroup::new(key.clone(), now);
    group.merge(WorkflowRun {
        id: 11,
        name: "build".into(),
        status: RunStatus::Failure,
        conclusion: Some("failure".into()),
        attempt: 1,
        updated_at: now,
        html_url: format!("https://github.com/{PROACTIVE_REPO}/actions/runs/11"),
    });
    let repository = Repository {
        id: key.repo_id,
        owner: "octo-org".into(),
        name: "widgets".into(),
        installation_id: None,
        account: "octo-org".into(),
        user_id: UserId::from_github(1),
        proactive_enabled: true,
    };
    ProactiveConversationRequested::for_group(
        &group,
        &repository,
        "fix-widgets",
        &e2e::user_id("alice"),
        now,
    )
}

/// A node on the world's tables as the template's `NodeTaskRole` of `template`: a user's settings
/// changed and read, a conversation created, the agent's answer appended, the conversation stopped and
/// resumed by a message, and a
/// proactive start whose PR comment GitHub first refuses (the comment's claim given back), then takes.
/// What reached the bus is the caller's to check.
async fn run_the_node(world: &World, template: &Template) -> Role {
    let role = world.role(template, "NodeTaskRole").await;
    let client = aws_sdk_dynamodb::Client::new(&role);
    let stores = Stores {
        conversations: Arc::new(ConversationTable::new(
            client.clone(),
            world.tables.conversations.clone(),
        )),
        events: Arc::new(EventTable::new(client, world.tables.events.clone())),
        proactive: world.proactive(&role),
    };
    let github = FakeGitHub::start().await;
    github.put_pull_request(
        PROACTIVE_REPO,
        FakePullRequest::open(PROACTIVE_PR, &"a".repeat(40), "fix-widgets"),
    );
    let mut options = NodeOptions::new();
    options.bus = Arc::new(world.bus(&role));
    options.github = Some(github_client(&github));
    options.config.auth.internal_api_key = Some(INTERNAL_KEY.into());
    let node = TestNode::standalone(&stores, options).await;
    let alice = token("alice");
    let (status, body) = node
        .send(
            node.request(Method::PATCH, "/api/settings")
                .bearer_auth(&alice)
                .json(&json!({ "proactive_conversations": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = node.get("/api/settings", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = node.create_conversation(&alice, Some("hello")).await;
    node.wait_for_events(&alice, &id, |events| events.iter().any(is_agent_message))
        .await;
    let (status, body) = node
        .post(
            &format!("/api/conversations/{id}/stop"),
            Some(&alice),
            &json!({}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    node.wait_for(&alice, &id, is_stopped).await;
    // A message resumes it (from its stored head).
    let (status, body) = node
        .post(
            &format!("/api/conversations/{id}/events"),
            Some(&alice),
            &json!({ "action": "message", "args": { "content": "again" } }),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    node.wait_for_events(&alice, &id, |events| {
        events
            .iter()
            .filter(|event| is_agent_message(event))
            .count()
            == 2
    })
    .await;

    github.inject(FaultRule::next(3, Fault::ServerError(502)).on("GET", "/comments"));
    let start = || {
        node.request(Method::POST, "/internal/proactive")
            .header("X-Api-Key", INTERNAL_KEY)
            .json(&proactive_request())
    };
    let (status, body) = node.send(start()).await;
    assert!(status.is_server_error(), "{status} {body}");
    let (status, body) = node.send(start()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["comment"], "created", "{body}");
    let (status, body) = node.get("/api/conversations", Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    node.stop().await;
    role
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_runs_a_conversation_and_publishes_its_state_with_its_role_only() {
    let world = World::start(NODE_SOURCE).await;
    let role = run_the_node(&world, &Template::deployed().await).await;
    let published = world.observer.receive(1, DELIVERY_WAIT).await;
    assert!(!published.is_empty(), "no state change reached the bus");
    assert!(
        published
            .iter()
            .all(|event| event["detail-type"] == STATE_CHANGED_DETAIL_TYPE),
        "{published:?}"
    );
    // The metrics sidecar's grants: its collector writes them, not the node.
    let sidecar = "NodeMetricsLogGroup.Arn";
    world.assert_every_grant_used(
        &role,
        &[
            ("logs:CreateLogStream", sidecar),
            ("logs:DescribeLogStreams", sidecar),
            ("logs:PutLogEvents", sidecar),
        ],
    );
}

/// A scratch copy of the template in `scratch` without the statement of `role` that grants `action`.
fn template_without(role: &str, action: &str, scratch: &Path) -> PathBuf {
    const STATEMENT: &str = "\n              - Sid: ";
    let deployed = std::fs::read_to_string(Template::deployed_path()).expect("read template.yaml");
    let role_at = deployed
        .find(&format!("\n  {role}:\n"))
        .unwrap_or_else(|| panic!("{role} in template.yaml"));
    let grant_at = role_at
        + deployed[role_at..]
            .find(&format!("Action: {action}\n"))
            .unwrap_or_else(|| panic!("{role} grants {action} alone in a statement"));
    let start = deployed[..grant_at]
        .rfind(STATEMENT)
        .expect("the statement's start");
    let end = grant_at
        + deployed[grant_at..]
            .find(STATEMENT)
            .expect("a statement after it");
    let path = scratch.join("template.yaml");
    std::fs::write(&path, format!("{}{}", &deployed[..start], &deployed[end..]))
        .expect("write the scratch template");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_role_without_put_events_is_refused_its_publishes() {
    let world = World::start(NODE_SOURCE).await;
    let scratch = tempfile::tempdir().expect("a scratch dir");
    let template = Template::read(&template_without(
        "NodeTaskRole",
        "events:PutEvents",
        scratch.path(),
    ))
    .await;
    let role = run_the_node(&world, &template).await;
    assert!(
        world
            .observer
            .receive(1, Duration::from_secs(3))
            .await
            .is_empty(),
        "a state change reached the bus without events:PutEvents"
    );
    // What the node's publishes met: AWS's refusal.
    let refused = aws_sdk_eventbridge::Client::new(&role)
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(world.observer.bus_name())
                .source(NODE_SOURCE)
                .detail_type(STATE_CHANGED_DETAIL_TYPE)
                .detail("{}")
                .build(),
        )
        .send()
        .await
        .expect_err("PutEvents is refused");
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{refused:?}"
    );
}
