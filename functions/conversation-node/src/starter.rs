//! The proactive starter: for a `ProactiveConversationRequested` trigger, create the conversation (its
//! id derived from the trigger id, so a redelivery finds the same one) with a first message asking the
//! agent to fix the failing workflows and holding the evidence (each failed run's failed jobs and steps,
//! and the tail of each failed job's log, from GitHub), then create or edit the one PR comment that
//! links it. Called by
//! `POST /internal/proactive` and, in the local stack, by the in-process bus subscriber (through
//! `NodeHandle::start_proactive`).

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::future::join_all;
use shared::domain::trigger::FailedRun;
use shared::domain::user_action::MAX_MESSAGE_BYTES;
use shared::domain::{
    AgentState, Checkout, Conversation, ConversationId, ConversationStatus, Outcome,
    ProactiveConversationRequested, UserAction,
};
use shared::github::{CommentOutcome, FailedJob, GitHubClient, GitHubError, RepoRef};
use shared::ports::{CommentClaim, ConversationStore, ProactiveStore, StoreError};

use crate::lifecycle::{Created, Lifecycle, LifecycleError, Started};

/// What the starter needs: the conversations (to find a redelivery's), the lifecycle (to create and
/// start), and GitHub with the address users open conversations at, and the claims that keep the PR
/// comment one (for the PR comment).
pub(crate) struct Starter {
    pub lifecycle: Arc<Lifecycle>,
    pub conversations: Arc<dyn ConversationStore>,
    /// `None`: no PR comment.
    pub github: Option<GitHubClient>,
    pub public_url: String,
    pub comments: Arc<dyn ProactiveStore>,
}

/// How long a starter that claimed a PR's comment may take to create it before another may.
const COMMENT_CLAIM: Duration = Duration::from_secs(60);
/// How long a starter waits for another one creating the PR's comment, and how often it looks.
const COMMENT_WAIT: Duration = Duration::from_secs(20);
const COMMENT_POLL: Duration = Duration::from_millis(250);

/// How many of a user's newest conversations are searched for the PR's running one.
const RECENT_CONVERSATIONS: usize = 50;
/// Per failed run, how many failed jobs the first message quotes the log of.
const JOBS_PER_RUN: usize = 3;
/// The lines of a failed job's log the first message quotes (its end: where the failure is).
const LOG_TAIL_LINES: usize = 200;
/// What the logs may take of the first message in all, leaving room for the rest of it.
const EVIDENCE_BYTES: usize = MAX_MESSAGE_BYTES - 8 * 1024;

