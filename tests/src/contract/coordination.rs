//! The coordination contract: what every adapter of the `Coordination` port shows, for nodes of one
//! cluster (the in-process `LocalCluster` and the Redis adapter): leases with rising epochs and
//! TTLs, the per-user limit enforced atomically, the inbox, directed and room messages, presence.

use std::sync::Arc;
use std::time::Duration;

use shared::domain::{ConversationId, UserAction};
use shared::ports::Coordination;
use shared::ports::coordination::{
    ClaimOutcome, ClaimRequest, Destination, Incoming, Lease, LeaseEnd, LimitPolicy, NodeMessage,
    OwnerReply, RoomMessage,
};
use tokio::sync::mpsc;

/// Every case of this suite as a test of one adapter; `$make` is an async fn taking a [`ClusterSpec`]
/// and returning the [`Member`]s of a fresh cluster.
#[macro_export]
macro_rules! coordination_contract {
    ($make:path) => {
        $crate::coordination_contract!(@cases $make, [
            claims_raise_the_epoch_and_honour_the_minimum,
            a_live_lease_is_held_against_other_nodes,
            an_expired_lease_is_lost_by_its_holder_and_claimable,
            refresh_keeps_held_leases_alive,
            the_limit_evicts_the_users_oldest_and_counts_every_node,
            the_reject_policy_changes_nothing,
            concurrent_claims_have_one_winner,
            concurrent_claims_never_exceed_the_limit,
            a_stopped_release_frees_the_users_slot,
            a_handover_tells_the_other_nodes_with_clients,
            the_inbox_is_ordered_durable_and_trimmed,
            a_push_tells_the_owner,
            directed_messages_reach_their_node,
            room_messages_reach_the_nodes_that_joined,
            presence_counts_clients_on_every_node,
            a_silent_node_is_reaped_once,
            a_refresh_reasserts_a_lease_nobody_claimed_since,
            a_lapsed_lease_evicted_meanwhile_is_not_reasserted,
            a_retried_action_is_stored_once,
            a_departed_node_is_reaped_before_it_falls_silent,
        ]);
    };
    (@cases $make:path, [$($case:ident),+ $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::contract::coordination::$case(|spec| $make(spec)).await;
            }
        )+
    };
}

/// The cluster a case needs.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSpec {
    pub nodes: usize,
    pub lease_ttl: Duration,
}

/// One node of a cluster: its port and what it receives.
pub struct Member {
    pub coordination: Arc<dyn Coordination>,
    pub incoming: mpsc::Receiver<Incoming>,
}

/// How long a case waits for a message that must arrive.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a case waits to be sure a message does not arrive.
const SILENCE: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(30);

fn conversation(name: &str) -> ConversationId {
    ConversationId::parse(name).expect("a conversation id")
}

fn request(name: &str, user: &str, max_running: usize, policy: LimitPolicy) -> ClaimRequest {
    ClaimRequest {
        conversation: conversation(name),
        user_id: user.into(),
        max_running,
        policy,
        min_epoch: 1,
    }
}

async fn claimed(member: &Member, request: &ClaimRequest) -> (Lease, Vec<ConversationId>) {
    match member
        .coordination
        .claim(request)
        .await
        .expect("the backend answers")
    {
        ClaimOutcome::Claimed { lease, evicted } => (lease, evicted),
        other => panic!("expected a claim, got {other:?}"),
    }
}

async fn received(member: &mut Member) -> Incoming {
    tokio::time::timeout(PATIENCE, member.incoming.recv())
        .await
        .expect("a message within the patience")
        .expect("the node's channel is open")
}

async fn nothing_received(member: &mut Member) {
    if let Ok(message) = tokio::time::timeout(SILENCE, member.incoming.recv()).await {
        panic!("nothing expected, got {message:?}");
    }
}

pub async fn claims_raise_the_epoch_and_honour_the_minimum<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 1,
        lease_ttl: LONG_TTL,
    })
    .await;
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

pub async fn a_live_lease_is_held_against_other_nodes<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
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

pub async fn an_expired_lease_is_lost_by_its_holder_and_claimable<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let ttl = Duration::from_millis(400);
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: ttl,
    })
    .await;
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

pub async fn refresh_keeps_held_leases_alive<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let ttl = Duration::from_millis(600);
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: ttl,
    })
    .await;
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

