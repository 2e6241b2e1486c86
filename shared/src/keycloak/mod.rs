//! The Keycloak admin REST client: a client-credentials token (cached, refreshed ahead of expiry and
//! once on a 401), a user by id with its linked GitHub login, and bounded-concurrency lookups of many
//! users (Keycloak has no users-by-id-list call). A user that does not exist is `None`, not an error.
//! Every lookup is retried under the shared retry policy.

mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::config::{self, ConfigError};
use crate::http_client::{ErrorAnswer, is_transient_status};
use crate::retry::{Retrier, Retryable, Verdict};
use crate::secret::Secret;
use token::TokenCache;

#[derive(Debug, Clone)]
pub struct KeycloakConfig {
    /// `KEYCLOAK_SERVER_URL`: the server's root (Keycloak 17+ has no `/auth` prefix; include it if yours does).
    pub server_url: reqwest::Url,
    /// `KEYCLOAK_REALM_NAME`.
    pub realm: String,
    /// `KEYCLOAK_CLIENT_ID` / `KEYCLOAK_CLIENT_SECRET`: a confidential client with the realm-management
    /// `view-users` role.
    pub client_id: String,
    pub client_secret: Secret,
    /// `KEYCLOAK_GITHUB_IDP_ALIAS`: the alias of the realm's GitHub identity provider (`github`).
    pub github_idp_alias: String,
}

impl KeycloakConfig {
    /// The configuration from `KEYCLOAK_*`; `None` when `KEYCLOAK_SERVER_URL` is unset.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(server_url) = config::var("KEYCLOAK_SERVER_URL") else {
            return Ok(None);
        };
        Ok(Some(Self {
            server_url: reqwest::Url::parse(&server_url).map_err(|e| ConfigError::Invalid {
                name: "KEYCLOAK_SERVER_URL",
                reason: e.to_string(),
            })?,
            realm: config::required("KEYCLOAK_REALM_NAME")?,
            client_id: config::required("KEYCLOAK_CLIENT_ID")?,
            client_secret: Secret::new(config::required("KEYCLOAK_CLIENT_SECRET")?),
            github_idp_alias: config::var("KEYCLOAK_GITHUB_IDP_ALIAS")
                .unwrap_or_else(|| "github".into()),
        }))
    }

    /// The server URL with `segments` appended, each one escaped.
    fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.server_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }
}

/// What the sync needs of a Keycloak user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeycloakUser {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    /// The login of the user's linked GitHub identity, if any.
    pub github_login: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeycloakError {
    #[error("Keycloak unreachable: {0}")]
    Unavailable(String),
    #[error("Keycloak refused the client credentials: {0}")]
    Credentials(String),
    #[error("Keycloak answered {status}: {body}")]
    Status {
        status: u16,
        body: String,
        /// The server's wait hint, if it gave one.
        wait: Option<Duration>,
    },
    #[error("unexpected Keycloak answer: {0}")]
    Decode(String),
}

impl KeycloakError {
    fn transport(error: reqwest::Error) -> Self {
        // Without the URL: it would only repeat the configuration.
        Self::Unavailable(error.without_url().to_string())
    }
}

impl From<ErrorAnswer> for KeycloakError {
    fn from(answer: ErrorAnswer) -> Self {
        Self::Status {
            status: answer.status,
            body: answer.body,
            wait: answer.wait,
        }
    }
}

impl Retryable for KeycloakError {
    fn verdict(&self) -> Verdict {
        match self {
            Self::Unavailable(_) => Verdict::Transient { wait: None },
            Self::Status { status, wait, .. } if is_transient_status(*status) => {
                Verdict::Transient { wait: *wait }
            }
            _ => Verdict::Permanent,
        }
    }
}

#[derive(Deserialize)]
struct UserRepresentation {
    id: String,
    username: String,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FederatedIdentity {
    identity_provider: String,
    user_name: String,
}

#[derive(Deserialize)]
struct UserId {
    id: String,
}

pub struct KeycloakClient {
    http: reqwest::Client,
    config: KeycloakConfig,
    token: TokenCache,
    retrier: Arc<Retrier>,
}

impl KeycloakClient {
    pub fn new(http: reqwest::Client, config: KeycloakConfig, retrier: Arc<Retrier>) -> Self {
        Self {
            http,
            config,
            token: TokenCache::default(),
            retrier,
        }
    }

    /// A user by id with its GitHub login; `None` when Keycloak has no such user.
    pub async fn user(&self, id: &str) -> Result<Option<KeycloakUser>, KeycloakError> {
        self.retrier.run(|| self.user_once(id)).await
    }

    /// Looks `ids` up with at most `concurrency` requests in flight; a missing user maps to `None`.
    /// Fails when any lookup still fails after its retries.
    pub async fn users(
        &self,
        ids: impl IntoIterator<Item = String>,
        concurrency: usize,
    ) -> Result<HashMap<String, Option<KeycloakUser>>, KeycloakError> {
        stream::iter(ids)
            .map(|id| async move {
                let user = self.user(&id).await?;
                Ok::<_, KeycloakError>((id, user))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await
    }

    /// The id of the user linked to the GitHub account `github_user_id` through the realm's GitHub
    /// identity provider; `None` when no user is.
    pub async fn user_linked_to_github(
        &self,
        github_user_id: u64,
    ) -> Result<Option<String>, KeycloakError> {
        let realm = self.config.realm.as_str();
        let account = github_user_id.to_string();
        let query = [
            ("idpAlias", self.config.github_idp_alias.as_str()),
            ("idpUserId", account.as_str()),
            ("exact", "true"),
            ("briefRepresentation", "true"),
            ("max", "2"),
        ];
        let path = ["admin", "realms", realm, "users"];
        let found = self
            .retrier
            .run(|| self.get_json::<Vec<UserId>>(&path, &query))
            .await?
            .unwrap_or_default();
        Ok(found.into_iter().next().map(|user| user.id))
    }

    async fn user_once(&self, id: &str) -> Result<Option<KeycloakUser>, KeycloakError> {
        let realm = self.config.realm.as_str();
        let Some(user) = self
            .get_json::<UserRepresentation>(&["admin", "realms", realm, "users", id], &[])
            .await?
        else {
            return Ok(None);
        };
        let identities = self
            .get_json::<Vec<FederatedIdentity>>(
                &["admin", "realms", realm, "users", id, "federated-identity"],
                &[],
            )
            .await?
            .unwrap_or_default();
        let github_login = identities
            .into_iter()
            .find(|identity| {
                identity
                    .identity_provider
                    .eq_ignore_ascii_case(&self.config.github_idp_alias)
            })
            .map(|identity| identity.user_name);
        Ok(Some(KeycloakUser {
            id: user.id,
            username: user.username,
            email: user.email.filter(|e| !e.trim().is_empty()),
            github_login,
        }))
    }

    /// An authorised GET; `None` on 404. A 401 refreshes the token and tries once more.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Option<T>, KeycloakError> {
        let mut url = self.config.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut refused = None;
        loop {
            let token = self
                .token
                .get(&self.http, &self.config, refused.as_ref())
                .await?;
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(token.expose())
                .send()
                .await
                .map_err(KeycloakError::transport)?;
            match response.status() {
                StatusCode::UNAUTHORIZED if refused.is_none() => refused = Some(token),
                StatusCode::NOT_FOUND => return Ok(None),
                status if status.is_success() => {
                    return response
                        .json()
                        .await
                        .map(Some)
                        .map_err(|e| KeycloakError::Decode(e.without_url().to_string()));
                }
                _ => return Err(ErrorAnswer::read(response).await.into()),
            }
        }
    }
}
