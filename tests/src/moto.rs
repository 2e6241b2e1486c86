//! The harness of every test that talks to AWS: real SDK clients pointed at the moto server that
//! `make test` starts (`TEST_AWS_ENDPOINT_URL`), fresh tables per test, and an [`EventObserver`] that
//! shows what reached an EventBridge bus.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::types::Target;
use aws_sdk_sqs::config::Credentials;
use aws_sdk_sqs::types::QueueAttributeName;
use shared::adapters::dynamo::create_tables;
use shared::config::TableNames;

/// The variable naming the moto server's URL.
pub const ENDPOINT_VAR: &str = "TEST_AWS_ENDPOINT_URL";

/// The moto server's URL; panics with directions when it is not configured.
pub fn endpoint() -> String {
    std::env::var(ENDPOINT_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{ENDPOINT_VAR} is not set: run the tests with `make test`, which starts a moto \
                 server, or start one (`.venv/bin/python scripts/lib/moto_server.py 127.0.0.1 PORT`) \
                 and export {ENDPOINT_VAR}=http://127.0.0.1:PORT"
            )
        })
}

/// SDK configuration for moto: its endpoint, `us-east-1`, static dummy credentials. Built per test:
/// a client's connection pool belongs to the runtime of the test that built it.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .load()
        .await
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
}

pub async fn eventbridge() -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::new(&sdk_config().await)
}

/// A real EventBridge client aimed at a port nothing listens on: every publish fails.
pub fn unreachable_eventbridge() -> aws_sdk_eventbridge::Client {
    let config = aws_sdk_eventbridge::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    aws_sdk_eventbridge::Client::from_conf(config)
}

pub async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config().await)
}

/// `<prefix>-<random>`: a name no other test uses (tables, buses, rules, queues).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Fresh table names, with the tables created.
pub async fn unique_tables(client: &aws_sdk_dynamodb::Client) -> TableNames {
    let tables = TableNames {
        proactive: unique_name("proactive"),
        conversations: unique_name("conversations"),
        events: unique_name("conversation-events"),
    };
    create_tables(client, &tables)
        .await
        .expect("create the tables on moto");
    tables
}

/// A fresh EventBridge bus whose rule forwards every event of one source to a fresh SQS queue, from
/// which the test reads what was published (moto delivers to SQS targets, with the full event JSON).
pub struct EventObserver {
    bus_name: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

/// How often [`EventObserver::receive`] polls the queue. Short polls only: the serialised moto server
/// would hold every other test's request behind a long poll.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

impl EventObserver {
    pub async fn start(source: &str) -> Self {
        Self::start_on(&sdk_config().await, source).await
    }

    /// The same on the AWS that `config` points at (a moto server of a test's own).
    pub async fn start_on(config: &SdkConfig, source: &str) -> Self {
        let events = aws_sdk_eventbridge::Client::new(config);
        let sqs = aws_sdk_sqs::Client::new(config);
        let bus_name = unique_name("bus");
        events
            .create_event_bus()
            .name(&bus_name)
            .send()
            .await
            .expect("create an event bus");
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name("events"))
            .send()
            .await
            .expect("create a queue")
            .queue_url
            .expect("the new queue's URL");
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("read the queue's ARN")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .expect("the queue's ARN");
        let rule = unique_name("rule");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus_name)
            .event_pattern(serde_json::json!({ "source": [source] }).to_string())
            .send()
            .await
            .expect("create a rule");
        let target = Target::builder()
            .id("observer")
            .arn(queue_arn)
            .build()
            .expect("a queue target");
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus_name)
            .targets(target)
            .send()
            .await
            .expect("route the rule to the queue");
        Self {
            bus_name,
            queue_url,
            sqs,
        }
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// The events delivered so far, waiting up to `within` until there are at least `count`; each is
    /// EventBridge's full JSON (`source`, `detail-type`, `detail`, `id`, `time`...). Messages are deleted
    /// once read, so a later call returns only newer events.
    pub async fn receive(&self, count: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut received = Vec::new();
        loop {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive from the observer's queue")
                .messages
                .unwrap_or_default();
            for message in messages {
                let body = message.body().expect("an event message has a body");
                received.push(serde_json::from_str(body).expect("an event is JSON"));
                if let Some(handle) = message.receipt_handle() {
                    self.sqs
                        .delete_message()
                        .queue_url(&self.queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete a received message");
                }
            }
            if received.len() >= count || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}
