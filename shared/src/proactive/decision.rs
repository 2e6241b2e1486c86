//! The trigger decision (`store_workflow_information`): record one workflow run in its group and decide,
//! atomically, whether this delivery is the one that turns the group red. Exactly one delivery per
//! (repository, PR, head commit) ever gets `Decision::Triggered`, whatever the order, repetition or
//! concurrency of deliveries: every write is conditional on the version read, and the write that sets
//! `triggered` also records the outbox entry. After the trigger the group follows the commit's re-runs
//! the same way: each change of its outcome (green again, red after that) is one `Decision::FollowUp`.

use chrono::Utc;

use crate::domain::{
    GroupKey, GroupState, OutboxEntry, Outcome, ProactiveConversationRequested, Repository,
    RunTally, UserId, WorkflowRun, WorkflowRunGroup,
};
use crate::github::{GitHubClient, GitHubError, RepoRef};
use crate::ports::{Expected, ProactiveStore, StoreError, WriteOutcome};
use crate::retry::RetryPolicy;

/// How often one delivery writes against concurrent ones before giving up (503, nothing half-written).
const CONFLICTS: RetryPolicy = RetryPolicy::WRITE_CONFLICT;

/// What one delivery did to its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This delivery turned the group red: the caller publishes the entry, then clears it.
    Triggered(Box<OutboxEntry>),
    /// The group had triggered already; the outcome did not change.
    AlreadyTriggered,
    /// After the trigger, this delivery changed the commit's outcome (a re-run): the caller publishes
    /// the entry (`sequence` > 0) as it would a trigger.
    FollowUp(Box<OutboxEntry>),
    /// Still collecting (something pending, or nothing failed).
    Collecting(RunTally),
}

#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("GitHub snapshot of the commit's runs failed: {0}")]
    GitHub(#[from] GitHubError),
    #[error("gave up after {0} conflicting writes")]
    Contention(u32),
}

/// One run to record, with what the event needs besides the group.
pub struct RunDelivery<'a> {
    pub repository: &'a Repository,
    /// Who a conversation it triggers is for.
    pub owner: &'a UserId,
    pub key: GroupKey,
    pub head_branch: &'a str,
    pub run: WorkflowRun,
}

/// Records `delivery.run` in its group and decides. See the module documentation.
pub async fn store_workflow_information(
    store: &dyn ProactiveStore,
    github: &GitHubClient,
    delivery: RunDelivery<'_>,
) -> Result<Decision, DecisionError> {
    for attempt in 0..CONFLICTS.max_attempts {
        let (group, expected) = match store.get_group(&delivery.key).await? {
            Some(mut group) => {
                if !group.merge(delivery.run.clone()) {
                    // Nothing new: the decision cannot have changed, so there is nothing to write.
                    return Ok(match group.state {
                        GroupState::Triggered => Decision::AlreadyTriggered,
                        GroupState::Collecting => Decision::Collecting(group.tally()),
                    });
                }
                let read_version = group.version;
                group.version += 1;
                (group, Expected::Version(read_version))
            }
            None => (first_snapshot(github, &delivery).await?, Expected::Absent),
        };
        let (group, outbox) = decide(
            group,
            delivery.repository,
            delivery.owner,
            delivery.head_branch,
        );
        if let Some(decision) = write(store, &group, outbox, expected, attempt).await? {
            return Ok(decision);
        }
    }
    Err(DecisionError::Contention(CONFLICTS.max_attempts))
}

/// Writes a decided `group` (with its outbox entry when it turned red) if `expected` still holds: the
/// decision, or `None` after a conflict, once the wait before the next attempt is over.
async fn write(
    store: &dyn ProactiveStore,
    group: &WorkflowRunGroup,
    outbox: Option<OutboxEntry>,
    expected: Expected,
    attempt: u32,
) -> Result<Option<Decision>, StoreError> {
    match store.save_group(group, expected, outbox.as_ref()).await? {
        WriteOutcome::Written => Ok(Some(match outbox {
            Some(entry) if entry.event.sequence > 0 => Decision::FollowUp(Box::new(entry)),
            Some(entry) => Decision::Triggered(Box::new(entry)),
            None if group.state == GroupState::Triggered => Decision::AlreadyTriggered,
            None => Decision::Collecting(group.tally()),
        })),
        WriteOutcome::Conflict => {
            tokio::time::sleep(CONFLICTS.wait_before(attempt, None)).await;
            Ok(None)
        }
    }
}

