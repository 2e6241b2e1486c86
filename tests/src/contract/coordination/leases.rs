//! Leases: rising epochs, TTLs, the per-user limit enforced atomically, release and re-assertion.

use std::sync::Arc;
use std::time::Duration;

use shared::domain::UserAction;
use shared::ports::coordination::{
    ClaimOutcome, ClaimRequest, Incoming, Lease, LeaseEnd, LimitPolicy, NodeMessage, RoomMessage,
};

use super::{
    ClusterSpec, LONG_TTL, Member, claimed, conversation, nothing_received, received, request,
};

pub async fn claims_raise_the_epoch_and_honour_the_minimum(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let nodes = make(ClusterSpec::of(1, LONG_TTL)).await;
    let a = &nodes[0];
    let first = request("epochs", "u", 3, LimitPolicy::EvictOldest);
    let (lease, _) = claimed(a, &first).await;
    assert_eq!(lease.owner, *a.coordination.node_id());
    assert_eq!(lease.conversation, conversation("epochs"));
    // A node re-claiming its own conversation gets a higher epoch (a restarted loop).
    let (again, _) = claimed(a, &first).await;
    assert!(again.epoch > lease.epoch);
    let (raised, _) = claimed(
        a,
        &ClaimRequest {
            min_epoch: again.epoch + 10,
            ..first.clone()
        },
    )
    .await;
    assert_eq!(raised.epoch, again.epoch + 10);
    let (next, _) = claimed(a, &first).await;
    assert!(next.epoch > raised.epoch, "epochs never fall back");
}

pub async fn a_live_lease_is_held_against_other_nodes(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
    let claim = request("held", "u", 3, LimitPolicy::EvictOldest);
    claimed(&nodes[0], &claim).await;
    let outcome = nodes[1].coordination.claim(&claim).await.unwrap();
    assert_eq!(
        outcome,
        ClaimOutcome::Held {
            owner: nodes[0].coordination.node_id().clone()
        }
    );
}

