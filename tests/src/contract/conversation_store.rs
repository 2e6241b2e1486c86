//! The conversation store contract: idempotent creation (stamped at the write when asked), reads, the
//! loop state's writes (an owner's fenced by its epoch, field by field), the title set once, a user's
//! listing newest first, the `(created_at, id)` order the sync pages through, and the running
//! conversations the cleanup pages through. Each case takes an empty store.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use shared::domain::{
    AgentState, Checkout, Conversation, ConversationId, ConversationStatus, CreatedCursor,
    GroupKey, HeadSha, ModelSettings, RemoteAgent, RepoId,
};
use shared::ports::{ConversationStore, LoopState, OwnerWrite, WriteOutcome};

/// Every case of this suite as a test of one adapter; `$make` is an async fn returning a fresh,
/// empty `Arc<dyn ConversationStore>`.
#[macro_export]
macro_rules! conversation_store_contract {
    ($make:path) => {
        $crate::contract_tests!(
            conversation_store,
            $make,
            [
                conversation_round_trip,
                creating_an_existing_conversation_conflicts,
                creating_now_stamps_the_time_of_the_write,
                update_writes_the_loop_state_and_nothing_else,
                owner_writes_under_a_lower_epoch_are_refused,
                the_title_is_set_only_where_there_is_none,
                updating_a_missing_conversation_creates_nothing,
                user_listing_is_newest_first_and_isolated_by_user,
                created_after_is_oldest_first_with_ties_broken_by_id,
                created_after_is_strictly_after_the_cursor,
                created_after_pages_with_limit,
                running_listing_holds_only_running_conversations_in_id_order,
                running_listing_pages_strictly_after_the_cursor,
            ]
        );
    };
}

type Store = Arc<dyn ConversationStore>;

/// The instant the cases' conversations are created around: fixed, so that every call names the
/// same instant, with milliseconds, the precision every adapter keeps.
fn base() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_767_225_600_123).expect("a valid instant")
}

fn conversation(id: &str, user: &str, created_at: DateTime<Utc>) -> Conversation {
    Conversation {
        id: ConversationId::parse(id).expect("a conversation id"),
        user_id: crate::user_id(user),
        title: Some(format!("conversation {id}")),
        created_at,
        last_updated_at: created_at,
        status: ConversationStatus::Running,
        agent_state: AgentState::Loading,
        trigger_id: None,
        repository: None,
        checkout: None,
        confirmation_mode: false,
        model: None,
        remote_agent: None,
    }
}

async fn create_all(store: &Store, conversations: &[Conversation]) {
    for conversation in conversations {
        let outcome = store.create_conversation(conversation).await;
        assert_eq!(
            outcome.expect("create a conversation"),
            WriteOutcome::Written
        );
    }
}

fn ids(conversations: &[Conversation]) -> Vec<&str> {
    conversations.iter().map(|c| c.id.as_str()).collect()
}

async fn after(store: &Store, cursor: &CreatedCursor, limit: usize) -> Vec<Conversation> {
    store
        .list_created_after(cursor, limit)
        .await
        .expect("list conversations created after a cursor")
}

pub async fn conversation_round_trip(store: Store) {
    let key = GroupKey {
        repo_id: RepoId::from_github(7),
        pr_number: 3,
        head_sha: HeadSha::parse(&"c".repeat(40)).unwrap(),
    };
    let proactive = Conversation {
        trigger_id: Some(key.trigger_id()),
        repository: Some("octo/hello".into()),
        checkout: Some(Checkout {
            repository: "octo/hello".into(),
            commit: HeadSha::parse(&"c".repeat(40)).expect("a sha"),
            pull_request: 7,
            installation_id: Some(99),
        }),
        confirmation_mode: true,
        model: ModelSettings::parse(
            Some("openai/gpt-x"),
            Some("http://127.0.0.1:9/v1"),
            Some("sk-conversation"),
        )
        .expect("valid settings"),
        remote_agent: Some(RemoteAgent {
            server: "http://10.0.3.7:8000".into(),
            conversation_id: "0d5e2c1a-7b7e-5d0b-9a43-1f4a8e2b6c3d".into(),
        }),
        agent_state: AgentState::AwaitingUserInput,
        ..conversation(
            &ConversationId::for_trigger(&key.trigger_id()).to_string(),
            "alice",
            base(),
        )
    };
    let bare = Conversation {
        title: None,
        status: ConversationStatus::Stopped,
        agent_state: AgentState::RateLimited,
        ..conversation(&ConversationId::random().to_string(), "bob", base())
    };
    create_all(&store, &[proactive.clone(), bare.clone()]).await;
    assert_eq!(
        store.get_conversation(&proactive.id).await.unwrap(),
        Some(proactive)
    );
    assert_eq!(store.get_conversation(&bare.id).await.unwrap(), Some(bare));
    let unknown = ConversationId::random();
    assert_eq!(store.get_conversation(&unknown).await.unwrap(), None);
}