pub async fn the_limit_evicts_the_users_oldest_and_counts_every_node<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
    let policy = LimitPolicy::EvictOldest;
    claimed(&nodes[0], &request("first", "alice", 2, policy)).await;
    claimed(&nodes[1], &request("second", "alice", 2, policy)).await;
    claimed(&nodes[1], &request("bobs", "bob", 2, policy)).await;
    let (_, evicted) = claimed(&nodes[0], &request("third", "alice", 2, policy)).await;
    assert_eq!(evicted, [conversation("first")]);
    // Re-claiming a running conversation (its loop restarting) is no new start: nothing is evicted.
    let (_, evicted) = claimed(&nodes[1], &request("second", "alice", 2, policy)).await;
    assert!(evicted.is_empty());
    let (_, evicted) = claimed(&nodes[1], &request("fourth", "alice", 2, policy)).await;
    assert_eq!(evicted, [conversation("second")]);
}

pub async fn the_reject_policy_changes_nothing<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 1,
        lease_ttl: LONG_TTL,
    })
    .await;
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

pub async fn concurrent_claims_have_one_winner<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 4,
        lease_ttl: LONG_TTL,
    })
    .await;
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

pub async fn concurrent_claims_never_exceed_the_limit<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 3,
        lease_ttl: LONG_TTL,
    })
    .await;
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

pub async fn a_stopped_release_frees_the_users_slot<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
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

pub async fn a_handover_tells_the_other_nodes_with_clients<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let mut nodes = make(ClusterSpec {
        nodes: 3,
        lease_ttl: LONG_TTL,
    })
    .await;
    let c = conversation("handed");
    let (lease, _) = claimed(
        &nodes[0],
        &request("handed", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
    nodes[0].coordination.join(&c, "on-a").await.unwrap();
    nodes[1].coordination.join(&c, "on-b").await.unwrap();
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
    nothing_received(&mut nodes[0]).await;
    nothing_received(&mut nodes[2]).await;
    // The lease is free at once, not after a TTL.
    claimed(
        &nodes[1],
        &request("handed", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
}

pub async fn the_inbox_is_ordered_durable_and_trimmed<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
    let c = conversation("inbox");
    let mut ids = Vec::new();
    for n in 0..5 {
        let pushed = nodes[n % 2]
            .coordination
            .push_action(&c, &UserAction::message(&format!("message {n}")), None)
            .await
            .unwrap();
        assert_eq!(pushed.owner, None, "nobody owns the conversation");
        ids.push(pushed.id);
    }
    let all = nodes[0]
        .coordination
        .read_inbox(&c, None, 10)
        .await
        .unwrap();
    let texts: Vec<_> = all
        .iter()
        .map(|entry| match &entry.action {
            UserAction::Message { content, .. } => content.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        texts,
        (0..5).map(|n| format!("message {n}")).collect::<Vec<_>>()
    );
    assert_eq!(all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), ids);
    let after = nodes[1]
        .coordination
        .read_inbox(&c, Some(&ids[1]), 2)
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        ids[2..4]
    );
    nodes[0].coordination.trim_inbox(&c, &ids[2]).await.unwrap();
    let left = nodes[1]
        .coordination
        .read_inbox(&c, None, 10)
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        ids[3..]
    );
    // Inboxes are per conversation.
    assert!(
        nodes[0]
            .coordination
            .read_inbox(&conversation("other"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_push_tells_the_owner<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let mut nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
    let c = conversation("owned");
    claimed(
        &nodes[0],
        &request("owned", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
    let pushed = nodes[1]
        .coordination
        .push_action(&c, &UserAction::message("hello"), None)
        .await
        .unwrap();
    assert_eq!(pushed.owner.as_ref(), Some(nodes[0].coordination.node_id()));
    assert_eq!(
        received(&mut nodes[0]).await,
        Incoming::Node(NodeMessage::InboxReady { conversation: c })
    );
    nothing_received(&mut nodes[1]).await;
}

pub async fn directed_messages_reach_their_node<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let mut nodes = make(ClusterSpec {
        nodes: 3,
        lease_ttl: LONG_TTL,
    })
    .await;
    let reply = NodeMessage::Reply {
        id: "q-1".into(),
        reply: OwnerReply::Completion {
            result: Ok("done".into()),
        },
    };
    let target = nodes[2].coordination.node_id().clone();
    let sent = nodes[0]
        .coordination
        .send(&Destination::Node(target.clone()), &reply)
        .await
        .unwrap();
    assert_eq!(sent, Some(target));
    assert_eq!(received(&mut nodes[2]).await, Incoming::Node(reply.clone()));
    nothing_received(&mut nodes[1]).await;

    let c = conversation("directed");
    let nobody = nodes[0]
        .coordination
        .send(&Destination::OwnerOf(c.clone()), &reply)
        .await
        .unwrap();
    assert_eq!(nobody, None, "a conversation without an owner");
    claimed(
        &nodes[1],
        &request("directed", "u", 3, LimitPolicy::EvictOldest),
    )
    .await;
    let sent = nodes[0]
        .coordination
        .send(&Destination::OwnerOf(c), &reply)
        .await
        .unwrap();
    assert_eq!(sent.as_ref(), Some(nodes[1].coordination.node_id()));
    assert_eq!(received(&mut nodes[1]).await, Incoming::Node(reply));
}

pub async fn room_messages_reach_the_nodes_that_joined<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let mut nodes = make(ClusterSpec {
        nodes: 3,
        lease_ttl: LONG_TTL,
    })
    .await;
    let c = conversation("room");
    nodes[0].coordination.join(&c, "client-1").await.unwrap();
    nodes[1].coordination.join(&c, "client-2").await.unwrap();
    nodes[1].coordination.join(&c, "client-3").await.unwrap();
    let message = RoomMessage::OwnerGone;
    nodes[2].coordination.broadcast(&c, &message).await.unwrap();
    for member in &mut nodes[..2] {
        assert_eq!(
            received(member).await,
            Incoming::Room {
                conversation: c.clone(),
                message: message.clone()
            },
            "once per node, however many clients it has"
        );
    }
    nothing_received(&mut nodes[1]).await;
    nothing_received(&mut nodes[2]).await;

    nodes[0].coordination.leave(&c, "client-1").await.unwrap();
    nodes[1].coordination.leave(&c, "client-2").await.unwrap();
    nodes[2].coordination.broadcast(&c, &message).await.unwrap();
    assert!(matches!(
        received(&mut nodes[1]).await,
        Incoming::Room { .. }
    ));
    nothing_received(&mut nodes[0]).await;
}

pub async fn presence_counts_clients_on_every_node<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
    let c = conversation("present");
    assert!(!nodes[0].coordination.has_clients(&c).await.unwrap());
    nodes[1].coordination.join(&c, "client").await.unwrap();
    assert!(nodes[0].coordination.has_clients(&c).await.unwrap());
    nodes[1].coordination.leave(&c, "client").await.unwrap();
    assert!(!nodes[0].coordination.has_clients(&c).await.unwrap());
    assert!(
        !nodes[1]
            .coordination
            .has_clients(&conversation("absent"))
            .await
            .unwrap()
    );
    nodes[0]
        .coordination
        .check()
        .await
        .expect("the backend is reachable");
}

pub async fn a_silent_node_is_reaped_once<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let mut nodes = make(ClusterSpec {
        nodes: 3,
        lease_ttl: LONG_TTL,
    })
    .await;
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

pub async fn a_refresh_reasserts_a_lease_nobody_claimed_since<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let ttl = Duration::from_millis(300);
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: ttl,
    })
    .await;
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

