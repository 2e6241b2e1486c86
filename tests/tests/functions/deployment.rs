//! The deployment's deliverables, built and run for real: the SAM template passes cfn-lint and
//! `sam validate --lint` and declares the tables the adapters create; `cargo lambda build --release`
//! builds every function; the webhook and the cleanup functions answer under `cargo lambda watch` (a
//! Lambda runtime emulator) with their samples from `events/`, on DynamoDB and EventBridge (moto).
//! The arm64 bundle (`scripts/build-arm64.sh`) is an ignored test: it needs the aarch64 standard library.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::TableDescription;
use e2e::cleanup_scenarios::{running_conversation, seed_world};
use e2e::iam::Template;
use e2e::lambda_tools::{LambdaEmulator, cargo_lambda, run, target_dir, tool, workspace_root};
use e2e::moto::{self, EventObserver};
use e2e::webhook_samples::{LOCAL_WEBHOOK_SECRET, NAME, OWNER, REPOSITORY_ID};
use e2e::webhook_sender::{read_delivery, send};
use serde_json::{Value, json};
use shared::adapters::dynamo::{ConversationTable, ProactiveTable};
use shared::adapters::embedded::{EmbeddedDb, EmbeddedProactiveStore};
use shared::config::TableNames;
use shared::domain::{ConversationStatus, RepoId, TRIGGER_SOURCE};
use shared::ports::{ConversationStore, ProactiveStore};
use tokio::process::Command;
use tokio::sync::Mutex;

/// The Lambda functions of the bundle (their binaries' names).
const FUNCTIONS: [&str; 3] = ["webhook", "commonroom-sync", "cleanup"];

/// Held by the tests that compile, so that they take turns on the target directory and each one's
/// time limit covers its own build only.
pub(crate) static CARGO: Mutex<()> = Mutex::const_new(());

const LINT_LIMIT: Duration = Duration::from_secs(300);
const RELEASE_BUILD_LIMIT: Duration = Duration::from_secs(60 * 60);

#[tokio::test]
async fn the_template_passes_cfn_lint_with_informational_checks() {
    let mut lint = tool("cfn-lint");
    lint.args(["--include-checks", "I", "--template", "template.yaml"]);
    run(lint, LINT_LIMIT).await;
}

#[tokio::test]
async fn the_template_passes_sam_validate_lint() {
    let mut validate = tool("sam");
    validate
        .args(["validate", "--lint", "--template-file", "template.yaml"])
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0");
    let output = run(validate, LINT_LIMIT).await;
    assert!(
        output.stdout.contains("is a valid SAM Template"),
        "{}\n{}",
        output.stdout,
        output.stderr
    );
}

fn sorted_by(mut items: Vec<Value>, field: &str) -> Value {
    items.sort_by_key(|item| item[field].to_string());
    Value::Array(items)
}

fn key_schema(elements: impl IntoIterator<Item = (String, String)>) -> Value {
    elements
        .into_iter()
        .map(|(name, kind)| json!({ "AttributeName": name, "KeyType": kind }))
        .collect()
}

/// A table's shape as the template declares it: keys, attribute types, indexes, TTL, billing.
fn declared_shape(properties: &Value) -> Value {
    let as_list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    let indexes = as_list(&properties["GlobalSecondaryIndexes"])
        .into_iter()
        .map(|index| {
            let mut non_key: Vec<String> = as_list(&index["Projection"]["NonKeyAttributes"])
                .iter()
                .map(|name| name.as_str().unwrap_or_default().to_owned())
                .collect();
            non_key.sort();
            json!({
                "IndexName": index["IndexName"],
                "KeySchema": index["KeySchema"],
                "ProjectionType": index["Projection"]["ProjectionType"],
                "NonKeyAttributes": non_key,
            })
        })
        .collect();
    let ttl = &properties["TimeToLiveSpecification"];
    json!({
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": sorted_by(as_list(&properties["AttributeDefinitions"]), "AttributeName"),
        "GlobalSecondaryIndexes": sorted_by(indexes, "IndexName"),
        "TimeToLive": if ttl["Enabled"] == json!(true) { ttl["AttributeName"].clone() } else { Value::Null },
        "BillingMode": properties["BillingMode"],
    })
}

