//! The admin access token of the client-credentials grant, cached and refreshed ahead of its expiry.
//! One refresh at a time: concurrent callers wait for it rather than each asking for a token.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{KeycloakConfig, KeycloakError};
use crate::http_client::ErrorAnswer;
use crate::secret::Secret;

/// A token is refreshed when this share of its lifetime is left (admin tokens may live a minute).
const REFRESH_AHEAD: f64 = 0.2;

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

#[derive(Default)]
pub(super) struct TokenCache {
    current: Mutex<Option<Cached>>,
}

impl TokenCache {
    /// The cached token, or a new one when it is due for refresh or `stale` (refused with a 401).
    pub(super) async fn get(
        &self,
        http: &reqwest::Client,
        config: &KeycloakConfig,
        stale: Option<&Secret>,
    ) -> Result<Secret, KeycloakError> {
        let mut current = self.current.lock().await;
        if let Some(cached) = current.as_ref() {
            let refused = stale.is_some_and(|s| s == &cached.token);
            if !refused && Instant::now() < cached.refresh_at {
                return Ok(cached.token.clone());
            }
        }
        let fresh = fetch(http, config).await?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }
}

async fn fetch(http: &reqwest::Client, config: &KeycloakConfig) -> Result<Cached, KeycloakError> {
    let requested = Instant::now();
    let response = http
        .post(config.url(&[
            "realms",
            &config.realm,
            "protocol",
            "openid-connect",
            "token",
        ]))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.expose()),
        ])
        .send()
        .await
        .map_err(KeycloakError::transport)?;
    if !response.status().is_success() {
        let answer = ErrorAnswer::read(response).await;
        return Err(if matches!(answer.status, 400 | 401) {
            KeycloakError::Credentials(answer.body)
        } else {
            KeycloakError::from(answer)
        });
    }
    let answer: TokenAnswer = response
        .json()
        .await
        .map_err(|e| KeycloakError::Decode(format!("token answer: {e}")))?;
    let lifetime = Duration::from_secs(answer.expires_in);
    Ok(Cached {
        token: Secret::new(answer.access_token),
        refresh_at: requested + lifetime.mul_f64(1.0 - REFRESH_AHEAD),
    })
}
