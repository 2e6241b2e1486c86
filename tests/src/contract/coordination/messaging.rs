//! Messaging: directed messages reach their node, room messages the nodes that joined; presence.

use shared::ports::coordination::{
    Destination, Incoming, LimitPolicy, NodeMessage, OwnerReply, RoomMessage,
};

use super::{
    ClusterSpec, LONG_TTL, Member, claimed, conversation, nothing_received, received, request,
};

pub async fn directed_messages_reach_their_node(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let mut nodes = make(ClusterSpec::of(3, LONG_TTL)).await;
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

pub async fn room_messages_reach_the_nodes_that_joined(
    make: impl AsyncFn(ClusterSpec) -> Vec<Member>,
) {
    let mut nodes = make(ClusterSpec::of(3, LONG_TTL)).await;
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

pub async fn presence_counts_clients_on_every_node(make: impl AsyncFn(ClusterSpec) -> Vec<Member>) {
    let nodes = make(ClusterSpec::of(2, LONG_TTL)).await;
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
