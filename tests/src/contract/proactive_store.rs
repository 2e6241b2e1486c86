//! The proactive store contract: the repository registry, processed deliveries, workflow-run groups
//! under optimistic concurrency, the trigger outbox and retention. Each case takes an empty store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use futures::future::join_all;
use shared::domain::{
    DeliveryId, GroupKey, GroupState, HeadSha, OutboxEntry, ProactiveConversationRequested, RepoId,
    Repository, RunStatus, UserId, UserSettings, WorkflowRun, WorkflowRunGroup,
};
use shared::ports::{CommentClaim, Expected, ProactiveStore, WriteOutcome};
use tokio::task::JoinSet;

/// Every case of this suite as a test of one adapter; `$make` is an async fn returning a fresh,
/// empty `Arc<dyn ProactiveStore>`.
#[macro_export]
macro_rules! proactive_store_contract {
    ($make:path) => {
        $crate::contract_tests!(
            proactive_store,
            $make,
            [
                registry_round_trip,
                user_settings_round_trip,
                one_caller_claims_a_prs_comment_until_it_is_recorded,
                a_lapsed_or_released_comment_claim_is_taken_over,
                repo_lookup_ignores_case,
                renaming_a_repository_moves_its_lookup,
                removed_repository_no_longer_resolves,
                removing_a_repository_keeps_a_name_another_has_taken,
                delivery_is_processed_until_it_expires,
                group_is_created_only_when_absent,
                group_update_needs_the_version_read,
                one_of_200_concurrent_writers_wins,
                outbox_is_written_with_the_triggering_write,
                a_conflicting_write_leaves_no_outbox,
                pending_outbox_is_oldest_first_within_limit_and_cutoff,
                cleared_outbox_is_no_longer_pending,
                clearing_an_entry_keeps_a_later_one_in_its_place,
                outbox_survives_later_group_writes,
                retention_deletes_exactly_the_groups_updated_before_the_cutoff,
                counting_stale_groups_changes_nothing,
                clean_old_convos_applies_the_retention_window,
            ]
        );
    };
}

type Store = Arc<dyn ProactiveStore>;

/// Now, to the millisecond: every adapter keeps at least millisecond precision.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::milliseconds(1))
        .expect("truncate to milliseconds")
}

fn repository(github_id: u64, owner: &str, name: &str) -> Repository {
    Repository {
        id: RepoId::from_github(github_id),
        owner: owner.into(),
        name: name.into(),
        installation_id: Some(github_id * 10),
        account: owner.into(),
        user_id: UserId::from_github(github_id),
        proactive_enabled: true,
    }
}

fn group_key(n: u64) -> GroupKey {
    GroupKey {
        repo_id: RepoId::from_github(1_000 + n),
        pr_number: n,
        head_sha: HeadSha::parse(&format!("{n:040x}")).expect("a sha"),
    }
}

fn run(id: u64, conclusion: Option<&str>, at: DateTime<Utc>) -> WorkflowRun {
    WorkflowRun {
        id,
        name: format!("workflow {id}"),
        status: RunStatus::from_conclusion(conclusion),
        conclusion: conclusion.map(str::to_owned),
        attempt: 1,
        updated_at: at,
        html_url: format!("https://github.com/octo/hello/actions/runs/{id}"),
    }
}

/// A freshly created group (version 1) with one failed run, last updated at `updated_at`.
fn group(key: GroupKey, updated_at: DateTime<Utc>) -> WorkflowRunGroup {
    let mut group = WorkflowRunGroup::new(key, updated_at);
    group.merge(run(1, Some("failure"), updated_at));
    group.version = 1;
    group
}

/// The next write of `group`: one more run, version raised, updated at `at`.
fn next(group: &WorkflowRunGroup, run_id: u64, at: DateTime<Utc>) -> WorkflowRunGroup {
    let mut next = group.clone();
    next.merge(run(run_id, Some("success"), at));
    next.version += 1;
    next.last_updated_at = at;
    next
}

