//! `workflow_run`: the gates a run must pass, then the trigger decision per pull request, then the
//! publish of a decided trigger.

use http::StatusCode;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::answer::WebhookAnswer;
use crate::names;
use crate::payload::WorkflowRunEvent;
use crate::service::WebhookService;
use crate::settings::BotRuns;
use shared::domain::{GroupKey, HeadSha, OutboxEntry, Repository, UserId, WorkflowRun};
use shared::github::{ApiActor, GitHubError, PullRequest, RepoRef};
use shared::proactive::{
    Decision, DecisionError, GitHubAccount, PublishError, RunDelivery, publish_trigger,
    store_workflow_information,
};

/// Why a gate stopped a delivery (202 ignored), why the payload is refused (400), or what failed
/// underneath (503).
enum Stop {
    Ignored(String),
    /// Ignored for a reason with a code of its own (`bot_actor`).
    Skipped {
        code: &'static str,
        reason: String,
    },
    Invalid(String),
    /// A service the answer depends on failed: 503, logged once where the answer is made.
    Unavailable {
        service: &'static str,
        reason: String,
    },
    /// The trigger is decided and kept in the outbox, but the bus refused it: 503, re-published later.
    PublishFailed(String),
}

impl From<GitHubError> for Stop {
    fn from(error: GitHubError) -> Self {
        Stop::Unavailable {
            service: "GitHub",
            reason: error.to_string(),
        }
    }
}

impl From<shared::ports::StoreError> for Stop {
    fn from(error: shared::ports::StoreError) -> Self {
        Stop::Unavailable {
            service: "store",
            reason: error.to_string(),
        }
    }
}

pub(crate) async fn on_workflow_run(
    service: &WebhookService,
    event: WorkflowRunEvent,
) -> WebhookAnswer {
    match handle(service, &event).await {
        Ok(answer) => answer,
        Err(Stop::Ignored(reason)) => WebhookAnswer::ignored(reason),
        Err(Stop::Skipped { code, reason }) => WebhookAnswer::skipped(code, reason),
        Err(Stop::Invalid(reason)) => WebhookAnswer::error(StatusCode::BAD_REQUEST, reason),
        Err(Stop::Unavailable { service, reason }) => {
            warn!(service, %reason, "a call the answer depends on failed");
            WebhookAnswer::unavailable(service)
        }
        Err(Stop::PublishFailed(trigger_id)) => WebhookAnswer::new(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "error": "event bus unavailable; the trigger is kept in the outbox and will be re-published",
                "trigger_id": trigger_id,
            }),
        ),
    }
}

async fn handle(service: &WebhookService, event: &WorkflowRunEvent) -> Result<WebhookAnswer, Stop> {
    let run = &event.workflow_run;
    let action = event.action.as_str();
    if !matches!(action, "requested" | "in_progress" | "completed") {
        return Err(Stop::Ignored(format!(
            "workflow_run action `{action}` is not used"
        )));
    }
    let head_sha = HeadSha::parse(&run.head_sha)
        .map_err(|_| Stop::Ignored("workflow_run.head_sha is not a commit id".into()))?;
    check_names(event)?;
    if !service.settings.proactive_enabled {
        return Err(Stop::Ignored("proactive conversations are disabled".into()));
    }
    let repository = registered_repository(service, event)
        .await?
        .with_installation(event.installation.as_ref().map(|i| i.id));
    let repo = RepoRef::from(&repository);
    // The person behind the run: its actor, or (no actor, or a bot's run under
    // `PROACTIVE_BOT_RUNS=author`) the pull request's author, known once the PR is.
    let actor = match run.triggering_actor.as_ref() {
        Some(actor) if !actor.is_bot() => Some(actor),
        // Before any permission check: GitHub answers 404 for a bot's collaborator permission.
        Some(actor) if service.settings.bot_runs == BotRuns::Skip => {
            return Err(bot("the run's actor", actor));
        }
        _ => None,
    };
    let owner = match actor {
        Some(actor) => Some(owner_of(service, repo, actor).await?),
        None => None,
    };
    let pull_requests = open_pull_requests_at(service, event, repo, &head_sha).await?;
    let Some(first) = pull_requests.first() else {
        return Err(Stop::Ignored(
            "no open pull request has this commit as its head".into(),
        ));
    };
    let owner = match owner {
        Some(owner) => owner,
        None => match first.author.as_ref() {
            None => return Err(Stop::Ignored("the pull request's author is unknown".into())),
            Some(author) if author.is_bot() => {
                return Err(bot("the pull request's author", author));
            }
            Some(author) => owner_of(service, repo, author).await?,
        },
    };

    let recorded = recorded_run(event);
    let mut summaries = Vec::with_capacity(pull_requests.len());
    for pull_request in pull_requests {
        let number = pull_request.number;
        let key = GroupKey {
            repo_id: repository.id.clone(),
            pr_number: number,
            head_sha: head_sha.clone(),
        };
        let delivery = RunDelivery {
            repository: &repository,
            owner: &owner,
            key,
            head_branch: &pull_request.head_ref,
            run: recorded.clone(),
        };
        let decision =
            store_workflow_information(service.store.as_ref(), &service.github, delivery)
                .await
                .map_err(|error| match error {
                    DecisionError::Store(error) => Stop::from(error),
                    DecisionError::GitHub(error) => Stop::from(error),
                    DecisionError::Contention(attempts) => Stop::Unavailable {
                        service: "store",
                        reason: format!("group write contention after {attempts} attempts"),
                    },
                })?;
        summaries.push(summary(service, number, decision).await?);
    }
    Ok(WebhookAnswer::new(
        StatusCode::ACCEPTED,
        json!({
            "event": "workflow_run",
            "repository": repository.full_name(),
            "head_sha": head_sha.as_str(),
            "run_id": run.id,
            "pull_requests": summaries,
        }),
    ))
}