/// A new group: every run GitHub knows for the commit (fetched outside any transaction), plus this one.
async fn first_snapshot(
    github: &GitHubClient,
    delivery: &RunDelivery<'_>,
) -> Result<WorkflowRunGroup, GitHubError> {
    let repo = RepoRef::from(delivery.repository);
    let known = github
        .workflow_runs_for_commit(repo, &delivery.key.head_sha)
        .await?;
    let mut group = WorkflowRunGroup::new(delivery.key.clone(), Utc::now());
    group.version = 1;
    for run in known {
        group.merge(run);
    }
    group.merge(delivery.run.clone());
    Ok(group)
}

/// Stamps the write (with whose conversation a trigger starts, and on which branch) and, when the
/// group is red, marks it triggered with its outbox entry; after the trigger, a changed outcome is a
/// follow-up entry.
fn decide(
    mut group: WorkflowRunGroup,
    repository: &Repository,
    owner: &UserId,
    head_branch: &str,
) -> (WorkflowRunGroup, Option<OutboxEntry>) {
    let now = Utc::now();
    group.last_updated_at = now;
    group.owner = Some(owner.clone());
    group.head_branch = Some(head_branch.to_owned());
    match (group.state, group.outcome()) {
        (GroupState::Collecting, Some(Outcome::Red)) => {
            group.state = GroupState::Triggered;
            group.told = Some(Outcome::Red);
            group.sequence = 0;
        }
        // Groups triggered before outcomes were kept told red.
        (GroupState::Triggered, Some(outcome)) if outcome != group.told.unwrap_or_default() => {
            group.told = Some(outcome);
            group.sequence += 1;
        }
        _ => return (group, None),
    }
    let event =
        ProactiveConversationRequested::for_group(&group, repository, head_branch, owner, now);
    (group, Some(OutboxEntry { event }))
}

/// Re-checks a group still collecting against GitHub (a delivery that failed, or never came, may have
/// been the deciding one): every run GitHub knows for the commit is merged through the same
/// conditional write, which decides exactly as a delivery would. A group no delivery recorded an
/// owner for is left alone.
pub async fn reconcile_group(
    store: &dyn ProactiveStore,
    github: &GitHubClient,
    repository: &Repository,
    key: &GroupKey,
) -> Result<Decision, DecisionError> {
    let known = github
        .workflow_runs_for_commit(RepoRef::from(repository), &key.head_sha)
        .await?;
    for attempt in 0..CONFLICTS.max_attempts {
        let Some(mut group) = store.get_group(key).await? else {
            return Ok(Decision::Collecting(RunTally::default()));
        };
        if group.state == GroupState::Triggered {
            return Ok(Decision::AlreadyTriggered);
        }
        let (Some(owner), Some(branch)) = (group.owner.clone(), group.head_branch.clone()) else {
            return Ok(Decision::Collecting(group.tally()));
        };
        // Every run merged (not `any`: it would stop at the first change).
        let mut changed = false;
        for run in &known {
            changed |= group.merge(run.clone());
        }
        if !changed {
            return Ok(Decision::Collecting(group.tally()));
        }
        let read_version = group.version;
        group.version += 1;
        let (group, outbox) = decide(group, repository, &owner, &branch);
        let expected = Expected::Version(read_version);
        if let Some(decision) = write(store, &group, outbox, expected, attempt).await? {
            return Ok(decision);
        }
    }
    Err(DecisionError::Contention(CONFLICTS.max_attempts))
}