pub async fn a_lapsed_lease_evicted_meanwhile_is_not_reasserted<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let ttl = Duration::from_millis(300);
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: ttl,
    })
    .await;
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

pub async fn a_retried_action_is_stored_once<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
    let c = conversation("retried");
    let action = UserAction::message("once");
    let first = nodes[0]
        .coordination
        .push_action(&c, &action, Some("client-1"))
        .await
        .unwrap();
    // The client's retry, through another node: the same entry.
    let retry = nodes[1]
        .coordination
        .push_action(&c, &action, Some("client-1"))
        .await
        .unwrap();
    assert_eq!(retry.id, first.id);
    // Another action id, or none, is another action; ids are per conversation.
    nodes[1]
        .coordination
        .push_action(&c, &action, Some("client-2"))
        .await
        .unwrap();
    for _ in 0..2 {
        nodes[0]
            .coordination
            .push_action(&c, &action, None)
            .await
            .unwrap();
    }
    nodes[0]
        .coordination
        .push_action(&conversation("elsewhere"), &action, Some("client-1"))
        .await
        .unwrap();
    let stored = nodes[0]
        .coordination
        .read_inbox(&c, None, 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0].id, first.id);
}

pub async fn a_departed_node_is_reaped_before_it_falls_silent<F, Fut>(make: F)
where
    F: Fn(ClusterSpec) -> Fut,
    Fut: Future<Output = Vec<Member>>,
{
    let mut nodes = make(ClusterSpec {
        nodes: 2,
        lease_ttl: LONG_TTL,
    })
    .await;
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