/// `group` decided red at `decided_at`, with the outbox entry of its trigger.
fn triggered(
    group: &WorkflowRunGroup,
    decided_at: DateTime<Utc>,
) -> (WorkflowRunGroup, OutboxEntry) {
    let mut decided = next(group, 2, decided_at);
    decided.state = GroupState::Triggered;
    let owner = Repository {
        id: group.key.repo_id.clone(),
        ..repository(0, "octo", "hello")
    };
    let event = ProactiveConversationRequested::for_group(
        &decided,
        &owner,
        "fix-ci",
        &owner.user_id,
        decided_at,
    );
    (decided, OutboxEntry { event })
}

async fn create(store: &Store, group: &WorkflowRunGroup) {
    let outcome = store.save_group(group, Expected::Absent, None).await;
    assert_eq!(outcome.expect("create a group"), WriteOutcome::Written);
}

/// Writes the triggered state of an already created `group`, with its outbox entry.
async fn trigger(
    store: &Store,
    group: &WorkflowRunGroup,
    decided_at: DateTime<Utc>,
) -> OutboxEntry {
    let (decided, entry) = triggered(group, decided_at);
    let outcome = store
        .save_group(&decided, Expected::Version(group.version), Some(&entry))
        .await;
    assert_eq!(outcome.expect("trigger a group"), WriteOutcome::Written);
    entry
}

async fn create_triggered(
    store: &Store,
    group: &WorkflowRunGroup,
    decided_at: DateTime<Utc>,
) -> OutboxEntry {
    create(store, group).await;
    trigger(store, group, decided_at).await
}

async fn pending(store: &Store, before: DateTime<Utc>, limit: usize) -> Vec<OutboxEntry> {
    store
        .pending_outbox(before, limit)
        .await
        .expect("list pending outbox entries")
}

async fn resolve(store: &Store, owner: &str, name: &str) -> Option<RepoId> {
    store
        .get_repo_id(owner, name)
        .await
        .expect("resolve a name")
}

pub async fn registry_round_trip(store: Store) {
    let hello = repository(1, "octo", "hello");
    let unlisted = Repository {
        installation_id: None,
        proactive_enabled: false,
        ..repository(2, "octo", "quiet")
    };
    store.put_repository(&hello).await.unwrap();
    store.put_repository(&unlisted).await.unwrap();
    assert_eq!(store.get_repository(&hello.id).await.unwrap(), Some(hello));
    assert_eq!(
        store.get_repository(&unlisted.id).await.unwrap(),
        Some(unlisted)
    );
    let unknown = RepoId::from_github(3);
    assert_eq!(store.get_repository(&unknown).await.unwrap(), None);
}

pub async fn repo_lookup_ignores_case(store: Store) {
    let hello = repository(1, "OctoCat", "Hello-World");
    store.put_repository(&hello).await.unwrap();
    for (owner, name) in [
        ("OctoCat", "Hello-World"),
        ("octocat", "hello-world"),
        ("OCTOCAT", "HELLO-WORLD"),
    ] {
        assert_eq!(
            resolve(&store, owner, name).await,
            Some(hello.id.clone()),
            "{owner}/{name}"
        );
    }
    assert_eq!(resolve(&store, "octocat", "hello").await, None);
    assert_eq!(resolve(&store, "hello-world", "octocat").await, None);
}

pub async fn renaming_a_repository_moves_its_lookup(store: Store) {
    let before = repository(1, "octo", "hello");
    store.put_repository(&before).await.unwrap();
    let after = Repository {
        name: "hello-renamed".into(),
        proactive_enabled: false,
        ..before.clone()
    };
    store.put_repository(&after).await.unwrap();
    assert_eq!(
        store.get_repository(&after.id).await.unwrap(),
        Some(after.clone())
    );
    assert_eq!(resolve(&store, "octo", "hello").await, None);
    assert_eq!(
        resolve(&store, "octo", "hello-renamed").await,
        Some(after.id)
    );
}

pub async fn removed_repository_no_longer_resolves(store: Store) {
    let hello = repository(1, "octo", "hello");
    let other = repository(2, "octo", "other");
    store.put_repository(&hello).await.unwrap();
    store.put_repository(&other).await.unwrap();
    store.remove_repository(&hello.id).await.unwrap();
    assert_eq!(store.get_repository(&hello.id).await.unwrap(), None);
    assert_eq!(resolve(&store, "octo", "hello").await, None);
    assert_eq!(
        resolve(&store, "octo", "other").await,
        Some(other.id.clone())
    );
    // Removing what is not there is not an error (an uninstall delivered twice).
    store.remove_repository(&hello.id).await.unwrap();
    assert_eq!(store.get_repository(&other.id).await.unwrap(), Some(other));
}