/// The names the gates send to GitHub are names GitHub could have sent.
fn check_names(event: &WorkflowRunEvent) -> Result<(), Stop> {
    let run = &event.workflow_run;
    let actor = match &run.triggering_actor {
        Some(actor) => ("workflow_run.triggering_actor.login", actor.login.as_str()),
        None => ("sender.login", event.sender.login.as_str()),
    };
    let head_owner = run.head_repository.as_ref().map(|head| {
        (
            "workflow_run.head_repository.owner.login",
            head.owner.login.as_str(),
        )
    });
    for (field, login) in std::iter::once(actor).chain(head_owner) {
        if !names::is_login(login) {
            return Err(Stop::Invalid(format!(
                "field `{field}` is not a GitHub login"
            )));
        }
    }
    match run.head_branch.as_deref() {
        Some(branch) if !names::is_branch(branch) => Err(Stop::Invalid(
            "field `workflow_run.head_branch` is not a branch name".into(),
        )),
        _ => Ok(()),
    }
}

/// Gate: the repository is registered and its `proactive_enabled` flag is on.
async fn registered_repository(
    service: &WebhookService,
    event: &WorkflowRunEvent,
) -> Result<Repository, Stop> {
    let (owner, name) = (event.repository.owner(), event.repository.name.as_str());
    let Some(id) = service.store.get_repo_id(owner, name).await? else {
        return Err(Stop::Ignored(format!(
            "repository `{owner}/{name}` is not registered"
        )));
    };
    match service.store.get_repository(&id).await? {
        Some(repository) if repository.proactive_enabled => Ok(repository),
        Some(_) => Err(Stop::Ignored(
            "proactive conversations are disabled for this repository".into(),
        )),
        None => Err(Stop::Ignored(format!(
            "repository `{owner}/{name}` is not registered"
        ))),
    }
}

/// A bot behind the run (`whose` account it is): no conversation starts for it.
fn bot(whose: &str, account: &ApiActor) -> Stop {
    Stop::Skipped {
        code: "bot_actor",
        reason: format!(
            "{whose} `{}` is a bot: no conversation starts for it",
            account.login
        ),
    }
}

