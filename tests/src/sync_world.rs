//! A world for Common Room sync tests: fakes of Keycloak and Common Room, users in the first,
//! conversations in a store, the sync's configuration pointing at both (as a struct for in-process runs,
//! as environment variables for the binary), and the rate benchmark shared by the example and its test.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commonroom_sync::CommonRoomConfig;
use commonroom_sync::{SYNC_NAME, SyncConfig, SyncDeps, SyncOptions, SyncSettings, run_sync};
use serde_json::{Value, json};
use shared::adapters::dynamo::{ConversationTable, SyncStateItem};
use shared::adapters::embedded::{EmbeddedConversationStore, EmbeddedDb, EmbeddedSyncState};
use shared::domain::{AgentState, Conversation, ConversationId, ConversationStatus};
use shared::keycloak::KeycloakConfig;
use shared::ports::ConversationStore;
use shared::retry::RetryPolicy;
use shared::secret::Secret;

use crate::fakes::commonroom::{CommonRoomFake, Faults};
use crate::fakes::keycloak::{FakeUser, KeycloakFake};
use crate::moto;

pub const REALM: &str = "allhands";
pub const CLIENT_ID: &str = "sync-client";
pub const CLIENT_SECRET: &str = "kc-secret-5b1e0c7a";
pub const API_KEY: &str = "cr-key-9f2d41aa";
pub const SOURCE_ID: &str = "4242";
pub const PUBLIC_URL: &str = "https://app.example.test";

pub struct SyncWorld {
    pub keycloak: KeycloakFake,
    pub common_room: CommonRoomFake,
}

impl SyncWorld {
    /// Both fakes, Keycloak's tokens living one second (so that runs see them refreshed).
    pub async fn start(faults: Faults) -> Self {
        Self {
            keycloak: KeycloakFake::start(REALM, CLIENT_ID, CLIENT_SECRET, Duration::from_secs(1))
                .await,
            common_room: CommonRoomFake::start(API_KEY, SOURCE_ID, faults).await,
        }
    }

    /// `count` users with an e-mail address and a linked GitHub identity, added to Keycloak.
    pub fn add_users(&self, count: usize) -> Vec<FakeUser> {
        (0..count)
            .map(|i| {
                let id = uuid_like(i);
                let user = FakeUser {
                    username: format!("dev{i}"),
                    email: Some(format!("dev{i}@example.com")),
                    github: Some(format!("dev{i}-gh")),
                    id,
                };
                self.keycloak.add_user(user.clone());
                user
            })
            .collect()
    }

    /// The configuration of an in-process run against the fakes.
    pub fn config(&self, settings: SyncSettings) -> SyncConfig {
        SyncConfig {
            keycloak: KeycloakConfig {
                server_url: self.keycloak.url().parse().expect("fake URL"),
                realm: REALM.into(),
                client_id: CLIENT_ID.into(),
                client_secret: Secret::new(CLIENT_SECRET),
                github_idp_alias: "github".into(),
            },
            common_room: Some(CommonRoomConfig {
                base_url: self.common_room.url().parse().expect("fake URL"),
                api_key: Secret::new(API_KEY),
                source_id: SOURCE_ID.into(),
            }),
            dry_run: false,
            settings,
        }
    }

    /// The same configuration as environment variables, for the binary.
    pub fn env(&self, settings: &SyncSettings) -> Vec<(&'static str, String)> {
        vec![
            ("KEYCLOAK_SERVER_URL", self.keycloak.url().to_owned()),
            ("KEYCLOAK_REALM_NAME", REALM.into()),
            ("KEYCLOAK_CLIENT_ID", CLIENT_ID.into()),
            ("KEYCLOAK_CLIENT_SECRET", CLIENT_SECRET.into()),
            ("COMMON_ROOM_API_KEY", API_KEY.into()),
            ("COMMON_ROOM_DESTINATION_SOURCE_ID", SOURCE_ID.into()),
            ("COMMON_ROOM_API_BASE_URL", self.common_room.url()),
            ("PUBLIC_URL", PUBLIC_URL.into()),
            ("SYNC_RATE_LIMIT", settings.rate_limit.to_string()),
            (
                "SYNC_RETRY_MAX_ATTEMPTS",
                settings.retry.max_attempts.to_string(),
            ),
            (
                "SYNC_RETRY_INITIAL_BACKOFF_MS",
                settings.retry.initial_backoff.as_millis().to_string(),
            ),
            (
                "SYNC_RETRY_MAX_BACKOFF_MS",
                settings.retry.max_backoff.as_millis().to_string(),
            ),
            ("SYNC_PAGE_SIZE", settings.page_size.to_string()),
            ("SYNC_IN_FLIGHT", settings.in_flight.to_string()),
            (
                "SYNC_LEASE_SECONDS",
                settings.lease_ttl.as_secs().to_string(),
            ),
            ("SYNC_SETTLE_SECONDS", settings.settle.as_secs().to_string()),
        ]
    }
}