/// The same shape of a table `create_tables` made, as DynamoDB describes it.
async fn created_shape(client: &aws_sdk_dynamodb::Client, table: &TableDescription) -> Value {
    let name = table.table_name().expect("a table name");
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
        key_schema(schema.iter().map(|key| {
            (
                key.attribute_name().to_owned(),
                key.key_type().as_str().to_owned(),
            )
        }))
    };
    let attributes = table
        .attribute_definitions()
        .iter()
        .map(|a| json!({ "AttributeName": a.attribute_name(), "AttributeType": a.attribute_type().as_str() }))
        .collect();
    let indexes = table
        .global_secondary_indexes()
        .iter()
        .map(|index| {
            let projection = index.projection().expect("a projection");
            let mut non_key = projection.non_key_attributes().to_vec();
            non_key.sort();
            json!({
                "IndexName": index.index_name(),
                "KeySchema": keys(index.key_schema()),
                "ProjectionType": projection.projection_type().map(|t| t.as_str()),
                "NonKeyAttributes": non_key,
            })
        })
        .collect();
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .expect("describe the table's TTL")
        .time_to_live_description
        .filter(|ttl| {
            ttl.time_to_live_status()
                .is_some_and(|s| s.as_str() == "ENABLED")
        })
        .and_then(|ttl| ttl.attribute_name().map(str::to_owned));
    json!({
        "KeySchema": keys(table.key_schema()),
        "AttributeDefinitions": sorted_by(attributes, "AttributeName"),
        "GlobalSecondaryIndexes": sorted_by(indexes, "IndexName"),
        "TimeToLive": ttl,
        "BillingMode": table.billing_mode_summary().and_then(|b| b.billing_mode()).map(|m| m.as_str()),
    })
}

#[tokio::test]
async fn the_template_declares_the_tables_the_adapters_create() {
    let template = Template::deployed().await;
    let template = template.json();
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    for (resource, name) in [
        ("ProactiveTable", &tables.proactive),
        ("ConversationsTable", &tables.conversations),
        ("EventsTable", &tables.events),
    ] {
        let properties = &template["Resources"][resource]["Properties"];
        assert_eq!(
            properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
            "{resource}: point-in-time recovery"
        );
        let created = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("describe a created table")
            .table
            .expect("a table description");
        assert_eq!(
            declared_shape(properties),
            created_shape(&client, &created).await,
            "{resource} in template.yaml differs from the table create_tables makes"
        );
    }
}

/// Every `Fn::Sub` string (its template) anywhere under `value`.
fn sub_strings(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get("Fn::Sub") {
                found.push(text.clone());
            }
            map.values().for_each(|v| sub_strings(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| sub_strings(v, found)),
        _ => {}
    }
}