/// The hidden marker the PR comment is found by.
pub(crate) const COMMENT_MARKER: &str = "<!-- proactive-conversation -->";
pub(crate) const COMMENT_HEADING: &str =
    "Looks like there are a few issues preventing this PR from being merged!";

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterOutcome {
    pub conversation_id: ConversationId,
    /// `false` when the trigger's conversation existed already (a redelivery), or when the trigger
    /// went into the PR's running conversation.
    pub created: bool,
    /// The trigger went into the PR's running conversation (`conversation_id`) as a message.
    pub followed: bool,
    /// `None` when no GitHub client is configured.
    pub comment: Option<CommentOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum StarterError {
    #[error("the user runs too many conversations")]
    LimitReached,
    #[error("GitHub: {0}")]
    GitHub(#[from] GitHubError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("another delivery of the trigger is still creating the PR comment: retry")]
    CommentBusy,
}

impl From<StoreError> for StarterError {
    fn from(error: StoreError) -> Self {
        Self::Lifecycle(error.into())
    }
}

/// The request's opening paragraph: which PR, which branch, which runs, and what to do.
fn first_paragraph(request: &ProactiveConversationRequested) -> String {
    let names: Vec<&str> = request
        .failed_runs
        .iter()
        .map(|run| run.name.as_str())
        .collect();
    format!(
        "Please fix the failing workflows on PR #{number} at branch `{branch}` (commit {commit}) of \
         {owner}/{name}: {runs}. Find out why they fail from the evidence below and fix the code in \
         the workspace (a checkout of that commit), then say what you changed.",
        number = request.pull_request.number,
        branch = request.pull_request.head_branch,
        commit = request.pull_request.head_sha.as_str(),
        owner = request.repository.owner,
        name = request.repository.name,
        runs = names.join(", "),
    )
}

/// The first message: the request, then per failed run its failed jobs, their failed steps and the
/// tail of their logs. What GitHub cannot give is said, and the message goes without it. The calls run
/// concurrently (the runs' job lists, then the logs): the starter answers within EventBridge's 5 s.
async fn first_message(
    github: Option<&GitHubClient>,
    request: &ProactiveConversationRequested,
) -> String {
    let mut message = first_paragraph(request);
    let Some(github) = github else {
        return message;
    };
    let repo = RepoRef {
        owner: &request.repository.owner,
        name: &request.repository.name,
        installation_id: request.installation_id,
    };
    let listed = join_all(
        request
            .failed_runs
            .iter()
            .map(|run| github.failed_jobs(repo, run.id)),
    )
    .await;
    let quoted = |jobs: &Result<Vec<FailedJob>, GitHubError>| -> Vec<u64> {
        jobs.iter()
            .flatten()
            .take(JOBS_PER_RUN)
            .map(|job| job.id)
            .collect()
    };
    let logs = join_all(
        listed
            .iter()
            .flat_map(quoted)
            .map(|job| github.job_log_tail(repo, job, LOG_TAIL_LINES)),
    )
    .await;
    // The logs share the evidence's room evenly, each keeping its end.
    let share = EVIDENCE_BYTES / logs.len().max(1);
    let mut logs = logs.into_iter();
    for (run, jobs) in request.failed_runs.iter().zip(listed) {
        let _ = write!(
            message,
            "\n\n## {} ({})\n{}",
            run.name, run.conclusion, run.url
        );
        let jobs = match jobs {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(run_id = run.id, reason = %error, "the failed jobs could not be read");
                let _ = write!(message, "\n(GitHub did not list its jobs: {error})");
                continue;
            }
        };
        for job in jobs.iter().take(JOBS_PER_RUN) {
            let _ = write!(message, "\n\n### Job `{}`", job.name);
            if !job.failed_steps.is_empty() {
                let _ = write!(message, ", failed at: {}", job.failed_steps.join(", "));
            }
            if let Some(log) = logs.next() {
                write_log(&mut message, log, share);
            }
        }
        if jobs.len() > JOBS_PER_RUN {
            let _ = write!(
                message,
                "\n\n({} more failed jobs)",
                jobs.len() - JOBS_PER_RUN
            );
        }
    }
    message
}

/// Appends a job's log tail, at most `share` bytes of its end, or why there is none.
fn write_log(message: &mut String, log: Result<String, GitHubError>, share: usize) {
    match log {
        Ok(log) => {
            let tail = last_bytes(&log, share);
            let fence = fence_for(tail);
            let _ = write!(message, "\n\nThe end of its log:\n{fence}\n{tail}\n{fence}");
        }
        Err(error) => {
            tracing::warn!(reason = %error, "a failed job's log could not be read");
            let _ = write!(message, "\n(GitHub did not give its log: {error})");
        }
    }
}

/// The end of `text` in at most `max` bytes, starting at a line when it is cut.
fn last_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    cut.split_once('\n').map_or(cut, |(_, rest)| rest)
}

/// A code fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// The PR comment once a re-run turned the commit green.
pub(crate) fn green_comment_body(public_url: &str, commit: &str, conversation: &str) -> String {
    format!(
        "The failing workflows pass now at commit {commit} after a re-run.\n\n\
         The conversation that was fixing them: {public_url}/conversations/{conversation}\n\n\
         <sub>Proactive conversations can be turned off in your settings: {public_url}/settings</sub>\n\n\
         {COMMENT_MARKER}"
    )
}

/// The PR comment: the failed runs, the conversation, and where to turn these conversations off.
pub(crate) fn comment_body(failed: &[FailedRun], public_url: &str, conversation: &str) -> String {
    let mut body = format!("{COMMENT_HEADING}\n\n");
    for run in failed {
        let _ = writeln!(body, "- [{}]({}) ({})", run.name, run.url, run.conclusion);
    }
    let _ = write!(
        body,
        "\nI've started a conversation to fix them: {public_url}/conversations/{conversation}\n\n\
         <sub>Proactive conversations can be turned off in your settings: {public_url}/settings</sub>\n\n\
         {COMMENT_MARKER}"
    );
    body
}

