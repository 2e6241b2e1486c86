//! The event store contract: gap-free ids, paging, the owner-epoch fence, the inbox cursor, isolation
//! between conversations, and one winner among concurrent appenders. Each case takes an empty store.

use std::sync::Arc;

use shared::domain::{AgentState, ConversationEvent, ConversationId, EventSource, InboxId};
use shared::ports::EventStore;
use shared::ports::event_store::{AppendOutcome, EventBatch, EventHead, FenceOutcome};

/// Every case of this suite as a test of one adapter; `$make` is an async fn returning a fresh,
/// empty `Arc<dyn EventStore>`.
#[macro_export]
macro_rules! event_store_contract {
    ($make:path) => {
        $crate::contract_tests!(
            event_store,
            $make,
            [
                a_new_conversation_has_a_zero_head_and_no_events,
                appended_events_read_back_in_pages,
                an_append_at_the_wrong_id_writes_nothing,
                a_fence_shuts_out_lower_epochs,
                a_fence_keeps_the_head_and_is_idempotent_for_its_epoch,
                the_inbox_cursor_moves_with_the_append_that_consumes_it,
                conversations_are_isolated,
                concurrent_appenders_of_one_id_have_one_winner,
            ]
        );
    };
}

type Store = Arc<dyn EventStore>;

fn conversation(name: &str) -> ConversationId {
    ConversationId::parse(name).expect("a conversation id")
}

fn message(id: u64, text: &str) -> ConversationEvent {
    ConversationEvent::message(id, EventSource::User, text)
}

/// Events `first..first + count`, alternating messages and state changes.
fn batch(first: u64, count: u64) -> EventBatch {
    let events = (first..first + count)
        .map(|id| {
            if id % 2 == 0 {
                message(id, &format!("message {id}"))
            } else {
                ConversationEvent::agent_state_changed(id, AgentState::Running, "")
            }
        })
        .collect();
    EventBatch::new(events).expect("a valid batch")
}

async fn append(
    store: &Store,
    c: &ConversationId,
    epoch: u64,
    events: &EventBatch,
) -> AppendOutcome {
    store
        .append(c, epoch, events, None)
        .await
        .expect("the store answers")
}

async fn all_ids(store: &Store, c: &ConversationId) -> Vec<u64> {
    let page = store.page(c, 0, 1000).await.expect("the store answers");
    assert!(!page.has_more);
    page.events.iter().map(|event| event.id).collect()
}

pub async fn a_new_conversation_has_a_zero_head_and_no_events(store: Store) {
    let c = conversation("fresh");
    assert_eq!(store.head(&c).await.unwrap(), EventHead::default());
    let page = store.page(&c, 0, 10).await.unwrap();
    assert!(page.events.is_empty());
    assert!(!page.has_more);
}

pub async fn appended_events_read_back_in_pages(store: Store) {
    let c = conversation("paged");
    assert_eq!(
        append(&store, &c, 1, &batch(0, 3)).await,
        AppendOutcome::Appended
    );
    assert_eq!(
        append(&store, &c, 1, &batch(3, 4)).await,
        AppendOutcome::Appended
    );
    let written = batch(0, 7).into_events();

    let first = store.page(&c, 0, 5).await.unwrap();
    assert_eq!(first.events.len(), 5);
    assert!(first.has_more);
    for (read, expected) in first.events.iter().zip(&written) {
        assert_eq!(read.id, expected.id);
        assert_eq!(read.body, expected.body);
        assert_eq!(read.source, expected.source);
        assert_eq!(read.message, expected.message);
    }
    let rest = store.page(&c, 5, 5).await.unwrap();
    assert_eq!(rest.events.iter().map(|e| e.id).collect::<Vec<_>>(), [5, 6]);
    assert!(!rest.has_more);
    let exact = store.page(&c, 2, 5).await.unwrap();
    assert_eq!(
        exact.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        [2, 3, 4, 5, 6]
    );
    assert!(
        !exact.has_more,
        "a page ending on the last event has nothing more"
    );
    assert!(store.page(&c, 7, 5).await.unwrap().events.is_empty());

    let head = store.head(&c).await.unwrap();
    assert_eq!((head.next_id, head.epoch), (7, 1));
}

pub async fn an_append_at_the_wrong_id_writes_nothing(store: Store) {
    let c = conversation("conflict");
    assert_eq!(
        append(&store, &c, 1, &batch(0, 2)).await,
        AppendOutcome::Appended
    );
    // Behind the head (a stale view) and ahead of it (a gap) are both refused.
    assert_eq!(
        append(&store, &c, 1, &batch(1, 2)).await,
        AppendOutcome::IdConflict { next_id: 2 }
    );
    assert_eq!(
        append(&store, &c, 1, &batch(3, 1)).await,
        AppendOutcome::IdConflict { next_id: 2 }
    );
    assert_eq!(all_ids(&store, &c).await, [0, 1]);
    assert_eq!(store.head(&c).await.unwrap().next_id, 2);
}