pub async fn removing_a_repository_keeps_a_name_another_has_taken(store: Store) {
    // The first repository was deleted on GitHub without an event; a new one took its name.
    let first = repository(1, "octo", "hello");
    let second = repository(2, "octo", "Hello");
    store.put_repository(&first).await.unwrap();
    store.put_repository(&second).await.unwrap();
    assert_eq!(
        resolve(&store, "octo", "hello").await,
        Some(second.id.clone())
    );
    store.remove_repository(&first.id).await.unwrap();
    assert_eq!(store.get_repository(&first.id).await.unwrap(), None);
    assert_eq!(
        resolve(&store, "octo", "hello").await,
        Some(second.id.clone())
    );
    assert_eq!(
        store.get_repository(&second.id).await.unwrap(),
        Some(second)
    );
}

pub async fn user_settings_round_trip(store: Store) {
    let (alice, bob) = (crate::user_id("alice"), crate::user_id("bob"));
    assert_eq!(
        store.get_user_settings(&alice).await.unwrap(),
        UserSettings::default(),
        "a user who never chose has the defaults"
    );
    let off = UserSettings {
        proactive_conversations: Some(false),
    };
    store.put_user_settings(&alice, &off).await.unwrap();
    assert_eq!(store.get_user_settings(&alice).await.unwrap(), off);
    assert_eq!(
        store.get_user_settings(&bob).await.unwrap(),
        UserSettings::default()
    );
    let on = UserSettings {
        proactive_conversations: Some(true),
    };
    store.put_user_settings(&alice, &on).await.unwrap();
    assert_eq!(store.get_user_settings(&alice).await.unwrap(), on);
}

pub async fn one_caller_claims_a_prs_comment_until_it_is_recorded(store: Store) {
    let (repo, until) = (RepoId::from_github(7), now() + TimeDelta::minutes(1));
    let claims = join_all((0..20).map(|_| store.claim_pr_comment(&repo, 3, until))).await;
    let won = claims
        .iter()
        .filter(|claim| *claim.as_ref().unwrap() == CommentClaim::Won)
        .count();
    assert_eq!(won, 1, "one winner among concurrent claims: {claims:?}");
    assert!(
        claims
            .iter()
            .all(|claim| matches!(claim, Ok(CommentClaim::Won | CommentClaim::Taken)))
    );
    assert_eq!(
        store.claim_pr_comment(&repo, 4, until).await.unwrap(),
        CommentClaim::Won,
        "another PR's comment is claimed apart"
    );
    store.record_pr_comment(&repo, 3, 9_001).await.unwrap();
    assert_eq!(
        store.claim_pr_comment(&repo, 3, until).await.unwrap(),
        CommentClaim::Recorded(9_001)
    );
}

pub async fn a_lapsed_or_released_comment_claim_is_taken_over(store: Store) {
    let repo = RepoId::from_github(8);
    let lapsed = now() - TimeDelta::seconds(1);
    assert_eq!(
        store.claim_pr_comment(&repo, 1, lapsed).await.unwrap(),
        CommentClaim::Won
    );
    let until = now() + TimeDelta::minutes(1);
    assert_eq!(
        store.claim_pr_comment(&repo, 1, until).await.unwrap(),
        CommentClaim::Won,
        "a winner that never recorded lost its claim when it lapsed"
    );
    assert_eq!(
        store.claim_pr_comment(&repo, 1, until).await.unwrap(),
        CommentClaim::Taken
    );
    store.release_pr_comment(&repo, 1).await.unwrap();
    assert_eq!(
        store.claim_pr_comment(&repo, 1, until).await.unwrap(),
        CommentClaim::Won,
        "a released claim is free"
    );
    store.record_pr_comment(&repo, 1, 77).await.unwrap();
    store.release_pr_comment(&repo, 1).await.unwrap();
    assert_eq!(
        store.claim_pr_comment(&repo, 1, until).await.unwrap(),
        CommentClaim::Recorded(77),
        "a recorded comment is never released"
    );
}

