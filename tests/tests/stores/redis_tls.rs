//! The Redis adapters over TLS with an AUTH token (`rediss://`, `REDIS_AUTH_TOKEN`, `REDIS_TLS_CA_FILE`),
//! against a TLS-only Redis with a password of the tests' own (`e2e::redis_tls`): the whole coordination
//! contract and the cleanup's janitor work; a wrong or missing token, and a client that does not trust
//! the server's CA, are refused with an error that says why.

use std::sync::Arc;
use std::time::Duration;

use e2e::contract::coordination::{ClusterSpec, Member};
use e2e::redis::unique_prefix;
use e2e::redis_tls::TlsRedis;
use shared::adapters::redis::{RedisAccess, RedisCoordination, RedisJanitor, RedisSettings};
use shared::domain::{ConversationId, NodeId};
use shared::ports::ClusterJanitor;
use shared::ports::coordination::{
    ClaimOutcome, ClaimRequest, CoordinationError, Leases, LimitPolicy, Liveness,
};
use shared::secret::Secret;

async fn tls_cluster(spec: ClusterSpec) -> Vec<Member> {
    let redis = TlsRedis::shared();
    let mut settings = RedisSettings::new(&redis.url(), &unique_prefix(), spec.lease_ttl);
    settings.access = redis.access();
    let mut members = Vec::new();
    for n in 0..spec.nodes {
        let (node, incoming) =
            RedisCoordination::connect(&settings, NodeId::new(&format!("node-{n}")))
                .await
                .expect("the TLS Redis accepts the token");
        members.push(Member {
            coordination: Arc::new(node),
            incoming,
        });
    }
    members
}

e2e::coordination_contract!(tls_cluster);

async fn connect_with(redis: &TlsRedis, access: RedisAccess) -> CoordinationError {
    let mut settings = RedisSettings::new(&redis.url(), &unique_prefix(), Duration::from_secs(30));
    settings.access = access;
    match RedisCoordination::connect(&settings, NodeId::new("refused")).await {
        Ok(_) => panic!("connected with {:?}", settings.access),
        Err(error) => error,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_is_refused_and_never_printed() {
    let redis = TlsRedis::start();
    let wrong = connect_with(
        &redis,
        RedisAccess {
            auth_token: Some(Secret::new("not-the-token")),
            ..redis.access()
        },
    )
    .await;
    let message = wrong.to_string();
    assert!(
        message.contains("WRONGPASS") || message.contains("uthentication"),
        "{message}"
    );
    assert!(!message.contains("not-the-token"), "{message}");

    let missing = connect_with(
        &redis,
        RedisAccess {
            auth_token: None,
            ..redis.access()
        },
    )
    .await
    .to_string();
    assert!(
        missing.contains("NOAUTH") || missing.contains("uthentication"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_trust_the_servers_ca_is_refused() {
    let redis = TlsRedis::start();
    // The default trust (the webpki roots) has no test CA.
    let untrusted = connect_with(
        &redis,
        RedisAccess {
            ca_file: None,
            ..redis.access()
        },
    )
    .await
    .to_string();
    assert!(untrusted.contains("certificate"), "{untrusted}");

    // A plain-TCP client of a TLS-only port gets no Redis answer at all.
    let mut plain = RedisSettings::new(
        &redis.url().replace("rediss://", "redis://"),
        &unique_prefix(),
        Duration::from_secs(30),
    );
    plain.access = redis.access();
    assert!(
        RedisCoordination::connect(&plain, NodeId::new("plain"))
            .await
            .is_err()
    );

    // A CA file that holds no certificate is a configuration error naming the variable.
    let not_pem = tempfile::NamedTempFile::new().expect("a temp file");
    let misconfigured = connect_with(
        &redis,
        RedisAccess {
            ca_file: Some(not_pem.path().to_path_buf()),
            ..redis.access()
        },
    )
    .await;
    assert!(
        matches!(&misconfigured, CoordinationError::Misconfigured(m) if m.contains("REDIS_TLS_CA_FILE")),
        "{misconfigured}"
    );
}

/// The cleanup's janitor reaches the same TLS Redis: it sees the lease a node holds over TLS, and
/// reaps the node once it is silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_janitor_works_over_tls_with_the_token() {
    let redis = TlsRedis::start();
    let prefix = unique_prefix();
    let mut settings = RedisSettings::new(&redis.url(), &prefix, Duration::from_secs(30));
    settings.access = redis.access();
    let (node, _incoming) = RedisCoordination::connect(&settings, NodeId::new("owner"))
        .await
        .expect("the TLS Redis accepts the token");
    let conversation = ConversationId::parse("over-tls").unwrap();
    let claimed = node
        .claim(&ClaimRequest {
            conversation: conversation.clone(),
            user_id: e2e::user_id("alice"),
            max_running: 3,
            policy: LimitPolicy::Reject,
            min_epoch: 1,
        })
        .await
        .unwrap();
    assert!(
        matches!(claimed, ClaimOutcome::Claimed { .. }),
        "{claimed:?}"
    );
    node.beat().await.unwrap();

    let janitor = RedisJanitor::new(&redis.url(), &prefix).with_access(redis.access());
    let live = janitor
        .live_runs(std::slice::from_ref(&conversation), Duration::from_secs(60))
        .await
        .expect("the janitor connects over TLS");
    assert!(live.contains(&conversation), "{live:?}");
    let reaped = janitor
        .reap_silent_nodes(Duration::ZERO, true)
        .await
        .unwrap();
    assert_eq!(reaped.nodes, 1, "{reaped:?}");

    let refused = RedisJanitor::new(&redis.url(), &prefix)
        .live_runs(std::slice::from_ref(&conversation), Duration::from_secs(60))
        .await;
    assert!(refused.is_err(), "no token, no CA: {refused:?}");
}