pub async fn an_expired_lease_is_lost_by_its_holder_and_claimable(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let ttl = Duration::from_millis(400);
    let nodes = make(ClusterSpec::of(2, ttl)).await;
    let claim = request("expiring", "u", 3, LimitPolicy::EvictOldest);
    let (old, _) = claimed(&nodes[0], &claim).await;
    tokio::time::sleep(ttl * 2).await;
    let (new, _) = claimed(&nodes[1], &claim).await;
    assert!(new.epoch > old.epoch);
    let lost = nodes[0]
        .coordination
        .refresh(std::slice::from_ref(&old))
        .await
        .unwrap();
    assert_eq!(lost, [conversation("expiring")]);
    // The old holder's release does not touch the new lease.
    nodes[0]
        .coordination
        .release(&old, LeaseEnd::Stopped)
        .await
        .unwrap();
    assert!(
        nodes[1]
            .coordination
            .refresh(&[new])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn refresh_keeps_held_leases_alive(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let ttl = Duration::from_millis(600);
    let nodes = make(ClusterSpec::of(2, ttl)).await;
    let claim = request("refreshed", "u", 3, LimitPolicy::EvictOldest);
    let (lease, _) = claimed(&nodes[0], &claim).await;
    for _ in 0..4 {
        tokio::time::sleep(ttl / 3).await;
        let lost = nodes[0]
            .coordination
            .refresh(std::slice::from_ref(&lease))
            .await
            .unwrap();
        assert!(lost.is_empty());
    }
    // Well past one TTL since the claim, the lease is still held.
    assert!(matches!(
        nodes[1].coordination.claim(&claim).await.unwrap(),
        ClaimOutcome::Held { .. }
    ));
    // A refresh naming a stale epoch reports it lost.
    let stale = Lease {
        epoch: lease.epoch - 1,
        ..lease
    };
    assert_eq!(
        nodes[0].coordination.refresh(&[stale]).await.unwrap().len(),
        1
    );
}

pub async fn the_limit_evicts_the_users_least_recently_active_and_counts_every_node(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
    let policy = LimitPolicy::EvictOldest;
    claimed(&nodes[0], &request("first", "alice", 2, policy)).await;
    let (second, _) = claimed(&nodes[1], &request("second", "alice", 2, policy)).await;
    claimed(&nodes[1], &request("bobs", "bob", 2, policy)).await;
    // The user acts in the first: the second is now the least recently active.
    nodes[1]
        .coordination
        .push_action(&conversation("first"), &UserAction::message("typing"), None)
        .await
        .unwrap();
    let (_, evicted) = claimed(&nodes[0], &request("third", "alice", 2, policy)).await;
    assert_eq!(evicted, [conversation("second")]);
    // Re-claiming a running conversation (its loop restarting) is no new start: nothing is evicted.
    let (_, evicted) = claimed(&nodes[0], &request("third", "alice", 2, policy)).await;
    assert!(evicted.is_empty());
    // The victim, not stopped yet, is not chosen again: the next start evicts the next one.
    let (_, evicted) = claimed(&nodes[1], &request("fourth", "alice", 2, policy)).await;
    assert_eq!(evicted, [conversation("first")]);
    // Counted until it stopped: its owner can still refresh its lease; then it leaves.
    assert!(
        nodes[1]
            .coordination
            .refresh(std::slice::from_ref(&second))
            .await
            .unwrap()
            .is_empty()
    );
    nodes[1]
        .coordination
        .release(&second, LeaseEnd::Stopped)
        .await
        .unwrap();
}

pub async fn the_reject_policy_changes_nothing(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let nodes = make(ClusterSpec::of(1, LONG_TTL)).await;
    let a = &nodes[0];
    claimed(a, &request("one", "alice", 1, LimitPolicy::Reject)).await;
    let refused = a
        .coordination
        .claim(&request("two", "alice", 1, LimitPolicy::Reject))
        .await
        .unwrap();
    assert_eq!(refused, ClaimOutcome::LimitReached);
    // Nothing was claimed: another node may claim "two" once there is room.
    let (one, _) = claimed(a, &request("one", "alice", 1, LimitPolicy::Reject)).await;
    a.coordination
        .release(&one, LeaseEnd::Stopped)
        .await
        .unwrap();
    claimed(a, &request("two", "alice", 1, LimitPolicy::Reject)).await;
}

pub async fn concurrent_claims_have_one_winner(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let nodes = make(ClusterSpec::of(4, LONG_TTL)).await;
    let claims = nodes.iter().map(|member| {
        let coordination = Arc::clone(&member.coordination);
        tokio::spawn(async move {
            coordination
                .claim(&request("contended", "u", 3, LimitPolicy::EvictOldest))
                .await
        })
    });
    let mut winners = 0;
    for claim in claims {
        if let ClaimOutcome::Claimed { .. } = claim.await.unwrap().unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

pub async fn concurrent_claims_never_exceed_the_limit(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let nodes = make(ClusterSpec::of(3, LONG_TTL)).await;
    let claims = (0..12).map(|n| {
        let coordination = Arc::clone(&nodes[n % nodes.len()].coordination);
        tokio::spawn(async move {
            let name = format!("parallel-{n}");
            coordination
                .claim(&request(&name, "alice", 3, LimitPolicy::Reject))
                .await
        })
    });
    let mut granted = 0;
    for claim in claims {
        match claim.await.unwrap().unwrap() {
            ClaimOutcome::Claimed { evicted, .. } => {
                assert!(evicted.is_empty());
                granted += 1;
            }
            ClaimOutcome::LimitReached => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        granted, 3,
        "exactly the limit, however the claims interleave"
    );
}

pub async fn a_stopped_release_frees_the_users_slot(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
    let (lease, _) = claimed(&nodes[0], &request("done", "alice", 1, LimitPolicy::Reject)).await;
    nodes[0]
        .coordination
        .release(&lease, LeaseEnd::Stopped)
        .await
        .unwrap();
    claimed(&nodes[1], &request("next", "alice", 1, LimitPolicy::Reject)).await;
    // A handed-over conversation keeps its slot.
    let (next, _) = claimed(&nodes[1], &request("next", "alice", 1, LimitPolicy::Reject)).await;
    nodes[1]
        .coordination
        .release(&next, LeaseEnd::HandedOver)
        .await
        .unwrap();
    let refused = nodes[0]
        .coordination
        .claim(&request("another", "alice", 1, LimitPolicy::Reject))
        .await
        .unwrap();
    assert_eq!(refused, ClaimOutcome::LimitReached);
    claimed(&nodes[0], &request("next", "alice", 1, LimitPolicy::Reject)).await;
}

pub async fn a_handover_tells_the_other_nodes_and_lists_it(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let mut nodes = make(ClusterSpec::of(3, LONG_TTL)).await;
    let c = conversation("handed");
    let (lease, _) = claimed(
        &nodes[0],
        &request("handed", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
    nodes[0].coordination.join(&c, "on-a").await.unwrap();
    nodes[1].coordination.join(&c, "on-b").await.unwrap();
    // Live nodes, as each beats.
    for member in &nodes {
        member.coordination.beat().await.unwrap();
    }
    nodes[0]
        .coordination
        .release(&lease, LeaseEnd::HandedOver)
        .await
        .unwrap();
    match received(&mut nodes[1]).await {
        Incoming::Room {
            conversation,
            message: RoomMessage::OwnerGone,
        } => assert_eq!(conversation, c),
        other => panic!("expected OwnerGone, got {other:?}"),
    }
    // Every other node, with clients or not, hears of the hand-over list.
    for node in &mut nodes[1..] {
        match received(node).await {
            Incoming::Node(NodeMessage::HandoversWaiting) => {}
            other => panic!("expected HandoversWaiting, got {other:?}"),
        }
    }
    nothing_received(&mut nodes[0]).await;
    // One node takes it from the list, once.
    assert_eq!(
        nodes[2].coordination.take_handed_over(10).await.unwrap(),
        std::slice::from_ref(&c)
    );
    assert!(
        nodes[1]
            .coordination
            .take_handed_over(10)
            .await
            .unwrap()
            .is_empty()
    );
    // The lease is free at once, not after a TTL.
    claimed(
        &nodes[2],
        &request("handed", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
}

pub async fn a_refresh_reasserts_a_lease_nobody_claimed_since(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let ttl = Duration::from_millis(300);
    let nodes = make(ClusterSpec::of(2, ttl)).await;
    let claim = request("late", "u", 3, LimitPolicy::EvictOldest);
    let (lease, _) = claimed(&nodes[0], &claim).await;
    tokio::time::sleep(ttl * 2).await;
    // Expired, but nobody was granted a later epoch: the late refresh holds it again.
    assert!(
        nodes[0]
            .coordination
            .refresh(std::slice::from_ref(&lease))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        nodes[1].coordination.claim(&claim).await.unwrap(),
        ClaimOutcome::Held { .. }
    ));
}

pub async fn a_lapsed_lease_evicted_meanwhile_is_not_reasserted(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let ttl = Duration::from_millis(300);
    let nodes = make(ClusterSpec::of(2, ttl)).await;
    let policy = LimitPolicy::EvictOldest;
    let (lapsed, _) = claimed(&nodes[0], &request("lapsed", "alice", 1, policy)).await;
    tokio::time::sleep(ttl * 2).await;
    let (_, evicted) = claimed(&nodes[1], &request("newer", "alice", 1, policy)).await;
    assert_eq!(evicted, [conversation("lapsed")]);
    // Nobody claimed "lapsed" since, but it no longer counts in alice's running set: its late
    // refresh loses it rather than running alice over the limit.
    assert_eq!(
        nodes[0].coordination.refresh(&[lapsed]).await.unwrap(),
        [conversation("lapsed")]
    );
    let refused = nodes[0]
        .coordination
        .claim(&request("third", "alice", 1, LimitPolicy::Reject))
        .await
        .unwrap();
    assert_eq!(refused, ClaimOutcome::LimitReached);
}