impl Starter {
    pub(crate) async fn start(
        &self,
        request: &ProactiveConversationRequested,
    ) -> Result<StarterOutcome, StarterError> {
        let own = ConversationId::for_trigger(&request.trigger_id);
        let existing = self.conversations.get_conversation(&own).await?;
        if request.outcome == Outcome::Green {
            return self.all_green(request, existing.as_ref()).await;
        }
        // Where a failure goes besides a conversation of its own: the trigger's after a re-run went
        // green (restarted if it had stopped), or the PR's running one (one per PR: the agent's own
        // fix going red, say); a redelivered trigger goes nowhere new.
        let into = match &existing {
            Some(_) if request.sequence == 0 => None,
            Some(_) => Some(own.clone()),
            None => self.running_for_pull_request(request).await?,
        };
        let (id, created, followed) = match (existing, into) {
            (_, Some(conversation)) => {
                let message = first_message(self.github.as_ref(), request).await;
                self.deliver_once(&conversation, request, &message).await?;
                (conversation, false, true)
            }
            (Some(_), None) => (own, false, false),
            (None, None) => {
                let created = self.create(request, &own).await?;
                (own, created, false)
            }
        };
        tracing::info!(conversation_id = %id, trigger_id = %request.trigger_id, created, followed, "proactive conversation");
        let comment = match &self.github {
            None => {
                tracing::warn!(trigger_id = %request.trigger_id, "no GitHub client configured: PR comment skipped");
                None
            }
            Some(github) => {
                let body = comment_body(&request.failed_runs, &self.public_url, id.as_str());
                Some(self.comment(github, request, &body).await?)
            }
        };
        Ok(StarterOutcome {
            conversation_id: id,
            created,
            followed,
            comment,
        })
    }

    /// Creates the trigger's conversation `id` with its first message; whether it was new.
    async fn create(
        &self,
        request: &ProactiveConversationRequested,
        id: &ConversationId,
    ) -> Result<bool, StarterError> {
        // Stamped again at the write (`create_conversation_now`), after the GitHub calls below.
        let now = Utc::now();
        let repository = request.repository.full_name();
        let meta = Conversation {
            id: id.clone(),
            user_id: request.user_id.clone(),
            title: Some(format!(
                "Fix failing workflows on PR #{}",
                request.pull_request.number
            )),
            created_at: now,
            last_updated_at: now,
            status: ConversationStatus::Running,
            agent_state: AgentState::Loading,
            trigger_id: Some(request.trigger_id.clone()),
            repository: Some(repository.clone()),
            checkout: Some(Checkout {
                repository,
                commit: request.pull_request.head_sha.clone(),
                pull_request: request.pull_request.number,
                installation_id: request.installation_id,
            }),
            confirmation_mode: false,
            model: None,
            remote_agent: None,
        };
        let message = first_message(self.github.as_ref(), request).await;
        let message = UserAction::message(&message);
        match self.lifecycle.create(meta, Some(message)).await? {
            Created::Started => Ok(true),
            Created::Exists => Ok(false),
            Created::LimitReached => Err(StarterError::LimitReached),
        }
    }

    /// Hands `conversation` the request's news as a user message, once per (trigger, sequence)
    /// however often the request is delivered.
    async fn deliver_once(
        &self,
        conversation: &ConversationId,
        request: &ProactiveConversationRequested,
        message: &str,
    ) -> Result<(), StarterError> {
        let retry_key = format!("{}#{}", request.trigger_id, request.sequence);
        let delivered = self
            .lifecycle
            .deliver(
                conversation,
                &request.user_id,
                UserAction::message(message),
                Some(&retry_key),
            )
            .await?;
        if delivered == Started::LimitReached {
            return Err(StarterError::LimitReached);
        }
        Ok(())
    }

    /// A re-run turned the triggered commit green: its running conversation is told, and the PR
    /// comment says so. Nothing starts.
    async fn all_green(
        &self,
        request: &ProactiveConversationRequested,
        existing: Option<&Conversation>,
    ) -> Result<StarterOutcome, StarterError> {
        let told = match existing {
            Some(conversation) if conversation.status == ConversationStatus::Running => {
                Some(conversation.id.clone())
            }
            Some(_) => None,
            None => self.running_for_pull_request(request).await?,
        };
        let commit = request.pull_request.head_sha.as_str();
        if let Some(conversation) = &told {
            let message = format!(
                "The workflows of PR #{} pass now at commit {commit}: a re-run went green. Nothing is \
                 left to fix for them unless I ask for more.",
                request.pull_request.number
            );
            self.deliver_once(conversation, request, &message).await?;
        }
        let conversation_id =
            told.unwrap_or_else(|| ConversationId::for_trigger(&request.trigger_id));
        let comment = match &self.github {
            Some(github) => {
                let body = green_comment_body(&self.public_url, commit, conversation_id.as_str());
                Some(self.comment(github, request, &body).await?)
            }
            None => None,
        };
        Ok(StarterOutcome {
            conversation_id,
            created: false,
            followed: true,
            comment,
        })
    }

