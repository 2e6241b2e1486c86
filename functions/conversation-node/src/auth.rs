//! Who is calling: bearer JWTs verified with an HS256 secret or a JWKS URL (`sub` is the user id), and
//! the API keys (`SESSION_API_KEY` for clients, `INTERNAL_API_KEY` for the starter), compared in
//! constant time. Tokens and keys are never logged.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::config::{AuthConfig, JwtKeys};
use shared::domain::UserId;

/// The REST header carrying the session API key.
pub(crate) const SESSION_API_KEY_HEADER: &str = "x-session-api-key";
/// The header carrying the internal API key (EventBridge API destinations name it).
pub(crate) const INTERNAL_API_KEY_HEADER: &str = "x-api-key";
/// The least time between two JWKS fetches caused by unknown key ids.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(serde::Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    exp: i64,
}

/// An HS256 token for `user`, valid for `ttl`: what the local stack prints and tests connect with.
pub fn mint_hs256(secret: &str, user: &str, ttl: Duration) -> String {
    let exp = chrono::Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &DevClaims { sub: user, exp },
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signs any claims")
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub user_id: UserId,
    /// When the token stops being accepted (its `exp` plus the leeway), in Unix seconds: a socket
    /// opened with it is closed then.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid token")]
    InvalidToken,
    #[error("invalid session API key")]
    SessionKey,
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
}

/// Verification keys by key id.
type KeySet = HashMap<String, (DecodingKey, Algorithm)>;

struct FetchedKeys {
    keys: KeySet,
    fetched_at: Option<Instant>,
}

impl FetchedKeys {
    fn fetched_recently(&self) -> bool {
        self.fetched_at
            .is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL)
    }
}

struct JwksCache {
    url: String,
    http: reqwest::Client,
    cached: RwLock<FetchedKeys>,
}

enum Verifier {
    Hs256(DecodingKey),
    Jwks(JwksCache),
}

pub(crate) struct Authenticator {
    verifier: Verifier,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    session_api_key: Option<String>,
    internal_api_key: Option<String>,
}

/// Constant-time equality of a presented secret and the configured one.
fn same_secret(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig) -> Self {
        let verifier = match &config.keys {
            JwtKeys::Hs256Secret(secret) => {
                Verifier::Hs256(DecodingKey::from_secret(secret.as_bytes()))
            }
            JwtKeys::JwksUrl(url) => Verifier::Jwks(JwksCache {
                url: url.clone(),
                http: reqwest::Client::builder()
                    .timeout(JWKS_FETCH_TIMEOUT)
                    .build()
                    .unwrap_or_default(),
                cached: RwLock::new(FetchedKeys {
                    keys: HashMap::new(),
                    fetched_at: None,
                }),
            }),
        };
        Self {
            verifier,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway,
            session_api_key: config.session_api_key.clone(),
            internal_api_key: config.internal_api_key.clone(),
        }
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation
    }

    /// Verifies a bearer token and names its user.
    pub(crate) async fn verify(&self, token: Option<&str>) -> Result<Identity, AuthError> {
        let token = token.ok_or(AuthError::MissingToken)?;
        let (key, algorithm) = match &self.verifier {
            Verifier::Hs256(key) => (key.clone(), Algorithm::HS256),
            Verifier::Jwks(cache) => {
                let header =
                    jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
                let kid = header.kid.ok_or(AuthError::InvalidToken)?;
                cache.key(&kid).await?
            }
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(algorithm))
            .map_err(|_| AuthError::InvalidToken)?;
        let Claims { sub, exp } = data.claims;
        let user_id = UserId::parse(&sub).map_err(|_| AuthError::InvalidToken)?;
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        Ok(Identity {
            user_id,
            expires_at: exp.saturating_add(leeway),
        })
    }

    /// Checks the session API key a client presented, when one is configured.
    pub(crate) fn check_session_key(&self, presented: Option<&str>) -> Result<(), AuthError> {
        match &self.session_api_key {
            None => Ok(()),
            Some(expected) if presented.is_some_and(|key| same_secret(key, expected)) => Ok(()),
            Some(_) => Err(AuthError::SessionKey),
        }
    }

    /// Whether the internal API key presented is the configured one (never true when none is set).
    pub(crate) fn is_internal_caller(&self, presented: Option<&str>) -> bool {
        match (&self.internal_api_key, presented) {
            (Some(expected), Some(key)) => same_secret(key, expected),
            _ => false,
        }
    }
}

impl JwksCache {
    /// The key named `kid`, fetching the set again (at most every `JWKS_REFETCH_INTERVAL`) when the id
    /// is unknown, so that a rotated key is picked up.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        {
            let cached = self.cached.read().await;
            if let Some(found) = cached.keys.get(kid) {
                return Ok(found.clone());
            }
            if cached.fetched_recently() {
                return Err(AuthError::InvalidToken);
            }
        }
        let mut cached = self.cached.write().await;
        if !cached.fetched_recently() {
            cached.fetched_at = Some(Instant::now());
            match self.fetch().await {
                Ok(keys) => cached.keys = keys,
                Err(reason) => {
                    tracing::warn!(%reason, "cannot fetch the JWKS");
                    if cached.keys.is_empty() {
                        return Err(AuthError::KeysUnavailable);
                    }
                }
            }
        }
        cached.keys.get(kid).cloned().ok_or(AuthError::InvalidToken)
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let answer = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!("answered {}", answer.status()));
        }
        let set: JwkSet = answer
            .json()
            .await
            .map_err(|e| format!("not a JWKS: {e}"))?;
        Ok(set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                // Keys for encryption (Keycloak publishes `RSA-OAEP` ones beside) are not for tokens.
                let algorithm = match jwk.common.key_algorithm {
                    Some(algorithm) => algorithm.to_string().parse().ok()?,
                    None => Algorithm::RS256,
                };
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, (key, algorithm)))
            })
            .collect())
    }
}