/// Gates on the person behind a run: write permission on the repository, a linked product user
/// (the owner of the conversation), who has proactive conversations on.
async fn owner_of(
    service: &WebhookService,
    repo: RepoRef<'_>,
    person: &ApiActor,
) -> Result<UserId, Stop> {
    if !service
        .github
        .collaborator_permission(repo, &person.login)
        .await?
        .can_write()
    {
        return Err(Stop::Ignored(format!(
            "actor `{}` has no write permission",
            person.login
        )));
    }
    let Some(id) = person.id else {
        return Err(Stop::Invalid(format!(
            "the account `{}` has no id",
            person.login
        )));
    };
    let account = GitHubAccount {
        id,
        login: &person.login,
    };
    let owner = service
        .links
        .user_for(account)
        .await
        .map_err(|error| Stop::Unavailable {
            service: "identity provider",
            reason: error.to_string(),
        })?;
    let Some(owner) = owner else {
        info!(
            skipped = "no_linked_user",
            "no product user is linked to the run's actor"
        );
        return Err(Stop::Skipped {
            code: "no_linked_user",
            reason: format!(
                "no product user is linked to the GitHub account `{}`",
                person.login
            ),
        });
    };
    let settings = service.store.get_user_settings(&owner).await?;
    if !settings
        .proactive_conversations
        .unwrap_or(service.settings.proactive_default)
    {
        return Err(Stop::Skipped {
            code: "proactive_off",
            reason: format!(
                "the user linked to `{}` has proactive conversations off",
                person.login
            ),
        });
    }
    Ok(owner)
}

/// Gate: the open pull requests whose current head is this commit.
/// `pull_requests[]` names them for same-repository PRs; fork PRs are looked up by head owner and branch.
async fn open_pull_requests_at(
    service: &WebhookService,
    event: &WorkflowRunEvent,
    repo: RepoRef<'_>,
    head_sha: &HeadSha,
) -> Result<Vec<PullRequest>, Stop> {
    let run = &event.workflow_run;
    let candidates = if run.pull_requests.is_empty() {
        let (Some(head_owner), Some(branch)) =
            (run.head_repository.as_ref(), run.head_branch.as_deref())
        else {
            return Ok(Vec::new());
        };
        service
            .github
            .open_pull_requests_by_head(repo, &head_owner.owner.login, branch)
            .await?
    } else {
        let mut found = Vec::with_capacity(run.pull_requests.len());
        for listed in &run.pull_requests {
            found.extend(service.github.pull_request(repo, listed.number).await?);
        }
        found
    };
    Ok(candidates
        .into_iter()
        .filter(|pr| pr.open && pr.head_sha.eq_ignore_ascii_case(head_sha.as_str()))
        .collect())
}

/// The run as the group records it: `requested`/`in_progress` deliveries are pending whatever they say.
fn recorded_run(event: &WorkflowRunEvent) -> WorkflowRun {
    let completed = event.action == "completed";
    event.workflow_run.clone().into_domain_as(completed)
}

/// One PR's line of the answer. A decided trigger (or follow-up) is published here; when that fails,
/// the entry stays in the outbox (the decision is durable) for the cleanup function to re-publish.
async fn summary(service: &WebhookService, number: u64, decision: Decision) -> Result<Value, Stop> {
    Ok(match decision {
        Decision::Triggered(entry) => {
            let trigger_id = publish(service, &entry).await?;
            info!(pr = number, trigger_id, "proactive conversation triggered");
            json!({ "number": number, "state": "triggered", "triggered": true, "trigger_id": trigger_id })
        }
        Decision::FollowUp(entry) => {
            let trigger_id = publish(service, &entry).await?;
            let (sequence, outcome) = (entry.event.sequence, entry.event.outcome);
            info!(
                pr = number,
                trigger_id,
                sequence,
                ?outcome,
                "the triggered commit's outcome changed"
            );
            json!({
                "number": number, "state": "triggered", "triggered": false,
                "trigger_id": trigger_id, "follow_up": sequence, "outcome": outcome,
            })
        }
        Decision::AlreadyTriggered => {
            json!({ "number": number, "state": "triggered", "triggered": false })
        }
        Decision::Collecting(tally) => json!({
            "number": number, "state": "collecting", "triggered": false,
            "runs": tally.total, "pending": tally.pending, "failed": tally.failed,
        }),
    })
}

/// Publishes a decided entry; its trigger id.
async fn publish(service: &WebhookService, entry: &OutboxEntry) -> Result<String, Stop> {
    let trigger_id = entry.event.trigger_id.to_string();
    match publish_trigger(service.store.as_ref(), service.bus.as_ref(), entry).await {
        Ok(()) => {}
        Err(PublishError::Bus(error)) => {
            warn!(%error, trigger_id, "trigger publish failed; left in the outbox");
            return Err(Stop::PublishFailed(trigger_id));
        }
        // Published; the lingering entry may be re-published once, which consumers drop by
        // (trigger id, sequence).
        Err(error @ PublishError::Clear(_)) => {
            warn!(%error, trigger_id, "outbox entry not cleared")
        }
    }
    Ok(trigger_id)
}
