//! One run: take the lease, read pages of the settled conversations after the watermark (created before
//! the run's bound, `now - settle`), deliver them through a window of concurrent tasks whose results come
//! back in order, and move the watermark past each finished one. The window keeps the rate limit busy
//! while some answers are slow; the in-order results keep the watermark honest: it never passes a
//! conversation that is not finished, nor the bound, behind which a late conversation may still land.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::users::{RunUser, RunUsers};
use super::{RunOutcome, SyncDeps, SyncError, SyncOptions, SyncSummary, Tally};
use crate::commonroom::{Activity, CommonRoomClient};
use shared::config::ConfigError;
use shared::domain::{Conversation, CreatedCursor};
use shared::ports::Advance;
use shared::retry::{Retryable, Verdict};

/// Runs the sync once. `Ok` with outcome `LeaseHeld` when another run is in progress; `Err` when a
/// dependency stayed down after its retries (the summary is logged either way).
pub async fn run_sync(deps: &SyncDeps, options: SyncOptions) -> Result<SyncSummary, SyncError> {
    let started = Instant::now();
    let retries_before = deps.retrier.retries();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let delivery = match (&deps.common_room, options.dry_run) {
        (_, true) => None,
        (Some(client), false) => Some(Arc::clone(client)),
        (None, false) => return Err(ConfigError::Missing("COMMON_ROOM_API_KEY").into()),
    };
    let tally = Arc::new(Tally::default());
    let mut run = Run {
        deps,
        run_id: &run_id,
        delivery,
        tally: Arc::clone(&tally),
        watermark: None,
    };

    let result = if run.delivery.is_some() {
        let acquired = deps
            .retrier
            .run(|| {
                deps.state
                    .acquire_run_lease(&run_id, deps.settings.lease_ttl)
            })
            .await;
        match acquired {
            Ok(true) => {
                let result = run.execute(options.since).await;
                // Best effort: an unreleased lease only delays the next run until it expires.
                if let Err(error) = deps.state.release_run_lease(&run_id).await {
                    tracing::warn!(run_id, error = %error, "could not release the run lease");
                }
                result.map(|()| RunOutcome::Completed)
            }
            Ok(false) => Ok(RunOutcome::LeaseHeld),
            Err(error) => Err(SyncError::Store(error)),
        }
    } else {
        run.execute(options.since)
            .await
            .map(|()| RunOutcome::DryRun)
    };

    let outcome = *result.as_ref().unwrap_or(&RunOutcome::Failed);
    let summary = SyncSummary {
        run_id: run_id.clone(),
        outcome,
        conversations_seen: tally.conversations_seen.load(Ordering::Relaxed),
        users_registered: tally.users_registered.load(Ordering::Relaxed),
        activities_registered: tally.activities_registered.load(Ordering::Relaxed),
        missing_users: tally.missing_users.load(Ordering::Relaxed),
        users_without_email: tally.users_without_email.load(Ordering::Relaxed),
        conversations_skipped: tally.conversations_skipped.load(Ordering::Relaxed),
        permanent_failures: tally.permanent_failures.load(Ordering::Relaxed),
        retries: deps.retrier.retries() - retries_before,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        watermark: run.watermark,
    };
    let fields = serde_json::to_string(&summary).unwrap_or_default();
    match result {
        Ok(_) => {
            tracing::info!(summary = %fields, "common room sync finished");
            Ok(summary)
        }
        Err(error) => {
            tracing::error!(summary = %fields, error = %error, kind = error.kind(), "common room sync failed");
            Err(error)
        }
    }
}

struct Run<'a> {
    deps: &'a SyncDeps,
    run_id: &'a str,
    /// The Common Room client, or `None` in a dry run.
    delivery: Option<Arc<CommonRoomClient>>,
    tally: Arc<Tally>,
    /// The stored watermark as this run last saw or wrote it.
    watermark: Option<CreatedCursor>,
}

/// A conversation whose delivery is over, one way or another.
struct Finished {
    cursor: CreatedCursor,
}

impl Run<'_> {
    async fn execute(&mut self, since: Option<DateTime<Utc>>) -> Result<(), SyncError> {
        let deps = self.deps;
        self.watermark = deps.retrier.run(|| deps.state.watermark()).await?;
        let now = Utc::now();
        let start = match (since, &self.watermark) {
            (Some(since), _) => CreatedCursor::before(since),
            (None, Some(watermark)) => watermark.clone(),
            (None, None) => CreatedCursor::before(ago(now, deps.settings.lookback)),
        };
        let bound = ago(now, deps.settings.settle);
        if let Some(client) = &self.delivery {
            // Fails fast on a refused key, before anything is read.
            client.check_token().await?;
        }

        let context = Arc::new(Delivery {
            client: self.delivery.clone(),
            public_url: deps.settings.public_url.clone(),
            tally: Arc::clone(&self.tally),
        });
        let mut finished = std::pin::pin!(
            pages(deps, start, bound, Arc::clone(&self.tally))
                .map_ok(|page| stream::iter(page.into_iter().map(Ok::<_, SyncError>)))
                .try_flatten()
                .map(move |item| {
                    let context = Arc::clone(&context);
                    // Spawned as soon as it enters the window, so that it progresses while the loop below
                    // writes the watermark; aborted if the run stops before it finishes.
                    let task = item.map(|(conversation, user)| {
                        AbortOnDrop(tokio::spawn(context.deliver(conversation, user)))
                    });
                    async move { task?.await }
                })
                .buffered(deps.settings.in_flight)
        );

        let mut heartbeat = tokio::time::interval(deps.settings.lease_ttl / 3);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                next = finished.next() => match next {
                    None => return Ok(()),
                    Some(done) => self.advance(done?.cursor).await?,
                },
                _ = heartbeat.tick(), if self.delivery.is_some() => {
                    let renewed = deps
                        .retrier
                        .run(|| deps.state.acquire_run_lease(self.run_id, deps.settings.lease_ttl))
                        .await?;
                    if !renewed {
                        return Err(SyncError::LeaseLost);
                    }
                }
            }
        }
    }

    /// Moves the watermark past a finished conversation (not in a dry run).
    async fn advance(&mut self, cursor: CreatedCursor) -> Result<(), SyncError> {
        if self.delivery.is_none() {
            return Ok(());
        }
        let deps = self.deps;
        let advance = deps
            .retrier
            .run(|| deps.state.advance_watermark(self.run_id, &cursor))
            .await?;
        match advance {
            Advance::Moved => self.watermark = Some(cursor),
            // A back-fill behind the watermark: it stays where it is.
            Advance::AlreadyPast => {}
            Advance::LeaseLost => return Err(SyncError::LeaseLost),
        }
        Ok(())
    }
}

