//! The node's metrics as an operator sees them: two real node processes on Redis and DynamoDB (moto),
//! driven by official Socket.IO clients through a conversation, a crash of its owner and the takeover;
//! then the survivor's metrics listener (`METRICS_ADDR`) is scraped and every metric the Grafana
//! dashboard (`ops/grafana/conversation-node.json`) queries is there, histograms with the observations
//! the traffic made, and the dashboard shows every metric the node exports. The public port serves
//! only a plain `/health`.

use std::collections::BTreeSet;

use e2e::cluster::{ClusterEnv, NodeProcess, answers};
use e2e::metrics::samples;
use e2e::node::token;
use e2e::socketio::{ConnectOptions, SocketClient, message_action};
use serde_json::{Value, json};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ops/grafana/conversation-node.json"
);
const PREFIX: &str = "conversation_node_";
/// A histogram's series besides its buckets.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Sends a message and waits for its acknowledgement.
async fn say(client: &mut SocketClient, text: &str) {
    let ack = client
        .emit_with_ack("oh_user_action", message_action(text))
        .await;
    assert_eq!(ack, json!({ "success": true }), "{text} not acknowledged");
}

/// Every metric name the dashboard's queries use (and its datasource variable checked).
fn dashboard_metrics() -> BTreeSet<String> {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(DASHBOARD).expect("the dashboard"))
            .expect("the dashboard is JSON");
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let mut names = BTreeSet::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "a panel without queries: {panel}");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL query");
            names.extend(metric_names(expr));
        }
    }
    names
}

/// The metric names in a PromQL expression (the node's: those with its prefix).
fn metric_names(expr: &str) -> Vec<String> {
    expr.match_indices(PREFIX)
        .map(|(start, _)| {
            expr[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// What a histogram series name belongs to: `x_seconds_bucket` -> `x_seconds`.
fn family(name: &str) -> &str {
    HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_what_the_node_exports_with_the_traffics_observations() {
    let env = ClusterEnv::fresh().await;
    let owner = NodeProcess::start(&env).await;
    let mut survivor = NodeProcess::start(&env).await;
    let http = reqwest::Client::new();

    // The public port: a plain health check, and neither the probes nor the metrics.
    let health = http.get(format!("{}/health", owner.url)).send().await;
    let health = health.expect("the node answers");
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );
    for path in ["/metrics", "/ready"] {
        let answer = http.get(format!("{}{path}", owner.url)).send().await;
        let answer = answer.expect("the node answers");
        assert_eq!(answer.status(), 404, "{path} on the public port");
        let body: Value = answer.json().await.expect("a JSON answer");
        assert!(body["message"].is_string(), "a reason: {body}");
    }
    let ready: Value = http
        .get(format!("{}/ready", survivor.metrics_url))
        .send()
        .await
        .expect("the metrics listener answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["node_id"], survivor.node_id.as_str());

    // A conversation the owner runs, a client on the survivor; then the owner crashes and the
    // survivor takes the conversation over and answers the next message itself.
    let alice = token("alice");
    let id = owner.create_conversation(&alice, Some("first words")).await;
    let options = ConnectOptions::conversation(&id, &alice, None);
    let mut client = SocketClient::connect(&survivor.url, &options).await;
    client.events_until(|e| answers(e, "first words")).await;
    owner.signal("KILL").await;
    survivor.logged("agent loop resumed").await;
    say(&mut client, "after the takeover").await;
    client
        .events_until(|e| answers(e, "after the takeover"))
        .await;

    let text = survivor.scrape().await;
    let scraped = samples(&text);
    let exported: BTreeSet<&str> = scraped.iter().map(|sample| sample.name).collect();
    let count = |name: &str| {
        scraped
            .iter()
            .filter(|sample| sample.name == name)
            .map(|sample| sample.value)
            .sum::<f64>()
    };
    let wanted = dashboard_metrics();
    for name in &wanted {
        if name.ends_with("_bucket") || name.ends_with("_count") {
            for suffix in HISTOGRAM_SUFFIXES {
                let series = format!("{}{suffix}", family(name));
                assert!(exported.contains(series.as_str()), "no {series} in {text}");
            }
        } else {
            assert!(exported.contains(name.as_str()), "no {name} in {text}");
        }
    }
    // What the traffic made on the survivor (a relayed runtime event needs an agent-server: the
    // `openhands` tests time those).
    for observed in [
        "conversation_node_takeover_seconds_count",
        "conversation_node_agent_turn_seconds_count",
        "conversation_node_store_append_seconds_count",
        "conversation_node_redis_command_seconds_count",
    ] {
        assert!(
            count(observed) >= 1.0,
            "no observation in {observed}: {text}"
        );
    }
    assert!(
        scraped.iter().any(
            |sample| sample.name == "conversation_node_redis_command_seconds_count"
                && sample.labels.contains("command=\"EVALSHA\"")
        ),
        "the lease scripts are timed by command: {text}"
    );
    assert_eq!(count("conversation_node_socket_connections"), 1.0);
    assert_eq!(count("conversation_node_running_conversations"), 1.0);
    // And the dashboard leaves none of the node's metrics out.
    let shown: BTreeSet<&str> = wanted.iter().map(|name| family(name)).collect();
    for name in exported {
        assert!(shown.contains(family(name)), "{name} is on no panel");
    }
    client.close().await;
}
