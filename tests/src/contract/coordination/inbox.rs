//! The inbox: ordered, durable, trimmed, a client's retry stored once, the owner told.

use shared::domain::UserAction;
use shared::ports::coordination::{Incoming, LimitPolicy, NodeMessage};

use super::{
    ClusterSpec, LONG_TTL, Member, claimed, conversation, nothing_received, received, request,
};

pub async fn the_inbox_is_ordered_durable_and_trimmed(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
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

pub async fn a_push_tells_the_owner(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let mut nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
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

pub async fn a_retried_action_is_stored_once(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
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