pub async fn a_fence_shuts_out_lower_epochs(store: Store) {
    let c = conversation("fenced");
    assert_eq!(
        append(&store, &c, 1, &batch(0, 2)).await,
        AppendOutcome::Appended
    );
    // A new owner fences with its epoch before its first append.
    let fenced = store.fence(&c, 2).await.unwrap();
    assert_eq!(
        fenced,
        FenceOutcome::Fenced(EventHead {
            next_id: 2,
            epoch: 2,
            inbox_cursor: None
        })
    );
    // The old owner, at the right next id, is shut out.
    assert_eq!(
        append(&store, &c, 1, &batch(2, 1)).await,
        AppendOutcome::Fenced { epoch: 2 }
    );
    assert_eq!(
        store.fence(&c, 1).await.unwrap(),
        FenceOutcome::Superseded { epoch: 2 }
    );
    assert_eq!(all_ids(&store, &c).await, [0, 1]);
    // The new owner appends; an append with a higher epoch raises the fence by itself.
    assert_eq!(
        append(&store, &c, 2, &batch(2, 1)).await,
        AppendOutcome::Appended
    );
    assert_eq!(
        append(&store, &c, 5, &batch(3, 1)).await,
        AppendOutcome::Appended
    );
    assert_eq!(
        append(&store, &c, 2, &batch(4, 1)).await,
        AppendOutcome::Fenced { epoch: 5 }
    );
    assert_eq!(store.head(&c).await.unwrap().epoch, 5);
}

pub async fn a_fence_keeps_the_head_and_is_idempotent_for_its_epoch(store: Store) {
    let c = conversation("refenced");
    // Fencing a conversation without events creates its head at id 0.
    let first = store.fence(&c, 3).await.unwrap();
    assert_eq!(
        first,
        FenceOutcome::Fenced(EventHead {
            next_id: 0,
            epoch: 3,
            inbox_cursor: None
        })
    );
    assert_eq!(store.fence(&c, 3).await.unwrap(), first);
    assert_eq!(
        append(&store, &c, 3, &batch(0, 1)).await,
        AppendOutcome::Appended
    );
    assert_eq!(
        append(&store, &c, 2, &batch(1, 1)).await,
        AppendOutcome::Fenced { epoch: 3 }
    );
}

pub async fn the_inbox_cursor_moves_with_the_append_that_consumes_it(store: Store) {
    let c = conversation("inbox");
    let consumed = InboxId("1700000000000-0".into());
    let outcome = store
        .append(&c, 1, &batch(0, 2), Some(&consumed))
        .await
        .unwrap();
    assert_eq!(outcome, AppendOutcome::Appended);
    assert_eq!(
        store.head(&c).await.unwrap().inbox_cursor,
        Some(consumed.clone())
    );
    // An append that consumes nothing keeps the cursor.
    assert_eq!(
        append(&store, &c, 1, &batch(2, 1)).await,
        AppendOutcome::Appended
    );
    assert_eq!(
        store.head(&c).await.unwrap().inbox_cursor,
        Some(consumed.clone())
    );
    // A refused append does not move it.
    let later = InboxId("1700000000001-0".into());
    let refused = store
        .append(&c, 1, &batch(9, 1), Some(&later))
        .await
        .unwrap();
    assert_eq!(refused, AppendOutcome::IdConflict { next_id: 3 });
    assert_eq!(
        store.head(&c).await.unwrap().inbox_cursor,
        Some(consumed.clone())
    );
    // The cursor survives a new owner's fence: the new owner resumes after it.
    match store.fence(&c, 2).await.unwrap() {
        FenceOutcome::Fenced(head) => assert_eq!(head.inbox_cursor, Some(consumed)),
        other => panic!("a higher epoch fences: {other:?}"),
    }
}

pub async fn conversations_are_isolated(store: Store) {
    let (a, b) = (conversation("first"), conversation("second"));
    assert_eq!(
        append(&store, &a, 1, &batch(0, 3)).await,
        AppendOutcome::Appended
    );
    assert_eq!(
        store.fence(&b, 7).await.unwrap(),
        FenceOutcome::Fenced(EventHead {
            next_id: 0,
            epoch: 7,
            inbox_cursor: None,
        })
    );
    assert_eq!(
        append(&store, &b, 7, &batch(0, 1)).await,
        AppendOutcome::Appended
    );
    assert_eq!(all_ids(&store, &a).await, [0, 1, 2]);
    assert_eq!(all_ids(&store, &b).await, [0]);
    assert_eq!(store.head(&a).await.unwrap().epoch, 1);
}

pub async fn concurrent_appenders_of_one_id_have_one_winner(store: Store) {
    let c = conversation("race");
    let appenders = (0..8u64).map(|writer| {
        let (store, c) = (Arc::clone(&store), c.clone());
        tokio::spawn(async move {
            let event = message(0, &format!("writer {writer}"));
            let batch = EventBatch::new(vec![event]).expect("a valid batch");
            (writer, store.append(&c, 1, &batch, None).await)
        })
    });
    let mut winners = Vec::new();
    for appender in appenders {
        let (writer, outcome) = appender.await.expect("the appender finishes");
        match outcome {
            Ok(AppendOutcome::Appended) => winners.push(writer),
            Ok(AppendOutcome::IdConflict { next_id: 1 }) | Err(_) => {}
            Ok(other) => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one appender wins id 0");
    let page = store.page(&c, 0, 10).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].message, format!("writer {}", winners[0]));
}
