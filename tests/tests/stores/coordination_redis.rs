//! The coordination contract against the Redis adapter (`TEST_REDIS_URL`), each cluster under its own
//! key prefix; and what only Redis can do, lose its data (a private server restarted empty).

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::contract::coordination::{ClusterSpec, Member};
use e2e::redis::PrivateRedis;
use shared::adapters::redis::{RedisCoordination, RedisSettings};
use shared::domain::{ConversationId, NodeId};
use shared::ports::coordination::{
    ClaimOutcome, ClaimRequest, Leases, LimitPolicy, Liveness, Messaging,
};

async fn redis_cluster(spec: ClusterSpec) -> Vec<Member> {
    let settings = RedisSettings::new(
        &e2e::redis::url(),
        &e2e::redis::unique_prefix(),
        spec.lease_ttl,
    );
    let mut members = Vec::new();
    for n in 0..spec.nodes {
        let (node, incoming) =
            RedisCoordination::connect(&settings, NodeId::new(&format!("node-{n}")))
                .await
                .expect("Redis is reachable");
        members.push(Member {
            coordination: Arc::new(node),
            incoming,
        });
    }
    members
}

e2e::coordination_contract!(redis_cluster);

/// Redis restarted empty forgets the users' running sets with the leases: the owners' next refresh
/// re-asserts both, so that the per-user limit holds at once, not only once conversations are claimed
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_after_an_empty_restart_restores_the_running_sets() {
    let mut redis = PrivateRedis::start();
    let settings = RedisSettings::new(
        &redis.url(),
        &e2e::redis::unique_prefix(),
        Duration::from_secs(30),
    );
    let connect = |name: &str| RedisCoordination::connect(&settings, NodeId::new(name));
    let (owner, _owner_incoming) = connect("owner").await.expect("Redis is reachable");
    let (other, _other_incoming) = connect("other").await.expect("Redis is reachable");
    let claim = |name: &str, policy| ClaimRequest {
        conversation: ConversationId::parse(name).unwrap(),
        user_id: e2e::user_id("alice"),
        max_running: 1,
        policy,
        min_epoch: 1,
    };
    let ClaimOutcome::Claimed { lease, .. } = owner
        .claim(&claim("running", LimitPolicy::Reject))
        .await
        .unwrap()
    else {
        panic!("the first claim is granted");
    };

    redis.kill();
    redis.start_empty();
    // Both reconnect, then the owner's refresh (as its next heartbeat would) re-asserts the lease.
    let deadline = Instant::now() + e2e::socketio::PATIENCE;
    while owner.check().await.is_err() || other.check().await.is_err() {
        assert!(Instant::now() < deadline, "the nodes never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lost = owner.refresh(std::slice::from_ref(&lease)).await.unwrap();
    assert!(lost.is_empty(), "nobody claimed it since: {lost:?}");

    // Alice is at her limit again, exactly as before the restart: refused, or her oldest evicted.
    let refused = other
        .claim(&claim("another", LimitPolicy::Reject))
        .await
        .unwrap();
    assert_eq!(refused, ClaimOutcome::LimitReached);
    let evicting = other
        .claim(&claim("another", LimitPolicy::EvictOldest))
        .await
        .unwrap();
    assert!(
        matches!(&evicting, ClaimOutcome::Claimed { evicted, .. } if *evicted == [lease.conversation.clone()]),
        "{evicting:?}"
    );
}

/// A node reaped while alive (a pause longer than the silence) finds out at its next beat and announces
/// its clients again; its lease, claimed by nobody since, is re-asserted by its refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaped_while_alive_rejoins_at_its_next_beat() {
    let settings = RedisSettings::new(
        &e2e::redis::url(),
        &e2e::redis::unique_prefix(),
        Duration::from_secs(30),
    );
    let connect = |name: &str| RedisCoordination::connect(&settings, NodeId::new(name));
    let (paused, _paused_incoming) = connect("paused").await.expect("Redis is reachable");
    let (reaper, _reaper_incoming) = connect("reaper").await.expect("Redis is reachable");
    let conversation = ConversationId::parse("watched").unwrap();
    let ClaimOutcome::Claimed { lease, .. } = paused
        .claim(&ClaimRequest {
            conversation: conversation.clone(),
            user_id: e2e::user_id("alice"),
            max_running: 3,
            policy: LimitPolicy::EvictOldest,
            min_epoch: 1,
        })
        .await
        .unwrap()
    else {
        panic!("the claim is granted");
    };
    paused.join(&conversation, "a-client").await.unwrap();
    paused.beat().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let orphans = reaper.reap(Duration::from_millis(10)).await.unwrap();
    assert_eq!(
        orphans,
        std::slice::from_ref(&conversation),
        "reaped as silent"
    );
    assert!(!reaper.has_clients(&conversation).await.unwrap());

    paused.beat().await.unwrap();
    assert!(
        reaper.has_clients(&conversation).await.unwrap(),
        "its clients are announced again"
    );
    let lost = paused.refresh(std::slice::from_ref(&lease)).await.unwrap();
    assert!(lost.is_empty(), "nobody claimed it since: {lost:?}");
}