    /// The running proactive conversation of the request's pull request, started by an earlier
    /// trigger (a user runs few conversations: their newest are read).
    async fn running_for_pull_request(
        &self,
        request: &ProactiveConversationRequested,
    ) -> Result<Option<ConversationId>, StoreError> {
        let repository = request.repository.full_name();
        let conversations = self
            .conversations
            .list_user_conversations(&request.user_id, RECENT_CONVERSATIONS)
            .await?;
        Ok(conversations
            .into_iter()
            .find(|conversation| {
                conversation.status == ConversationStatus::Running
                    && conversation.trigger_id.is_some()
                    && conversation.checkout.as_ref().is_some_and(|checkout| {
                        checkout.pull_request == request.pull_request.number
                            && checkout.repository.eq_ignore_ascii_case(&repository)
                    })
            })
            .map(|conversation| conversation.id))
    }

    /// Creates the PR's one comment, or edits it. Concurrent starters (an API destination retries a
    /// call still running after 5 s) claim its creation first: one creates, the others wait for its
    /// id and edit; a claim whose holder died lapses.
    async fn comment(
        &self,
        github: &GitHubClient,
        request: &ProactiveConversationRequested,
        body: &str,
    ) -> Result<CommentOutcome, StarterError> {
        let repo = RepoRef {
            owner: &request.repository.owner,
            name: &request.repository.name,
            installation_id: request.installation_id,
        };
        let (repo_id, pr) = (&request.repository.id, request.pull_request.number);
        let deadline = tokio::time::Instant::now() + COMMENT_WAIT;
        loop {
            let until = Utc::now() + COMMENT_CLAIM;
            match self.comments.claim_pr_comment(repo_id, pr, until).await? {
                CommentClaim::Recorded(id) => match github.edit_comment(repo, id, body).await {
                    Ok(()) => return Ok(CommentOutcome::Updated { id }),
                    // Deleted on GitHub: made again below.
                    Err(GitHubError::Status { status: 404, .. }) => {}
                    Err(error) => return Err(error.into()),
                },
                CommentClaim::Taken if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(COMMENT_POLL).await;
                    continue;
                }
                CommentClaim::Taken => return Err(StarterError::CommentBusy),
                CommentClaim::Won => {}
            }
            // Found by its marker when an earlier holder created it without recording it.
            let outcome = match github
                .upsert_pr_comment(repo, pr, COMMENT_MARKER, body)
                .await
            {
                Ok(outcome) => outcome,
                Err(error) => {
                    // The caller's retry (or another delivery) claims it again at once.
                    if let Err(release) = self.comments.release_pr_comment(repo_id, pr).await {
                        tracing::warn!(reason = %release, "cannot release the PR comment's claim");
                    }
                    return Err(error.into());
                }
            };
            self.comments
                .record_pr_comment(repo_id, pr, outcome.id())
                .await?;
            return Ok(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_log_keeps_its_end_from_a_line_start() {
        let log = "first line\nsecond line\nthird line";
        assert_eq!(last_bytes(log, 100), log);
        assert_eq!(last_bytes(log, 15), "third line");
        assert_eq!(last_bytes("ééé\néé", 5), "éé");
    }

    #[test]
    fn the_fence_is_longer_than_any_backticks_in_the_log() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```rust block``` inside"), "````");
        assert_eq!(fence_for("`````"), "``````");
    }

    #[test]
    fn logs_share_the_budget_and_land_under_their_job() {
        let share = EVIDENCE_BYTES / 2;
        let big = "x\n".repeat(EVIDENCE_BYTES);
        let mut out = "intro\n### Job `a`".to_owned();
        write_log(&mut out, Ok(big), share);
        out.push_str("\n### Job `b`");
        write_log(
            &mut out,
            Err(GitHubError::Unavailable("down".into())),
            share,
        );
        let a = out.find("### Job `a`").unwrap();
        let b = out.find("### Job `b`").unwrap();
        let log_a = out.find("The end of its log").unwrap();
        assert!(a < log_a && log_a < b, "{}", &out[..200]);
        assert!(out[b..].contains("GitHub did not give its log: GitHub unreachable: down"));
        assert!(out.len() < EVIDENCE_BYTES / 2 + 200, "{} bytes", out.len());
    }
}