/// `duration` before `now`, or the earliest instant there is when that is further back.
fn ago(now: DateTime<Utc>, duration: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|duration| now.checked_sub_signed(duration))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Pages of conversations after `start` and created before `bound`, oldest first, each paired with its
/// user (looked up here, a page at a time). Only one page is held at a time; a short page is the last.
fn pages(
    deps: &SyncDeps,
    start: CreatedCursor,
    bound: DateTime<Utc>,
    tally: Arc<Tally>,
) -> impl Stream<Item = Result<Vec<(Conversation, Arc<RunUser>)>, SyncError>> + '_ {
    let users = RunUsers::default();
    stream::try_unfold((Some(start), users), move |(cursor, mut users)| {
        let tally = Arc::clone(&tally);
        async move {
            let Some(cursor) = cursor else {
                return Ok(None);
            };
            let size = deps.settings.page_size;
            let mut page = deps
                .retrier
                .run(|| deps.conversations.list_created_after(&cursor, size))
                .await?;
            // The index's order is `created_at`'s: from the first conversation not yet settled on, none
            // is, and the page cut short is the last. The next run reads them.
            if let Some(unsettled) = page.iter().position(|c| c.created_at >= bound) {
                page.truncate(unsettled);
            }
            let next = match page.last() {
                Some(last) if page.len() >= size => Some(CreatedCursor::of(last)),
                Some(_) => None,
                None => return Ok(None),
            };
            tally
                .conversations_seen
                .fetch_add(page.len() as u64, Ordering::Relaxed);
            let resolved = users
                .resolve(page, &deps.keycloak, deps.settings.keycloak_batch, &tally)
                .await?;
            Ok(Some((resolved, (next, users))))
        }
    })
}

/// What a delivery task needs.
struct Delivery {
    client: Option<Arc<CommonRoomClient>>,
    public_url: String,
    tally: Arc<Tally>,
}

impl Delivery {
    /// Delivers one conversation: its user (once per run), then its activity. `Ok` once the
    /// conversation is finished, delivered or refused for good; `Err` when Common Room stayed
    /// unavailable after the retries.
    async fn deliver(
        self: Arc<Self>,
        conversation: Conversation,
        user: Arc<RunUser>,
    ) -> Result<Finished, SyncError> {
        let cursor = CreatedCursor::of(&conversation);
        let conversation_id = conversation.id.as_str();
        let person = match user.as_ref() {
            RunUser::Known { person, .. } => person,
            RunUser::Missing | RunUser::WithoutEmail => {
                self.tally
                    .conversations_skipped
                    .fetch_add(1, Ordering::Relaxed);
                return Ok(Finished { cursor });
            }
        };
        let activity = Activity::started_session(&conversation, person.clone(), &self.public_url);
        let Some(client) = &self.client else {
            tracing::info!(
                conversation_id,
                activity_id = activity.id,
                user_id = person.id,
                "dry run: would register the user (once) and the activity"
            );
            self.tally
                .activities_registered
                .fetch_add(1, Ordering::Relaxed);
            return Ok(Finished { cursor });
        };

        let (registration, first) = user.register(client).await?;
        if first && registration.is_ok() {
            self.tally.users_registered.fetch_add(1, Ordering::Relaxed);
        }
        let refused = match registration {
            Err(status) => Some(status),
            Ok(()) => match client.add_activity(&activity).await {
                Ok(()) => None,
                Err(error) if error.verdict() == Verdict::Permanent => error.status(),
                Err(error) => return Err(error.into()),
            },
        };
        match refused {
            None => {
                self.tally
                    .activities_registered
                    .fetch_add(1, Ordering::Relaxed);
            }
            Some(status) => {
                // Recorded against the conversation; the body is not logged (it may echo the user).
                tracing::warn!(
                    conversation_id,
                    status,
                    "Common Room refused the conversation for good"
                );
                self.tally
                    .permanent_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Finished { cursor })
    }
}

/// A spawned task that is aborted when dropped: a stopped run leaves nothing running behind it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<Result<T, SyncError>> {
    type Output = Result<T, SyncError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(|e| Err(SyncError::Task(e.to_string()))))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
