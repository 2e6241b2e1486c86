//! Credentials of a call: none, a token, or a GitHub App's installation token, obtained by exchanging a
//! short-lived RS256 JWT and cached per installation until shortly before it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::transport::{Call, Transport, decode};
use super::{GitHubAuth, GitHubError};

/// A GitHub App's private key, checked once by signing with it.
pub(super) struct AppKey(EncodingKey);

#[derive(Serialize)]
struct AppClaims {
    iat: i64,
    exp: i64,
    iss: String,
}

impl AppKey {
    pub(super) fn parse(pem: &str) -> Result<Self, String> {
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|_| "expected an RSA private key in PEM form".to_owned())?;
        let key = Self(key);
        // Reading the PEM does not look inside the key; a first signature does.
        key.jwt(0)
            .map_err(|_| "the PEM does not hold a usable RSA private key".to_owned())?;
        Ok(key)
    }

    /// A JWT for `POST /app/installations/{id}/access_tokens`: issued a minute in the past against
    /// clock drift, valid for nine minutes (GitHub accepts at most ten).
    fn jwt(&self, app_id: u64) -> Result<String, jsonwebtoken::errors::Error> {
        let now = Utc::now().timestamp();
        let claims = AppClaims {
            iat: now - 60,
            exp: now + 9 * 60,
            iss: app_id.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.0)
    }
}

#[derive(Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: DateTime<Utc>,
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<InstallationToken>>>;

pub(super) struct App {
    app_id: u64,
    key: AppKey,
    /// One slot per installation; its lock makes concurrent callers share one exchange.
    tokens: Mutex<HashMap<u64, TokenSlot>>,
}

pub(super) enum Credentials {
    Anonymous,
    Token(String),
    App(App),
}

impl Credentials {
    pub(super) fn new(auth: &GitHubAuth) -> Result<Self, GitHubError> {
        Ok(match auth {
            GitHubAuth::Anonymous => Self::Anonymous,
            GitHubAuth::Token(token) => Self::Token(token.clone()),
            GitHubAuth::App {
                app_id,
                private_key_pem,
            } => Self::App(App {
                app_id: *app_id,
                key: AppKey::parse(private_key_pem).map_err(GitHubError::Auth)?,
                tokens: Mutex::default(),
            }),
        })
    }

    /// The bearer token for a call about a repository of `installation`.
    pub(super) async fn bearer(
        &self,
        transport: &Transport,
        installation: Option<u64>,
    ) -> Result<Option<String>, GitHubError> {
        match self {
            Self::Anonymous => Ok(None),
            Self::Token(token) => Ok(Some(token.clone())),
            Self::App(app) => {
                let id = installation.ok_or_else(|| {
                    GitHubError::Auth("a GitHub App needs the repository's installation id".into())
                })?;
                app.installation_token(transport, id).await.map(Some)
            }
        }
    }

    /// Drops a cached installation token GitHub refused, unless a newer one replaced it meanwhile.
    /// Returns whether a fresh token can be tried (App auth only).
    pub(super) async fn forget(&self, installation: Option<u64>, refused: Option<&str>) -> bool {
        let (Self::App(app), Some(id), Some(refused)) = (self, installation, refused) else {
            return false;
        };
        let slot = app.slot(id);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|t| t.token == refused) {
            *cached = None;
        }
        true
    }
}

impl App {
    fn slot(&self, installation: u64) -> TokenSlot {
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.entry(installation).or_default().clone()
    }

    async fn installation_token(
        &self,
        transport: &Transport,
        id: u64,
    ) -> Result<String, GitHubError> {
        let slot = self.slot(id);
        let mut cached = slot.lock().await;
        let margin = chrono::Duration::from_std(transport.options().token_refresh_margin)
            .unwrap_or(chrono::Duration::MAX);
        let renew_after = |t: &InstallationToken| t.expires_at.checked_sub_signed(margin);
        if let Some(token) = cached
            .as_ref()
            .filter(|t| renew_after(t).is_some_and(|at| at > Utc::now()))
        {
            return Ok(token.token.clone());
        }
        let fresh = self.exchange(transport, id).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    async fn exchange(
        &self,
        transport: &Transport,
        id: u64,
    ) -> Result<InstallationToken, GitHubError> {
        let jwt = self
            .key
            .jwt(self.app_id)
            .map_err(|e| GitHubError::Auth(format!("cannot sign the App's JWT: {e}")))?;
        let url = transport.url(&["app", "installations", &id.to_string(), "access_tokens"]);
        // Exchanging again after a lost answer only mints another token: safe to retry.
        let call = Call::post(&url, None).bearer(Some(&jwt)).repeatable();
        let response = transport.send(call).await.map_err(|e| match e {
            GitHubError::Status { message, .. } | GitHubError::Auth(message) => {
                GitHubError::Auth(format!("installation {id}: {message}"))
            }
            other => other,
        })?;
        tracing::info!(installation = id, "GitHub installation token obtained");
        decode(response, "the installation token").await
    }
}