pub async fn delivery_is_processed_until_it_expires(store: Store) {
    let (fresh, expired) = (
        DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").unwrap(),
        DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0959").unwrap(),
    );
    assert!(!store.is_delivery_processed(&fresh).await.unwrap());
    let hour = TimeDelta::hours(1);
    store
        .mark_delivery_processed(&fresh, now() + hour)
        .await
        .unwrap();
    store
        .mark_delivery_processed(&expired, now() - hour)
        .await
        .unwrap();
    assert!(store.is_delivery_processed(&fresh).await.unwrap());
    assert!(
        !store.is_delivery_processed(&expired).await.unwrap(),
        "an expired delivery id is forgotten even before the store deletes it"
    );
    // Marking again replaces the expiry.
    store
        .mark_delivery_processed(&expired, now() + hour)
        .await
        .unwrap();
    assert!(store.is_delivery_processed(&expired).await.unwrap());
    store
        .mark_delivery_processed(&fresh, now() - hour)
        .await
        .unwrap();
    assert!(!store.is_delivery_processed(&fresh).await.unwrap());
}

pub async fn group_is_created_only_when_absent(store: Store) {
    let key = group_key(1);
    assert_eq!(store.get_group(&key).await.unwrap(), None);
    let first = group(key.clone(), now());
    create(&store, &first).await;
    assert_eq!(store.get_group(&key).await.unwrap(), Some(first.clone()));

    let mut rival = group(key.clone(), now());
    rival.merge(run(9, None, now()));
    let outcome = store
        .save_group(&rival, Expected::Absent, None)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        WriteOutcome::Conflict,
        "a second create of one group loses"
    );
    assert_eq!(store.get_group(&key).await.unwrap(), Some(first));
    assert_eq!(store.get_group(&group_key(2)).await.unwrap(), None);
}

pub async fn group_update_needs_the_version_read(store: Store) {
    let created = group(group_key(1), now() - TimeDelta::minutes(5));
    create(&store, &created).await;

    let updated = next(&created, 2, now());
    let outcome = store
        .save_group(&updated, Expected::Version(created.version), None)
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert_eq!(
        store.get_group(&created.key).await.unwrap(),
        Some(updated.clone())
    );

    // A writer that read the old version, and one that guesses ahead, both lose without effect.
    for stale in [created.version, updated.version + 1] {
        let rival = next(&created, 3, now());
        let outcome = store
            .save_group(&rival, Expected::Version(stale), None)
            .await
            .unwrap();
        assert_eq!(outcome, WriteOutcome::Conflict, "expected version {stale}");
    }
    assert_eq!(store.get_group(&created.key).await.unwrap(), Some(updated));

    // A versioned write of a group that does not exist creates nothing.
    let missing = group(group_key(2), now());
    let outcome = store
        .save_group(&missing, Expected::Version(1), None)
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Conflict);
    assert_eq!(store.get_group(&missing.key).await.unwrap(), None);
}

