//! `installation` and `installation_repositories`: keeping the repository registry in step with where
//! the GitHub App is installed.

use http::StatusCode;
use serde_json::json;
use tracing::warn;

use crate::answer::WebhookAnswer;
use crate::payload::{
    Account, Installation, InstallationEvent, InstallationRepositoriesEvent, InstallationRepository,
};
use crate::service::WebhookService;
use shared::domain::{RepoId, Repository, UserId};
use shared::ports::StoreError;

pub(crate) async fn on_installation(
    service: &WebhookService,
    event: InstallationEvent,
) -> WebhookAnswer {
    let outcome = match event.action.as_str() {
        "created" | "unsuspend" => {
            register(
                service,
                &event.installation,
                &event.sender,
                &event.repositories,
            )
            .await
        }
        "deleted" | "suspend" => remove(service, &event.repositories).await,
        other => {
            return WebhookAnswer::ignored(format!("installation action `{other}` is not used"));
        }
    };
    answer("installation", &event.action, outcome)
}

pub(crate) async fn on_installation_repositories(
    service: &WebhookService,
    event: InstallationRepositoriesEvent,
) -> WebhookAnswer {
    let outcome = match event.action.as_str() {
        "added" => {
            register(
                service,
                &event.installation,
                &event.sender,
                &event.repositories_added,
            )
            .await
        }
        "removed" => remove(service, &event.repositories_removed).await,
        other => {
            return WebhookAnswer::ignored(format!(
                "installation_repositories action `{other}` is not used"
            ));
        }
    };
    answer("installation_repositories", &event.action, outcome)
}

/// Registers each repository for the installation, keeping a repository's own `proactive_enabled` flag.
async fn register(
    service: &WebhookService,
    installation: &Installation,
    installer: &Account,
    repositories: &[InstallationRepository],
) -> Result<usize, StoreError> {
    for listed in repositories {
        let id = RepoId::from_github(listed.id);
        let proactive_enabled = service
            .store
            .get_repository(&id)
            .await?
            .is_none_or(|known| known.proactive_enabled);
        let (owner, name) = listed
            .full_name
            .split_once('/')
            .unwrap_or((&installation.account.login, &listed.name));
        let repository = Repository {
            id,
            owner: owner.to_owned(),
            name: name.to_owned(),
            installation_id: Some(installation.id),
            account: installation.account.login.clone(),
            // The product user is the GitHub account that installed the App.
            user_id: UserId::from_github(installer.id),
            proactive_enabled,
        };
        service.store.put_repository(&repository).await?;
    }
    Ok(repositories.len())
}

async fn remove(
    service: &WebhookService,
    repositories: &[InstallationRepository],
) -> Result<usize, StoreError> {
    for listed in repositories {
        service
            .store
            .remove_repository(&RepoId::from_github(listed.id))
            .await?;
    }
    Ok(repositories.len())
}

fn answer(event: &str, action: &str, outcome: Result<usize, StoreError>) -> WebhookAnswer {
    match outcome {
        Ok(repositories) => WebhookAnswer::new(
            StatusCode::ACCEPTED,
            json!({ "event": event, "action": action, "repositories": repositories }),
        ),
        Err(error) => {
            warn!(%error, "registry update failed");
            WebhookAnswer::unavailable("store")
        }
    }
}
