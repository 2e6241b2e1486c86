//! Liveness: a silent node, or one whose connection is gone, is reaped once, its rooms and the live
//! nodes told, its conversations on the hand-over list.

use std::time::Duration;

use shared::ports::coordination::{Incoming, LimitPolicy, NodeMessage, RoomMessage};

use super::{ClusterSpec, LONG_TTL, Member, PATIENCE, claimed, conversation, received, request};

pub async fn a_silent_node_is_reaped_once(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let mut nodes = make(ClusterSpec::of(3, LONG_TTL)).await;
    let silence = Duration::from_millis(400);
    let c = conversation("orphan");
    let (old, _) = claimed(
        &nodes[0],
        &request("orphan", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
    nodes[0].coordination.join(&c, "on-a").await.unwrap();
    nodes[1].coordination.join(&c, "on-b").await.unwrap();
    for member in &nodes {
        member.coordination.beat().await.unwrap();
    }
    // Node 0 falls silent; the others keep beating.
    for _ in 0..3 {
        tokio::time::sleep(silence / 2).await;
        nodes[1].coordination.beat().await.unwrap();
        nodes[2].coordination.beat().await.unwrap();
    }
    assert_eq!(
        nodes[2].coordination.reap(silence).await.unwrap(),
        std::slice::from_ref(&c)
    );
    assert!(
        nodes[1]
            .coordination
            .reap(silence)
            .await
            .unwrap()
            .is_empty(),
        "reaped once"
    );
    assert!(
        nodes[2]
            .coordination
            .reap(silence)
            .await
            .unwrap()
            .is_empty(),
        "reaped once"
    );
    // The node with a client is told; the lease is free long before its TTL.
    match received(&mut nodes[1]).await {
        Incoming::Room {
            conversation,
            message: RoomMessage::OwnerGone,
        } => assert_eq!(conversation, c),
        other => panic!("expected OwnerGone, got {other:?}"),
    }
    // Every live node is told of the hand-over list, which holds the conversation once.
    for node in &mut nodes[1..] {
        match received(node).await {
            Incoming::Node(NodeMessage::HandoversWaiting) => {}
            other => panic!("expected HandoversWaiting, got {other:?}"),
        }
    }
    assert_eq!(
        nodes[1].coordination.take_handed_over(10).await.unwrap(),
        std::slice::from_ref(&c)
    );
    assert!(
        nodes[2]
            .coordination
            .take_handed_over(10)
            .await
            .unwrap()
            .is_empty()
    );
    let (new, evicted) = claimed(
        &nodes[2],
        &request("orphan", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
    assert!(new.epoch > old.epoch && evicted.is_empty());
    // The dead node's client is forgotten; the living one's is not.
    nodes[1].coordination.leave(&c, "on-b").await.unwrap();
    assert!(!nodes[2].coordination.has_clients(&c).await.unwrap());
    // Its refresh, were it to come back, fails.
    assert_eq!(nodes[0].coordination.refresh(&[old]).await.unwrap(), [c]);
}

pub async fn a_departed_node_is_reaped_before_it_falls_silent(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let mut nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
    let claim = request("departed", "u", 3, LimitPolicy::EvictOldest);
    claimed(&nodes[0], &claim).await;
    for member in &nodes {
        member.coordination.beat().await.unwrap();
    }
    // The process ends: its connection goes with it, long before any silence would count.
    let survivor = nodes.pop().unwrap();
    drop(nodes);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let orphans = survivor.coordination.reap(LONG_TTL).await.unwrap();
        if !orphans.is_empty() {
            assert_eq!(orphans, [conversation("departed")]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the departed node was never reaped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    claimed(&survivor, &claim).await;
}