pub async fn one_of_200_concurrent_writers_wins(store: Store) {
    const WRITERS: u64 = 200;
    let created = group(group_key(1), now());
    create(&store, &created).await;

    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let (store, update) = (Arc::clone(&store), next(&created, 100 + writer, now()));
        writers.spawn(async move {
            let outcome = store
                .save_group(&update, Expected::Version(created.version), None)
                .await;
            (writer, outcome.expect("a conditional write answers"))
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = writers.join_next().await {
        let (writer, outcome) = joined.expect("a writer task");
        if outcome == WriteOutcome::Written {
            winners.push(writer);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");

    let stored = store
        .get_group(&created.key)
        .await
        .unwrap()
        .expect("the group");
    assert_eq!(stored.version, created.version + 1);
    let runs: HashSet<u64> = stored.runs.keys().copied().collect();
    assert_eq!(
        runs,
        HashSet::from([1, 100 + winners[0]]),
        "only the winner's run is stored"
    );
}

pub async fn outbox_is_written_with_the_triggering_write(store: Store) {
    let created = group(group_key(1), now() - TimeDelta::minutes(1));
    create(&store, &created).await;
    let later = now() + TimeDelta::hours(1);
    assert!(
        pending(&store, later, 10).await.is_empty(),
        "a collecting group has no outbox entry"
    );

    let entry = trigger(&store, &created, now()).await;
    assert_eq!(entry.key(), created.key);
    assert_eq!(pending(&store, later, 10).await, vec![entry]);
    let stored = store
        .get_group(&created.key)
        .await
        .unwrap()
        .expect("the group");
    assert_eq!(stored.state, GroupState::Triggered);
    assert_eq!(stored.version, created.version + 1);
}

pub async fn a_conflicting_write_leaves_no_outbox(store: Store) {
    let created = group(group_key(1), now());
    let (decided, entry) = triggered(&created, now());
    // Neither a create that loses nor an update of a stale version records the entry.
    create(&store, &created).await;
    let outcome = store
        .save_group(&decided, Expected::Absent, Some(&entry))
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Conflict);
    let outcome = store
        .save_group(
            &decided,
            Expected::Version(created.version + 7),
            Some(&entry),
        )
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Conflict);
    assert!(
        pending(&store, now() + TimeDelta::hours(1), 10)
            .await
            .is_empty()
    );
    assert_eq!(store.get_group(&created.key).await.unwrap(), Some(created));
}

pub async fn pending_outbox_is_oldest_first_within_limit_and_cutoff(store: Store) {
    let base = now() - TimeDelta::hours(1);
    let minute = |n: i64| base + TimeDelta::minutes(n);
    let mut entries = Vec::new();
    // Written out of order, so that order of insertion is not mistaken for decision order.
    for n in [3, 1, 4, 2] {
        let created = group(group_key(n as u64), base);
        entries.push((n, create_triggered(&store, &created, minute(n)).await));
    }
    entries.sort_by_key(|(n, _)| *n);
    let entries: Vec<OutboxEntry> = entries.into_iter().map(|(_, entry)| entry).collect();

    assert_eq!(pending(&store, minute(10), 10).await, entries);
    assert_eq!(pending(&store, minute(10), 2).await, entries[..2]);
    assert_eq!(
        pending(&store, minute(3), 10).await,
        entries[..2],
        "only entries decided strictly before the cutoff"
    );
    assert!(pending(&store, minute(1), 10).await.is_empty());
    assert!(pending(&store, minute(10), 0).await.is_empty());
}

pub async fn cleared_outbox_is_no_longer_pending(store: Store) {
    let later = now() + TimeDelta::hours(1);
    let first = create_triggered(
        &store,
        &group(group_key(1), now()),
        now() - TimeDelta::minutes(2),
    )
    .await;
    let second = create_triggered(
        &store,
        &group(group_key(2), now()),
        now() - TimeDelta::minutes(1),
    )
    .await;
    store.clear_outbox(&first).await.unwrap();
    assert_eq!(pending(&store, later, 10).await, vec![second.clone()]);
    // Clearing is idempotent, keeps the group, and never creates a group that is not there.
    store.clear_outbox(&first).await.unwrap();
    let stored = store
        .get_group(&first.key())
        .await
        .unwrap()
        .expect("the group stays");
    assert_eq!(stored.state, GroupState::Triggered);
    let (_, absent) = triggered(&group(group_key(3), now()), now());
    store.clear_outbox(&absent).await.unwrap();
    assert_eq!(store.get_group(&group_key(3)).await.unwrap(), None);
    assert_eq!(pending(&store, later, 10).await, vec![second]);
}

/// A follow-up decided while the trigger's entry was unpublished takes its place; clearing the trigger's
/// (its publish done) leaves the follow-up's.
pub async fn clearing_an_entry_keeps_a_later_one_in_its_place(store: Store) {
    let created = group(group_key(1), now() - TimeDelta::minutes(3));
    create(&store, &created).await;
    let first = trigger(&store, &created, now() - TimeDelta::minutes(2)).await;
    let decided = store.get_group(&created.key).await.unwrap().unwrap();
    let (mut follow_up, mut later) = triggered(&decided, now() - TimeDelta::minutes(1));
    follow_up.sequence = 1;
    later.event.sequence = 1;
    let written = store
        .save_group(&follow_up, Expected::Version(decided.version), Some(&later))
        .await
        .unwrap();
    assert_eq!(written, WriteOutcome::Written);
    let soon = now() + TimeDelta::hours(1);
    assert_eq!(pending(&store, soon, 10).await, vec![later.clone()]);
    store.clear_outbox(&first).await.unwrap();
    assert_eq!(
        pending(&store, soon, 10).await,
        vec![later.clone()],
        "the later entry stays"
    );
    store.clear_outbox(&later).await.unwrap();
    assert!(pending(&store, soon, 10).await.is_empty());
}

pub async fn outbox_survives_later_group_writes(store: Store) {
    let created = group(group_key(1), now() - TimeDelta::minutes(1));
    create(&store, &created).await;
    let entry = trigger(&store, &created, now()).await;
    let decided = store
        .get_group(&created.key)
        .await
        .unwrap()
        .expect("the group");
    let later_write = next(&decided, 5, now());
    let outcome = store
        .save_group(&later_write, Expected::Version(decided.version), None)
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Written);
    assert_eq!(
        pending(&store, now() + TimeDelta::hours(1), 10).await,
        vec![entry],
        "only clear_outbox removes a pending entry"
    );
}

pub async fn retention_deletes_exactly_the_groups_updated_before_the_cutoff(store: Store) {
    const OLD: u64 = 30;
    let cutoff = now() - TimeDelta::days(30);
    let old: Vec<GroupKey> = (0..OLD).map(group_key).collect();
    for (age, key) in old.iter().enumerate() {
        let updated = cutoff - TimeDelta::hours(1 + age as i64);
        create(&store, &group(key.clone(), updated)).await;
    }
    // At the cutoff itself and after it: kept.
    let recent: Vec<GroupKey> = (OLD..OLD + 3).map(group_key).collect();
    for (updated, key) in [cutoff, cutoff + TimeDelta::seconds(1), now()]
        .into_iter()
        .zip(&recent)
    {
        create(&store, &group(key.clone(), updated)).await;
    }
    // A group created long ago but updated since is judged by its last update.
    let revived = group(group_key(99), cutoff - TimeDelta::days(3));
    create(&store, &revived).await;
    let update = next(&revived, 2, now());
    let outcome = store
        .save_group(&update, Expected::Version(revived.version), None)
        .await
        .unwrap();
    assert_eq!(outcome, WriteOutcome::Written);

    assert_eq!(
        store.delete_groups_updated_before(cutoff).await.unwrap(),
        OLD
    );
    for key in &old {
        assert_eq!(store.get_group(key).await.unwrap(), None, "{key}");
    }
    for key in recent.iter().chain([&revived.key]) {
        assert!(
            store.get_group(key).await.unwrap().is_some(),
            "{key} is kept"
        );
    }
    assert_eq!(store.delete_groups_updated_before(cutoff).await.unwrap(), 0);
}

pub async fn counting_stale_groups_changes_nothing(store: Store) {
    const OLD: u64 = 7;
    let cutoff = now() - TimeDelta::days(30);
    for n in 0..OLD {
        let updated = cutoff - TimeDelta::minutes(1 + n as i64);
        create(&store, &group(group_key(n), updated)).await;
    }
    for (n, updated) in [(OLD, cutoff), (OLD + 1, now())] {
        create(&store, &group(group_key(n), updated)).await;
    }
    for _ in 0..2 {
        assert_eq!(
            store.count_groups_updated_before(cutoff).await.unwrap(),
            OLD,
            "counting twice counts the same groups"
        );
    }
    for n in 0..OLD + 2 {
        assert!(store.get_group(&group_key(n)).await.unwrap().is_some());
    }
    assert_eq!(
        store
            .count_groups_updated_before(now() + TimeDelta::hours(1))
            .await
            .unwrap(),
        OLD + 2
    );
    assert_eq!(
        store.delete_groups_updated_before(cutoff).await.unwrap(),
        OLD
    );
    assert_eq!(store.count_groups_updated_before(cutoff).await.unwrap(), 0);
}

pub async fn clean_old_convos_applies_the_retention_window(store: Store) {
    let (stale, fresh) = (group_key(1), group_key(2));
    create(&store, &group(stale.clone(), now() - TimeDelta::days(40))).await;
    create(&store, &group(fresh.clone(), now() - TimeDelta::days(1))).await;
    let thirty_days = Duration::from_secs(30 * 24 * 3600);
    assert_eq!(store.clean_old_convos(thirty_days).await.unwrap(), 1);
    assert_eq!(store.get_group(&stale).await.unwrap(), None);
    assert!(store.get_group(&fresh).await.unwrap().is_some());
}