/// Settings for tests: the given rate, quick retries with enough attempts to ride out the fake's
/// faults, small pages (so that paging is exercised), a short lease, a settle of 30 s (conversations
/// created a minute ago or earlier are sent).
pub fn test_settings(rate_limit: f64) -> SyncSettings {
    SyncSettings {
        public_url: PUBLIC_URL.into(),
        rate_limit,
        lookback: Duration::from_secs(3600),
        settle: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts: 20,
            initial_backoff: Duration::from_millis(20),
            factor: 2.0,
            max_backoff: Duration::from_millis(500),
        },
        keycloak_batch: 5,
        page_size: 7,
        in_flight: 16,
        lease_ttl: Duration::from_secs(2),
        http_timeout: Duration::from_secs(10),
    }
}

fn uuid_like(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", rand::random::<u32>(), i)
}

/// `count` conversations of `users` in turn, created a millisecond apart from `first`; every third
/// one has no title.
pub fn conversations(users: &[String], count: usize, first: DateTime<Utc>) -> Vec<Conversation> {
    (0..count)
        .map(|i| {
            let created_at = first + chrono::Duration::milliseconds(i as i64);
            Conversation {
                id: ConversationId::random(),
                user_id: crate::user_id(&users[i % users.len()]),
                title: (i % 3 != 0).then(|| format!("Fix flaky test #{i}")),
                created_at,
                last_updated_at: created_at,
                status: ConversationStatus::Running,
                agent_state: AgentState::Running,
                trigger_id: None,
                repository: Some("octo/app".into()),
                checkout: None,
                confirmation_mode: false,
                model: None,
                remote_agent: None,
            }
        })
        .collect()
}

pub async fn store_all(store: &dyn ConversationStore, conversations: &[Conversation]) {
    for conversation in conversations {
        store
            .create_conversation(conversation)
            .await
            .expect("store a conversation");
    }
}

/// The user Common Room should hold for `user`.
pub fn expected_user(user: &FakeUser) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "github": {"type": "handle", "value": user.github.clone().unwrap_or_else(|| user.username.clone())}
    })
}

/// The activity Common Room should hold for `conversation` of `user`.
pub fn expected_activity(conversation: &Conversation, user: &FakeUser) -> Value {
    let title = conversation.title.as_deref();
    json!({
        "id": format!("conversation_{}", conversation.id),
        "activityType": "started_session",
        "user": expected_user(user),
        "activityTitle": {"type": "text", "value": title.unwrap_or("New Conversation")},
        "content": {"type": "text", "value": format!("Started a new conversation: {}", title.unwrap_or("Untitled"))},
        "timestamp": conversation.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "url": format!("{PUBLIC_URL}/conversations/{}", conversation.id),
    })
}

/// The conversation store and the sync state on fresh DynamoDB tables of the moto server (the sync
/// state is an item of the proactive table, as in production).
pub async fn dynamo_stores() -> (ConversationTable, SyncStateItem) {
    let client = moto::dynamodb().await;
    let tables = moto::unique_tables(&client).await;
    (
        ConversationTable::new(client.clone(), tables.conversations),
        SyncStateItem::new(client, &tables.proactive, SYNC_NAME),
    )
}

/// What the rate benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchFigures {
    pub limit: f64,
    pub requests: usize,
    /// Requests per second from the first arrival to the last (work was queued all along).
    pub achieved: f64,
    /// The most requests the fake saw within any one second.
    pub max_in_any_second: usize,
    pub activities_stored: usize,
    pub conversations: usize,
    /// Each request's arrival, from the first one's (for the rate over time).
    pub arrivals: Vec<Duration>,
}

/// Syncs `count` conversations of `count / 4` users at `rate` requests/s against a fake with `faults`,
/// and measures the request rate the fake saw.
pub async fn rate_bench(count: usize, rate: f64, faults: Faults) -> BenchFigures {
    let world = SyncWorld::start(faults).await;
    let users: Vec<String> = world
        .add_users((count / 4).max(1))
        .into_iter()
        .map(|u| u.id)
        .collect();
    let db = EmbeddedDb::in_memory().expect("in-memory database");
    let store = EmbeddedConversationStore::open(db.clone())
        .await
        .expect("conversation store");
    let state = EmbeddedSyncState::open(db, SYNC_NAME)
        .await
        .expect("sync state");
    let all = conversations(&users, count, Utc::now() - chrono::Duration::minutes(5));
    store_all(&store, &all).await;
    let mut settings = test_settings(rate);
    settings.page_size = 100;
    settings.in_flight = 32;
    let deps = SyncDeps::new(&world.config(settings), Arc::new(store), Arc::new(state))
        .expect("sync dependencies");
    run_sync(&deps, SyncOptions::default())
        .await
        .expect("the benchmark run completes");

    let requests = world.common_room.requests();
    let (first, last) = (
        requests.first().map(|r| r.at).unwrap_or_default(),
        requests.last().map(|r| r.at).unwrap_or_default(),
    );
    let span = (last - first).as_secs_f64();
    BenchFigures {
        limit: rate,
        requests: requests.len(),
        achieved: if span > 0.0 {
            (requests.len() - 1) as f64 / span
        } else {
            0.0
        },
        max_in_any_second: world
            .common_room
            .max_requests_in_any(Duration::from_secs(1)),
        activities_stored: world.common_room.activities().len(),
        conversations: count,
        arrivals: requests
            .iter()
            .map(|r| r.at.saturating_sub(first))
            .collect(),
    }
}

/// A fresh directory under the system's temp dir.
pub fn scratch_dir(prefix: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{:08x}", rand::random::<u32>()))
}