pub async fn creating_an_existing_conversation_conflicts(store: Store) {
    let first = conversation("c1", "alice", base());
    create_all(&store, std::slice::from_ref(&first)).await;
    let again = Conversation {
        title: Some("another title".into()),
        ..conversation("c1", "bob", base() + TimeDelta::seconds(1))
    };
    let outcome = store.create_conversation(&again).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Conflict);
    assert_eq!(
        store.get_conversation(&first.id).await.unwrap(),
        Some(first)
    );
    assert!(
        store
            .list_user_conversations(&crate::user_id("bob"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn creating_now_stamps_the_time_of_the_write(store: Store) {
    let mut created = conversation("c1", "alice", base());
    let before = Utc::now();
    let outcome = store.create_conversation_now(&mut created).await.unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert!(before <= created.created_at && created.created_at <= Utc::now());
    assert_eq!(created.last_updated_at, created.created_at);
    assert_eq!(
        store.get_conversation(&created.id).await.unwrap(),
        Some(created.clone())
    );
    let since_before = after(&store, &CreatedCursor::before(before), 10).await;
    assert_eq!(since_before, vec![created]);
}

fn loop_state(agent_state: AgentState, minutes: i64) -> LoopState {
    LoopState {
        status: ConversationStatus::Running,
        agent_state,
        last_updated_at: base() + TimeDelta::minutes(minutes),
        remote_agent: None,
    }
}

/// The conversation with `state` written over its loop state.
fn with_state(conversation: &Conversation, state: &LoopState) -> Conversation {
    Conversation {
        status: state.status,
        agent_state: state.agent_state,
        last_updated_at: state.last_updated_at,
        remote_agent: state.remote_agent.clone(),
        ..conversation.clone()
    }
}

pub async fn update_writes_the_loop_state_and_nothing_else(store: Store) {
    let created = conversation("c1", "alice", base());
    create_all(&store, std::slice::from_ref(&created)).await;
    let remote = RemoteAgent {
        server: "http://10.0.3.7:8000".into(),
        conversation_id: "remote-1".into(),
    };
    // Whatever else the writer's copy says, only the loop state is written.
    let updated = Conversation {
        title: Some("a stale title".into()),
        repository: Some("octo/elsewhere".into()),
        status: ConversationStatus::Stopped,
        agent_state: AgentState::Finished,
        last_updated_at: base() + TimeDelta::minutes(5),
        remote_agent: Some(remote),
        ..created.clone()
    };
    store.update_conversation(&updated).await.unwrap();
    let expected = with_state(&created, &LoopState::of(&updated));
    assert_eq!(
        store.get_conversation(&created.id).await.unwrap(),
        Some(expected.clone())
    );
    // The update keeps the conversation's place in both orders.
    assert_eq!(
        store
            .list_user_conversations(&crate::user_id("alice"), 10)
            .await
            .unwrap(),
        vec![expected.clone()]
    );
    let everything = CreatedCursor::before(base() - TimeDelta::days(1));
    assert_eq!(after(&store, &everything, 10).await, vec![expected.clone()]);
    // A state without a remote agent removes it.
    let state = loop_state(AgentState::Running, 6);
    let written = store.update_owned(&created.id, 1, &state).await.unwrap();
    assert_eq!(written, OwnerWrite::Written);
    assert_eq!(
        store.get_conversation(&created.id).await.unwrap(),
        Some(with_state(&created, &state))
    );
}

pub async fn owner_writes_under_a_lower_epoch_are_refused(store: Store) {
    let created = conversation("c1", "alice", base());
    create_all(&store, std::slice::from_ref(&created)).await;
    let id = &created.id;
    let stored = async || store.get_conversation(id).await.unwrap();

    let first = loop_state(AgentState::AwaitingUserInput, 1);
    let written = store.update_owned(id, 3, &first).await.unwrap();
    assert_eq!(written, OwnerWrite::Written);
    // A newer owner writes; the old one, resumed, is refused and changes nothing.
    let newer = loop_state(AgentState::Running, 2);
    let written = store.update_owned(id, 4, &newer).await.unwrap();
    assert_eq!(written, OwnerWrite::Written);
    let stale = LoopState {
        status: ConversationStatus::Stopped,
        ..loop_state(AgentState::Error, 3)
    };
    let refused = store.update_owned(id, 3, &stale).await.unwrap();
    assert_eq!(refused, OwnerWrite::Fenced { epoch: 4 });
    assert_eq!(stored().await, Some(with_state(&created, &newer)));
    assert_eq!(ids(&running(&store, None, 10).await), ["c1"]);
    // The same epoch writes again, a higher one takes over.
    let again = loop_state(AgentState::AwaitingUserInput, 4);
    let written = store.update_owned(id, 4, &again).await.unwrap();
    assert_eq!(written, OwnerWrite::Written);
    let taken_over = loop_state(AgentState::Running, 5);
    let written = store.update_owned(id, 9, &taken_over).await.unwrap();
    assert_eq!(written, OwnerWrite::Written);
    assert_eq!(stored().await, Some(with_state(&created, &taken_over)));
    // A write without a lease leaves the epoch: the old owner stays refused, the owner passes.
    let stopped = stopped(&with_state(&created, &taken_over));
    store.update_conversation(&stopped).await.unwrap();
    assert_eq!(stored().await, Some(stopped.clone()));
    let refused = store.update_owned(id, 4, &again).await.unwrap();
    assert_eq!(refused, OwnerWrite::Fenced { epoch: 9 });
    assert_eq!(stored().await, Some(stopped));
    let written = store.update_owned(id, 9, &taken_over).await.unwrap();
    assert_eq!(written, OwnerWrite::Written);
}

pub async fn the_title_is_set_only_where_there_is_none(store: Store) {
    let untitled = Conversation {
        title: None,
        ..conversation("c1", "alice", base())
    };
    let titled = conversation("c2", "alice", base());
    create_all(&store, &[untitled.clone(), titled.clone()]).await;
    assert!(
        store
            .set_title_if_none(&untitled.id, "Fix the login test")
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_title_if_none(&untitled.id, "a second title")
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_title_if_none(&titled.id, "another")
            .await
            .unwrap()
    );
    // The owner's writes and the title's leave each other's fields alone.
    let state = loop_state(AgentState::Running, 1);
    store.update_owned(&untitled.id, 1, &state).await.unwrap();
    let expected = Conversation {
        title: Some("Fix the login test".into()),
        ..with_state(&untitled, &state)
    };
    assert_eq!(
        store.get_conversation(&untitled.id).await.unwrap(),
        Some(expected)
    );
    assert_eq!(
        store.get_conversation(&titled.id).await.unwrap(),
        Some(titled)
    );
}

pub async fn updating_a_missing_conversation_creates_nothing(store: Store) {
    let missing = conversation("c1", "alice", base());
    store.update_conversation(&missing).await.unwrap();
    let written = store
        .update_owned(&missing.id, 1, &LoopState::of(&missing))
        .await
        .unwrap();
    assert_eq!(written, OwnerWrite::Missing);
    assert!(
        !store
            .set_title_if_none(&missing.id, "a title")
            .await
            .unwrap()
    );
    assert_eq!(store.get_conversation(&missing.id).await.unwrap(), None);
    assert!(
        store
            .list_user_conversations(&crate::user_id("alice"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn user_listing_is_newest_first_and_isolated_by_user(store: Store) {
    let at = |minutes| base() + TimeDelta::minutes(minutes);
    create_all(
        &store,
        &[
            conversation("a1", "alice", at(1)),
            conversation("a3", "alice", at(3)),
            conversation("b1", "bob", at(2)),
            conversation("a2", "alice", at(2)),
            conversation("b2", "bob", at(4)),
        ],
    )
    .await;
    let alice = store
        .list_user_conversations(&crate::user_id("alice"), 10)
        .await
        .unwrap();
    assert_eq!(ids(&alice), ["a3", "a2", "a1"]);
    let first_two = store
        .list_user_conversations(&crate::user_id("alice"), 2)
        .await
        .unwrap();
    assert_eq!(ids(&first_two), ["a3", "a2"]);
    let bob = store
        .list_user_conversations(&crate::user_id("bob"), 10)
        .await
        .unwrap();
    assert_eq!(ids(&bob), ["b2", "b1"]);
    assert!(
        store
            .list_user_conversations(&crate::user_id("carol"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_user_conversations(&crate::user_id("alice"), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn created_after_is_oldest_first_with_ties_broken_by_id(store: Store) {
    let (t0, t1, t2) = (
        base(),
        base() + TimeDelta::seconds(1),
        base() + TimeDelta::seconds(2),
    );
    create_all(
        &store,
        &[
            conversation("c", "carol", t2),
            conversation("b", "alice", t1),
            conversation("z", "bob", t0),
            conversation("a", "bob", t1),
            conversation("ab", "alice", t1),
        ],
    )
    .await;
    let everything = after(&store, &CreatedCursor::before(t0), 10).await;
    assert_eq!(ids(&everything), ["z", "a", "ab", "b", "c"]);
}

pub async fn created_after_is_strictly_after_the_cursor(store: Store) {
    let (t1, t2) = (base(), base() + TimeDelta::seconds(1));
    let (a, b, c) = (
        conversation("a", "alice", t1),
        conversation("b", "alice", t1),
        conversation("c", "bob", t2),
    );
    create_all(&store, &[a.clone(), b.clone(), c.clone()]).await;
    assert_eq!(
        ids(&after(&store, &CreatedCursor::of(&a), 10).await),
        ["b", "c"]
    );
    assert_eq!(ids(&after(&store, &CreatedCursor::of(&b), 10).await), ["c"]);
    assert!(after(&store, &CreatedCursor::of(&c), 10).await.is_empty());
    // `before(t)` takes in everything created at `t`; a cursor after all of them takes nothing.
    assert_eq!(
        ids(&after(&store, &CreatedCursor::before(t1), 10).await),
        ["a", "b", "c"]
    );
    assert_eq!(
        ids(&after(&store, &CreatedCursor::before(t2), 10).await),
        ["c"]
    );
    let later = CreatedCursor::before(t2 + TimeDelta::milliseconds(1));
    assert!(after(&store, &later, 10).await.is_empty());
}

pub async fn created_after_pages_with_limit(store: Store) {
    const COUNT: i64 = 7;
    // Two conversations per instant, so that pages also split ties.
    let conversations: Vec<Conversation> = (0..COUNT)
        .map(|n| {
            conversation(
                &format!("c{n}"),
                "alice",
                base() + TimeDelta::seconds(n / 2),
            )
        })
        .collect();
    create_all(&store, &conversations).await;

    let mut cursor = CreatedCursor::before(base());
    let mut pages = Vec::new();
    loop {
        let page = after(&store, &cursor, 3).await;
        let Some(last) = page.last() else { break };
        cursor = CreatedCursor::of(last);
        pages.push(page);
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(pages.concat(), conversations);
    assert!(
        after(&store, &CreatedCursor::before(base()), 0)
            .await
            .is_empty()
    );
}

async fn running(store: &Store, after: Option<&str>, limit: usize) -> Vec<Conversation> {
    let after = after.map(|id| ConversationId::parse(id).expect("a conversation id"));
    store
        .list_running(after.as_ref(), limit)
        .await
        .expect("list running conversations")
}

fn stopped(conversation: &Conversation) -> Conversation {
    Conversation {
        status: ConversationStatus::Stopped,
        agent_state: AgentState::Stopped,
        last_updated_at: conversation.last_updated_at + TimeDelta::minutes(1),
        ..conversation.clone()
    }
}

pub async fn running_listing_holds_only_running_conversations_in_id_order(store: Store) {
    let at = |minutes| base() + TimeDelta::minutes(minutes);
    let (r2, s1, r1, s2) = (
        conversation("r2", "alice", at(1)),
        conversation("s1", "alice", at(2)),
        conversation("r1", "bob", at(3)),
        conversation("s2", "bob", at(4)),
    );
    create_all(&store, &[r2.clone(), s1.clone(), r1.clone(), s2.clone()]).await;
    assert_eq!(
        ids(&running(&store, None, 10).await),
        ["r1", "r2", "s1", "s2"]
    );
    // A stop takes a conversation out of the listing; running again puts it back.
    for conversation in [&s1, &s2, &r1] {
        store
            .update_conversation(&stopped(conversation))
            .await
            .unwrap();
    }
    assert_eq!(running(&store, None, 10).await, vec![r2.clone()]);
    store.update_conversation(&r1).await.unwrap();
    assert_eq!(running(&store, None, 10).await, vec![r1, r2]);
    assert!(running(&store, None, 0).await.is_empty());
}

pub async fn running_listing_pages_strictly_after_the_cursor(store: Store) {
    let conversations: Vec<Conversation> = (0..7)
        .map(|n| conversation(&format!("c{n}"), "alice", base()))
        .collect();
    create_all(&store, &conversations).await;
    store
        .update_conversation(&stopped(&conversations[3]))
        .await
        .unwrap();

    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = running(&store, cursor.as_deref(), 2).await;
        let Some(last) = page.last() else { break };
        cursor = Some(last.id.as_str().to_owned());
        pages.push(ids(&page).join(","));
    }
    assert_eq!(pages, ["c0,c1", "c2,c4", "c5,c6"]);
    assert_eq!(ids(&running(&store, Some("c4"), 10).await), ["c5", "c6"]);
    assert!(running(&store, Some("c6"), 10).await.is_empty());
}