/// Issue #17's deployment rules, read from the template: secrets only through `SECRETS_ARN` (no value
/// resolved into a function's or the node's configuration), JSON Lambda logs, Redis over TLS with AUTH,
/// a load balancer that forwards only the node's public routes, and the metrics port never opened.
#[tokio::test]
async fn the_template_keeps_secrets_out_of_configuration_and_the_internals_private() {
    let template = Template::deployed().await;
    let template = template.json();
    let resources = template["Resources"].as_object().expect("resources");
    assert_eq!(
        template["Globals"]["Function"]["Environment"]["Variables"]["SECRETS_ARN"],
        json!({ "Ref": "SecretsArn" })
    );
    let node = &resources["NodeTaskDefinition"]["Properties"]["ContainerDefinitions"][0];
    assert_eq!(node["Name"], "conversation-node");
    assert!(
        node.get("Secrets").is_none(),
        "the node reads the secret itself"
    );
    let node_env = |name: &str| {
        node["Environment"]
            .as_array()
            .expect("the node's environment")
            .iter()
            .find(|variable| variable["Name"] == name)
            .map(|variable| variable["Value"].clone())
    };
    assert_eq!(
        node_env("SECRETS_ARN"),
        Some(json!({ "Ref": "SecretsArn" }))
    );
    let mut configuration_subs = Vec::new();
    for function in [
        "WebhookFunction",
        "CommonRoomSyncFunction",
        "CleanupFunction",
    ] {
        let properties = &resources[function]["Properties"];
        sub_strings(&properties["Environment"], &mut configuration_subs);
        let logging = &properties["LoggingConfig"];
        assert_eq!(logging["LogFormat"], "JSON", "{function}");
        assert_eq!(
            logging["ApplicationLogLevel"],
            json!({ "Ref": "LambdaLogLevel" }),
            "{function}"
        );
        assert_eq!(logging["SystemLogLevel"], "INFO", "{function}");
    }
    assert_eq!(
        resources["WebhookFunction"]["Properties"]["Timeout"], 9,
        "within GitHub's 10 s"
    );
    sub_strings(&node["Environment"], &mut configuration_subs);
    assert!(
        configuration_subs
            .iter()
            .all(|text| !text.contains("{{resolve:")),
        "a secret resolved into configuration: {configuration_subs:#?}"
    );
    let redis_urls: Vec<&String> = configuration_subs
        .iter()
        .filter(|text| text.contains("Redis.PrimaryEndPoint"))
        .collect();
    assert_eq!(redis_urls.len(), 2, "the node's and the cleanup's");
    assert!(
        redis_urls.iter().all(|url| url.starts_with("rediss://")),
        "{redis_urls:?}"
    );
    let redis = &resources["Redis"]["Properties"];
    assert_eq!(redis["TransitEncryptionEnabled"], true);
    assert!(
        redis["AuthToken"]["Fn::Sub"]
            .as_str()
            .is_some_and(|t| t.ends_with(":REDIS_AUTH_TOKEN}}"))
    );

    let listener = &resources["HttpsListener"]["Properties"]["DefaultActions"][0];
    assert_eq!(listener["Type"], "fixed-response");
    assert_eq!(listener["FixedResponseConfig"]["StatusCode"], "404");
    assert_eq!(
        listener["FixedResponseConfig"]["ContentType"],
        "application/json"
    );
    let body: Value = serde_json::from_str(
        listener["FixedResponseConfig"]["MessageBody"]
            .as_str()
            .expect("a body"),
    )
    .expect("a JSON body");
    assert!(body["reason"].is_string(), "{body}");
    let mut forwarded: Vec<String> = resources
        .values()
        .filter(|resource| resource["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule")
        .flat_map(|rule| {
            rule["Properties"]["Conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|condition| {
            condition["PathPatternConfig"]["Values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|path| path.as_str().expect("a path").to_owned())
        .collect();
    forwarded.sort();
    assert_eq!(
        forwarded,
        [
            "/api/conversations",
            "/api/conversations/*",
            "/api/repositories/*/*/settings",
            "/api/settings",
            "/health",
            "/internal/proactive",
            "/socket.io/*",
        ]
    );
    let internal = &resources["InternalProactiveRule"]["Properties"]["Conditions"];
    assert!(
        internal
            .as_array()
            .expect("conditions")
            .iter()
            .any(|condition| {
                condition["HttpHeaderConfig"]["HttpHeaderName"] == "X-Api-Key"
                    && condition["HttpHeaderConfig"]["Values"][0]["Fn::Sub"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(":INTERNAL_API_KEY}}"))
            }),
        "{internal}"
    );
    assert_eq!(
        resources["NodeTargetGroup"]["Properties"]["HealthCheckPath"],
        "/health"
    );
    for (name, resource) in resources {
        for rule in resource["Properties"]["SecurityGroupIngress"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (from, to) = (rule["FromPort"].as_u64(), rule["ToPort"].as_u64());
            assert!(
                !matches!((from, to), (Some(from), Some(to)) if (from..=to).contains(&9464)),
                "{name} opens the metrics port: {rule}"
            );
        }
    }
    let collector = &resources["NodeTaskDefinition"]["Properties"]["ContainerDefinitions"][1];
    let config = collector["Environment"][0]["Value"]["Fn::Sub"]
        .as_str()
        .expect("AOT_CONFIG_CONTENT");
    assert_eq!(collector["Environment"][0]["Name"], "AOT_CONFIG_CONTENT");
    assert!(
        config.contains("localhost:9464") && config.contains("awsemf"),
        "{config}"
    );
}

/// ELF `e_machine` of the machine the tests run on.
fn host_machine() -> u16 {
    match std::env::consts::ARCH {
        "x86_64" => 0x3E,
        "aarch64" => 0xB7,
        other => panic!("no ELF machine known for {other}"),
    }
}

#[tokio::test]
async fn cargo_lambda_builds_every_function_for_the_host() {
    let _turn = CARGO.lock().await;
    let mut build = cargo_lambda("build");
    build.arg("--release");
    for function in FUNCTIONS {
        build.args(["--package", function]);
    }
    run(build, RELEASE_BUILD_LIMIT).await;

    let lambda_dir = target_dir().await.join("lambda");
    println!("{:<18}{:>14}  (host, release)", "function", "bootstrap");
    for function in FUNCTIONS {
        let path = lambda_dir.join(function).join("bootstrap");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            &bytes[..4],
            b"\x7fELF",
            "{}: an ELF executable",
            path.display()
        );
        let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
        assert_eq!(
            machine,
            host_machine(),
            "{}: built for the host",
            path.display()
        );
        println!("{function:<18}{:>14}", bytes.len());
    }
    cleanup_bootstrap_runs_its_command_line(&lambda_dir.join("cleanup/bootstrap")).await;
}

/// Each Lambda function links the adapters it runs and no other (`shared`'s `embedded` and `redis`
/// features): no SQLite or Redis client in the webhook, no Redis client in the sync. The packages a
/// function's build resolves, as `sam build` builds it (alone).
#[tokio::test]
async fn each_function_links_only_the_adapters_it_runs() {
    let linked = async |function: &str| -> Vec<String> {
        let mut tree = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        tree.args(["tree", "-p", function, "-e", "normal", "--prefix", "none"])
            .current_dir(workspace_root());
        let output = run(tree, Duration::from_secs(120)).await;
        output.stdout.lines().map(str::to_owned).collect()
    };
    let has = |lines: &[String], package: &str| {
        lines
            .iter()
            .any(|line| line.starts_with(&format!("{package} v")))
    };
    let webhook = linked("webhook").await;
    assert!(has(&webhook, "aws-sdk-dynamodb"), "{webhook:#?}");
    assert!(
        !has(&webhook, "rusqlite") && !has(&webhook, "redis"),
        "{webhook:#?}"
    );
    let sync = linked("commonroom-sync").await;
    assert!(has(&sync, "rusqlite") && !has(&sync, "redis"), "{sync:#?}");
    let cleanup = linked("cleanup").await;
    assert!(has(&cleanup, "redis"), "{cleanup:#?}");
}

/// Outside Lambda the cleanup's bootstrap is its command line: here on an embedded store, without a
/// bus, a dry run and then a pass, each printing the summary and logging it as one line.
async fn cleanup_bootstrap_runs_its_command_line(bootstrap: &Path) {
    let mut help = Command::new(bootstrap);
    help.arg("--help");
    let help = run(help, Duration::from_secs(60)).await;
    assert!(help.stdout.contains("--dry-run"), "{}", help.stdout);

    let data_dir = tempfile::tempdir().expect("a data dir");
    {
        let db = EmbeddedDb::open(data_dir.path()).expect("open the embedded store");
        let store: Arc<dyn ProactiveStore> =
            Arc::new(EmbeddedProactiveStore::open(db).await.expect("its schema"));
        seed_world(&store).await;
    }
    let pass = |dry_run: bool| {
        let mut cli = Command::new(bootstrap);
        cli.args(["--retention-days", "30"])
            .args(dry_run.then_some("--dry-run"))
            .env("DATA_DIR", data_dir.path())
            .env("RUST_LOG", "info");
        for aws in [
            "AWS_ENDPOINT_URL",
            "PROACTIVE_TABLE",
            "AWS_LAMBDA_FUNCTION_NAME",
            "EVENT_BUS_NAME",
            "REDIS_URL",
        ] {
            cli.env_remove(aws);
        }
        cli
    };
    for (dry_run, groups) in [(true, 6), (false, 6), (false, 0)] {
        let output = run(pass(dry_run), Duration::from_secs(60)).await;
        let summary: Value = serde_json::from_str(&output.stdout).expect("the summary as JSON");
        assert_eq!(summary["dry_run"], dry_run, "{summary}");
        assert_eq!(summary["retention"]["groups"], groups, "{summary}");
        assert_eq!(summary["outbox"]["status"], "skipped", "{summary}");
        assert_eq!(summary["dead_nodes"]["status"], "skipped", "{summary}");
        let logged: Value = output
            .stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| line["fields"]["message"] == "cleanup summary")
            .unwrap_or_else(|| panic!("no summary line in:\n{}", output.stderr));
        assert_eq!(logged["fields"]["retention.groups"], groups, "{logged}");
        assert_eq!(logged["fields"]["outbox.status"], "skipped", "{logged}");
    }
}

/// The environment of the functions under the emulator: DynamoDB on moto with fresh tables, GitHub on
/// a closed port (nothing these samples do calls it).
pub(crate) fn function_env(
    tables: &TableNames,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", moto::endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("PROACTIVE_TABLE", tables.proactive.clone()),
        ("CONVERSATIONS_TABLE", tables.conversations.clone()),
        ("GITHUB_API_URL", "http://127.0.0.1:9".into()),
        ("RUST_LOG", "info".into()),
    ];
    env.extend(extra.iter().cloned());
    env
}

fn sample(relative: &str) -> Vec<u8> {
    let path = workspace_root().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_a_signed_sample_under_the_lambda_emulator() {
    let dynamodb = moto::dynamodb().await;
    let tables = moto::unique_tables(&dynamodb).await;
    let _turn = CARGO.lock().await;
    let emulator = LambdaEmulator::start(&function_env(
        &tables,
        &[("GITHUB_WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET.into())],
    ))
    .await;
    let url = emulator.function_url("webhook", "/webhooks/github");
    let secret = LOCAL_WEBHOOK_SECRET.as_bytes();

    let installation = read_delivery(&sample("events/webhook/installation-created.json"), None)
        .expect("the installation sample");
    // The first request waits while the emulator compiles the function.
    let answer = send(&url, secret, &installation).await.expect("an answer");
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    assert_eq!(answer.body["event"], "installation", "{:?}", answer.body);
    assert_eq!(answer.body["repositories"], 1, "{:?}", answer.body);
    let store = ProactiveTable::new(dynamodb, tables.proactive.clone());
    assert_eq!(
        store
            .get_repo_id(OWNER, NAME)
            .await
            .expect("read the registry"),
        Some(RepoId::from_github(REPOSITORY_ID)),
        "the function registered the repository in DynamoDB"
    );

    let again = send(&url, secret, &installation).await.expect("an answer");
    assert_eq!(
        (again.status, &again.body),
        (200, &json!({"duplicate": true}))
    );

    let ping = read_delivery(&sample("events/webhook/ping.json"), None).expect("the ping sample");
    let forged = send(&url, b"not-the-secret", &ping)
        .await
        .expect("an answer");
    assert_eq!(forged.status, 401, "{:?}", forged.body);
    assert!(forged.body["error"].is_string(), "{:?}", forged.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_runs_its_scheduled_event_under_the_lambda_emulator() {
    let _turn = CARGO.lock().await;
    let dynamodb = moto::dynamodb().await;
    let tables = moto::unique_tables(&dynamodb).await;
    let store: Arc<dyn ProactiveStore> = Arc::new(ProactiveTable::new(
        dynamodb.clone(),
        tables.proactive.clone(),
    ));
    // Recorded as running an hour ago, on a cluster (an empty Redis prefix) where nothing runs it.
    let conversations = ConversationTable::new(dynamodb, tables.conversations.clone());
    let stale = running_conversation("stale", chrono::Utc::now() - chrono::TimeDelta::hours(1));
    conversations.create_conversation(&stale).await.unwrap();
    let observer = EventObserver::start(TRIGGER_SOURCE).await;
    let emulator = LambdaEmulator::start(&function_env(
        &tables,
        &[
            ("EVENT_BUS_NAME", observer.bus_name().to_owned()),
            ("PROACTIVE_RETENTION_DAYS", "30".into()),
            ("REDIS_URL", e2e::redis::url()),
            ("REDIS_KEY_PREFIX", e2e::redis::unique_prefix()),
        ],
    ))
    .await;

    // The first invocation builds the function, which can take minutes on a busy machine: it runs on
    // the empty tables, so that the world seeded next (an outbox entry one minute into its five-minute
    // grace period) is as old as it says when the scheduled pass sees it.
    let events = workspace_root().join("events/cleanup");
    let dry = emulator
        .invoke("cleanup", &events.join("scheduler-dry-run.json"))
        .await;
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["retention"]["retention_days"], 7, "{dry}");
    assert_eq!(dry["retention"]["groups"], 0, "{dry}");
    assert_eq!(dry["outbox"]["due"], 0, "{dry}");

    let seeded = seed_world(&store).await;
    let summary = emulator
        .invoke("cleanup", &events.join("scheduled.json"))
        .await;
    assert_eq!(summary["dry_run"], false, "{summary}");
    assert_eq!(summary["outbox"]["status"], "done", "{summary}");
    assert_eq!(
        [
            &summary["outbox"]["due"],
            &summary["outbox"]["published"],
            &summary["outbox"]["failed"]
        ],
        [3, 3, 0],
        "{summary}"
    );
    assert_eq!(summary["retention"]["status"], "done", "{summary}");
    assert_eq!(summary["retention"]["retention_days"], 30, "{summary}");
    assert_eq!(summary["retention"]["groups"], 6, "{summary}");
    assert_eq!(summary["dead_nodes"]["status"], "done", "{summary}");
    assert_eq!(summary["dead_nodes"]["nodes"], 0, "{summary}");
    assert_eq!(summary["stale_running"]["stopped"], 1, "{summary}");
    let stopped = conversations.get_conversation(&stale.id).await.unwrap();
    assert_eq!(stopped.map(|c| c.status), Some(ConversationStatus::Stopped));

    let published: BTreeSet<String> = observer
        .receive(4, Duration::from_secs(3))
        .await
        .iter()
        .map(|event| {
            event["detail"]["trigger_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let mut expected = seeded.due.clone();
    expected.insert(seeded.due_and_expired.clone());
    assert_eq!(published, expected);
    for key in &seeded.expired {
        assert!(
            store.get_group(key).await.unwrap().is_none(),
            "{key} deleted"
        );
    }
    for key in &seeded.recent {
        assert!(store.get_group(key).await.unwrap().is_some(), "{key} kept");
    }

    // EventBridge Scheduler's input, with overrides: a dry run with a 7-day window counts the group
    // updated 29 days ago, and nothing is due under a 15-minute grace.
    let dry = emulator
        .invoke("cleanup", &events.join("scheduler-dry-run.json"))
        .await;
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["retention"]["retention_days"], 7, "{dry}");
    assert_eq!(dry["retention"]["groups"], 1, "{dry}");
    assert_eq!(dry["outbox"]["due"], 0, "{dry}");
    for key in &seeded.recent {
        assert!(
            store.get_group(key).await.unwrap().is_some(),
            "{key} kept by a dry run"
        );
    }
}

/// `scripts/build-arm64.sh`: the bundle `sam build` deploys, every zipped bootstrap within 5 MB (P2);
/// then `sam build` itself, through the template's build metadata.
/// Needs the aarch64 standard library (`rustup target add aarch64-unknown-linux-gnu`):
/// `cargo test -p e2e --test functions deployment -- --ignored`.
#[tokio::test]
#[ignore = "needs the aarch64 standard library; run with --ignored"]
async fn the_arm64_bundle_builds_within_the_size_bar() {
    let _turn = CARGO.lock().await;
    let script = workspace_root().join("scripts/build-arm64.sh");
    let mut build = Command::new(Path::new("bash"));
    build.arg(script).current_dir(workspace_root());
    let output = run(build, RELEASE_BUILD_LIMIT).await;
    println!("{}", output.stdout);
    for function in FUNCTIONS {
        assert!(output.stdout.contains(function), "{}", output.stdout);
    }

    // `sam build` finds the same artifacts through the template's build metadata.
    let build_dir = tempfile::tempdir().expect("a build dir");
    let mut sam = tool("sam");
    sam.args(["build", "--template-file", "template.yaml", "--build-dir"])
        .arg(build_dir.path())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .envs(e2e::lambda_tools::lambda_profile());
    run(sam, RELEASE_BUILD_LIMIT).await;
    for resource in [
        "WebhookFunction",
        "CommonRoomSyncFunction",
        "CleanupFunction",
    ] {
        let bootstrap = std::fs::read(build_dir.path().join(resource).join("bootstrap"))
            .unwrap_or_else(|e| panic!("{resource}: {e}"));
        let machine = u16::from_le_bytes([bootstrap[18], bootstrap[19]]);
        assert_eq!(machine, 0xB7, "{resource}: an aarch64 bootstrap");
    }
}
