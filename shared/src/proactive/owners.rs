//! Who a proactive conversation is for: the product user linked to the GitHub account behind a run,
//! and back, the GitHub account of a product user (whose permission on a repository decides whether
//! they may change its settings). Linked through Keycloak's identity-provider links, or, without
//! Keycloak (local runs), through `PROACTIVE_USERS=<github login>=<product user>,...` (`*` for every
//! account). Answers, found or not, are cached for `PROACTIVE_USER_CACHE_SECONDS` (300).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mini_moka::sync::Cache;

use crate::config::{self, ConfigError};
use crate::domain::{InvalidId, UserId};
use crate::keycloak::{KeycloakClient, KeycloakConfig, KeycloakError};
use crate::retry::{Retrier, RetryPolicy};

/// One call to the identity provider at most (a webhook delivery has 10 s in all).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Cached answers at most (each direction).
const CACHE_CAPACITY: u64 = 10_000;

/// A GitHub account as a webhook names it.
#[derive(Debug, Clone, Copy)]
pub struct GitHubAccount<'a> {
    pub id: u64,
    pub login: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(#[from] KeycloakError),
    #[error("the identity provider names a user id that is not one: {0}")]
    InvalidUser(#[from] InvalidId),
}

enum Source {
    Keycloak(Box<KeycloakClient>),
    /// `PROACTIVE_USERS`: lower-case login -> user, and the user of every other account (`*`).
    Configured {
        users: HashMap<String, UserId>,
        everyone: Option<UserId>,
    },
}

/// The links between GitHub accounts and product users.
#[derive(Clone)]
pub struct AccountLinks {
    source: Arc<Source>,
    users: Cache<u64, Option<UserId>>,
    logins: Cache<UserId, Option<String>>,
}

impl AccountLinks {
    /// Keycloak when `KEYCLOAK_SERVER_URL` is set, else `PROACTIVE_USERS` (empty: nobody is linked).
    pub fn from_env() -> Result<Self, ConfigError> {
        let ttl = Duration::from_secs(config::parsed("PROACTIVE_USER_CACHE_SECONDS", 300)?);
        let source = match KeycloakConfig::from_env()? {
            Some(keycloak) => Source::Keycloak(Box::new(KeycloakClient::new(
                crate::http_client::builder()
                    .timeout(LOOKUP_TIMEOUT)
                    .build()
                    .map_err(|e| ConfigError::Invalid {
                        name: "KEYCLOAK_SERVER_URL",
                        reason: format!("cannot build an HTTP client: {e}"),
                    })?,
                keycloak,
                Arc::new(Retrier::new(RetryPolicy::ACCOUNT_LINK)),
            ))),
            None => configured(&config::var("PROACTIVE_USERS").unwrap_or_default())?,
        };
        Ok(Self::new(source, ttl))
    }

    /// Links from Keycloak.
    pub fn keycloak(client: KeycloakClient, ttl: Duration) -> Self {
        Self::new(Source::Keycloak(Box::new(client)), ttl)
    }

    /// Links from a `PROACTIVE_USERS` value.
    pub fn configured(links: &str) -> Result<Self, ConfigError> {
        Ok(Self::new(configured(links)?, Duration::from_secs(300)))
    }

    fn new(source: Source, ttl: Duration) -> Self {
        Self {
            source: Arc::new(source),
            users: cache(ttl),
            logins: cache(ttl),
        }
    }

    /// The product user linked to `account`; `None` when nobody is.
    pub async fn user_for(&self, account: GitHubAccount<'_>) -> Result<Option<UserId>, LinkError> {
        if let Some(known) = self.users.get(&account.id) {
            return Ok(known);
        }
        let user = match self.source.as_ref() {
            Source::Keycloak(client) => client
                .user_linked_to_github(account.id)
                .await?
                .map(|id| UserId::parse(&id))
                .transpose()?,
            Source::Configured { users, everyone } => users
                .get(&account.login.to_ascii_lowercase())
                .or(everyone.as_ref())
                .cloned(),
        };
        self.users.insert(account.id, user.clone());
        Ok(user)
    }

    /// The login of the GitHub account linked to `user`; `None` when none is (or only `*` links it).
    pub async fn github_login_of(&self, user: &UserId) -> Result<Option<String>, LinkError> {
        if let Some(known) = self.logins.get(user) {
            return Ok(known);
        }
        let login = match self.source.as_ref() {
            Source::Keycloak(client) => client
                .user(user.as_str())
                .await?
                .and_then(|found| found.github_login),
            Source::Configured { users, .. } => users
                .iter()
                .find(|(_, linked)| *linked == user)
                .map(|(login, _)| login.clone()),
        };
        self.logins.insert(user.clone(), login.clone());
        Ok(login)
    }
}

fn cache<K, V>(ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .time_to_live(ttl)
        .build()
}

/// Parses `PROACTIVE_USERS`: `login=user` pairs separated by commas.
fn configured(links: &str) -> Result<Source, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "PROACTIVE_USERS",
        reason,
    };
    let mut users = HashMap::new();
    let mut everyone = None;
    for pair in links.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((login, user)) = pair.split_once('=') else {
            return Err(invalid(format!(
                "`{pair}` is not <github login>=<product user>"
            )));
        };
        let user =
            UserId::parse(user.trim()).map_err(|e| invalid(format!("`{}`: {e}", user.trim())))?;
        match login.trim() {
            "*" => everyone = Some(user),
            login => {
                users.insert(login.to_ascii_lowercase(), user);
            }
        }
    }
    Ok(Source::Configured { users, everyone })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(login: &str) -> GitHubAccount<'_> {
        GitHubAccount {
            id: login.len() as u64,
            login,
        }
    }

    #[tokio::test]
    async fn configured_links_map_logins_either_way_and_star_maps_the_rest() {
        let links = AccountLinks::configured("Octocat=alice, hubot = bob,*=local-user").unwrap();
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(
            links.user_for(account("octocat")).await.unwrap(),
            Some(alice.clone())
        );
        assert_eq!(
            links.user_for(account("someone-else")).await.unwrap(),
            Some(UserId::parse("local-user").unwrap())
        );
        assert_eq!(
            links.github_login_of(&alice).await.unwrap().as_deref(),
            Some("octocat")
        );
        let local = UserId::parse("local-user").unwrap();
        assert_eq!(links.github_login_of(&local).await.unwrap(), None);
    }

    #[tokio::test]
    async fn without_links_nobody_is_linked() {
        let links = AccountLinks::configured("").unwrap();
        assert_eq!(links.user_for(account("octocat")).await.unwrap(), None);
    }

    #[test]
    fn malformed_links_name_the_variable() {
        for bad in ["octocat", "octocat="] {
            let error = AccountLinks::configured(bad).err().expect("refused");
            assert!(error.to_string().contains("PROACTIVE_USERS"), "{error}");
        }
    }
}
