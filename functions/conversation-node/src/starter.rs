//! The proactive starter: for a `ProactiveConversationRequested` trigger, create the conversation (its
//! id derived from the trigger id, so a redelivery finds the same one) with a first message asking the
//! agent to fix the failing workflows, then create or edit the one PR comment that links it. Called by
//! `POST /internal/proactive` and, in the local stack, by the in-process bus subscriber (through
//! `NodeHandle::start_proactive`).

use std::fmt::Write;
use std::sync::Arc;

use chrono::Utc;
use shared::domain::trigger::FailedRun;
use shared::domain::{
    AgentState, Conversation, ConversationId, ConversationStatus, ProactiveConversationRequested,
    UserAction,
};
use shared::github::{CommentOutcome, GitHubClient, GitHubError, RepoRef};
use shared::ports::{ConversationStore, StoreError};

use crate::lifecycle::{Created, Lifecycle, LifecycleError};

/// What the starter needs: the conversations (to find a redelivery's), the lifecycle (to create and
/// start), and GitHub with the address users open conversations at (for the PR comment).
pub(crate) struct Starter {
    pub lifecycle: Arc<Lifecycle>,
    pub conversations: Arc<dyn ConversationStore>,
    /// `None`: no PR comment.
    pub github: Option<GitHubClient>,
    pub public_url: String,
}

/// The hidden marker the PR comment is found by.
pub(crate) const COMMENT_MARKER: &str = "<!-- proactive-conversation -->";
pub(crate) const COMMENT_HEADING: &str =
    "Looks like there are a few issues preventing this PR from being merged!";

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterOutcome {
    pub conversation_id: ConversationId,
    /// `false` when the trigger's conversation existed already (a redelivery).
    pub created: bool,
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
}

impl From<StoreError> for StarterError {
    fn from(error: StoreError) -> Self {
        Self::Lifecycle(error.into())
    }
}

pub(crate) fn first_message(request: &ProactiveConversationRequested) -> String {
    let names: Vec<&str> = request
        .failed_runs
        .iter()
        .map(|run| run.name.as_str())
        .collect();
    format!(
        "Please fix the failing workflows on PR #{number} at branch `{branch}` of {owner}/{name}: {runs}. \
         Find out why they fail, fix the code, and push the fix to the branch.",
        number = request.pull_request.number,
        branch = request.pull_request.head_branch,
        owner = request.repository.owner,
        name = request.repository.name,
        runs = names.join(", "),
    )
}

pub(crate) fn comment_body(failed: &[FailedRun], conversation_url: &str) -> String {
    let mut body = format!("{COMMENT_HEADING}\n\n");
    for run in failed {
        let _ = writeln!(body, "- [{}]({}) ({})", run.name, run.url, run.conclusion);
    }
    let _ = write!(
        body,
        "\nI've started a conversation to fix them: {conversation_url}\n\n{COMMENT_MARKER}"
    );
    body
}

impl Starter {
    pub(crate) async fn start(
        &self,
        request: &ProactiveConversationRequested,
    ) -> Result<StarterOutcome, StarterError> {
        let id = ConversationId::for_trigger(&request.trigger_id);
        let created = match self.conversations.get_conversation(&id).await? {
            Some(_) => false,
            None => {
                let now = Utc::now();
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
                    repository: Some(format!(
                        "{}/{}",
                        request.repository.owner, request.repository.name
                    )),
                };
                let message = UserAction::message(&first_message(request));
                match self.lifecycle.create(meta, Some(message)).await? {
                    Created::Started => true,
                    Created::Exists => false,
                    Created::LimitReached => return Err(StarterError::LimitReached),
                }
            }
        };
        tracing::info!(conversation_id = %id, trigger_id = %request.trigger_id, created, "proactive conversation");
        let comment = match &self.github {
            None => {
                tracing::warn!(trigger_id = %request.trigger_id, "no GitHub client configured: PR comment skipped");
                None
            }
            Some(github) => {
                let repo = RepoRef {
                    owner: &request.repository.owner,
                    name: &request.repository.name,
                    installation_id: request.installation_id,
                };
                let url = format!("{}/conversations/{id}", self.public_url);
                let body = comment_body(&request.failed_runs, &url);
                let outcome = github
                    .upsert_pr_comment(repo, request.pull_request.number, COMMENT_MARKER, &body)
                    .await?;
                Some(outcome)
            }
        };
        Ok(StarterOutcome {
            conversation_id: id,
            created,
            comment,
        })
    }
}
