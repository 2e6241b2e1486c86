//! Where proactive conversations are wanted: `GET`/`PATCH /api/settings` (the caller's own choice) and
//! `PATCH /api/repositories/{owner}/{name}/settings` (a repository's, for admins of it on GitHub).
//! The webhook reads both before it decides a trigger.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::domain::UserSettings;
use shared::github::{GitHubClient, RepoRef};
use shared::ports::ProactiveStore;
use shared::proactive::AccountLinks;
use std::sync::Arc;

use super::Api;
use super::conversations::Caller;
use crate::error::{ApiError, ApiJson, ApiPath};

/// What the settings routes need: the store both settings live in, the links to users' GitHub
/// accounts and GitHub itself (whose permission decides a repository's), and the default.
pub(crate) struct SettingsContext {
    pub store: Arc<dyn ProactiveStore>,
    pub links: AccountLinks,
    pub github: Option<GitHubClient>,
    /// `PROACTIVE_DEFAULT`: what a user who never chose gets.
    pub proactive_default: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProactiveChoice {
    proactive_conversations: bool,
}

pub(crate) async fn get(State(api): State<Api>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let settings = &api.settings;
    let stored = settings.store.get_user_settings(&caller.user_id).await?;
    Ok(Json(view(settings, &stored)))
}

pub(crate) async fn update(
    State(api): State<Api>,
    caller: Caller,
    ApiJson(choice): ApiJson<ProactiveChoice>,
) -> Result<Json<Value>, ApiError> {
    let settings = &api.settings;
    let chosen = UserSettings {
        proactive_conversations: Some(choice.proactive_conversations),
    };
    settings
        .store
        .put_user_settings(&caller.user_id, &chosen)
        .await?;
    Ok(Json(view(settings, &chosen)))
}

fn view(settings: &SettingsContext, stored: &UserSettings) -> Value {
    json!({
        "proactive_conversations": stored
            .proactive_conversations
            .unwrap_or(settings.proactive_default),
    })
}

pub(crate) async fn update_repository(
    State(api): State<Api>,
    caller: Caller,
    ApiPath((owner, name)): ApiPath<(String, String)>,
    ApiJson(choice): ApiJson<ProactiveChoice>,
) -> Result<Json<Value>, ApiError> {
    let settings = &api.settings;
    let not_registered = ApiError::NotFound(
        "the repository is not registered (the GitHub App is not installed on it)",
    );
    let Some(id) = settings.store.get_repo_id(&owner, &name).await? else {
        return Err(not_registered);
    };
    let Some(mut repository) = settings.store.get_repository(&id).await? else {
        return Err(not_registered);
    };
    let login = settings
        .links
        .github_login_of(&caller.user_id)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?
        .ok_or_else(|| {
            ApiError::Forbidden("your account is not linked to a GitHub account".into())
        })?;
    let github = settings
        .github
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no GitHub client is configured".into()))?;
    let permission = github
        .collaborator_permission(RepoRef::from(&repository), &login)
        .await
        .map_err(|error| ApiError::BadGateway(format!("GitHub: {error}")))?;
    if !permission.is_admin() {
        return Err(ApiError::Forbidden(format!(
            "changing the settings of {} needs admin permission on it; `{login}` has {permission:?}",
            repository.full_name()
        )));
    }
    repository.proactive_enabled = choice.proactive_conversations;
    settings.store.put_repository(&repository).await?;
    tracing::info!(repository = %repository.full_name(), enabled = repository.proactive_enabled, "repository setting changed");
    Ok(Json(json!({
        "repository": repository.full_name(),
        "proactive_conversations": repository.proactive_enabled,
    })))
}
