//! A fake Keycloak: the client-credentials grant of one confidential client (short-lived tokens; a 401
//! for an expired or unknown token), `GET /admin/realms/{realm}/users/{id}` (404 for an unknown user),
//! `.../federated-identity`, the users search by identity-provider link (`?idpAlias=&idpUserId=`),
//! and an outage switch (503 on everything). A linked GitHub identity's user id is the one the GitHub
//! fake gives its login ([`account_id`]). It counts token grants and the
//! most user lookups it served at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::github::account_id;
use super::server::Served;

/// A user as the fake stores it.
#[derive(Debug, Clone)]
pub struct FakeUser {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    /// The login of a linked `github` identity.
    pub github: Option<String>,
}

pub struct KeycloakFake {
    served: Served,
    state: Arc<FakeState>,
}

struct FakeState {
    realm: String,
    client_id: String,
    client_secret: String,
    token_lifetime: Duration,
    tokens: Mutex<HashMap<String, Instant>>,
    users: Mutex<HashMap<String, FakeUser>>,
    outage: AtomicBool,
    token_grants: AtomicUsize,
    user_lookups: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// How long a user lookup takes, so that concurrency is observable.
    lookup_delay: Duration,
}

impl KeycloakFake {
    /// A realm with one client whose tokens live `token_lifetime` (whole seconds, at least one).
    pub async fn start(
        realm: &str,
        client_id: &str,
        client_secret: &str,
        token_lifetime: Duration,
    ) -> Self {
        let state = Arc::new(FakeState {
            realm: realm.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            token_lifetime: token_lifetime.max(Duration::from_secs(1)),
            tokens: Mutex::default(),
            users: Mutex::default(),
            outage: AtomicBool::new(false),
            token_grants: AtomicUsize::new(0),
            user_lookups: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            lookup_delay: Duration::from_millis(20),
        });
        let router = Router::new()
            .route("/realms/{realm}/protocol/openid-connect/token", post(token))
            .route("/admin/realms/{realm}/users", get(search_users))
            .route("/admin/realms/{realm}/users/{id}", get(user))
            .route(
                "/admin/realms/{realm}/users/{id}/federated-identity",
                get(federated_identity),
            )
            .with_state(Arc::clone(&state));
        Self {
            served: Served::start(router).await,
            state,
        }
    }

    /// The server URL (`KEYCLOAK_SERVER_URL`).
    pub fn url(&self) -> &str {
        &self.served.base
    }

    pub fn add_user(&self, user: FakeUser) {
        lock(&self.state.users).insert(user.id.clone(), user);
    }

    /// While on, every request is answered 503.
    pub fn set_outage(&self, on: bool) {
        self.state.outage.store(on, Ordering::SeqCst);
    }

    /// Invalidates every token granted so far (as a restart or a key rotation would).
    pub fn revoke_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    pub fn token_grants(&self) -> usize {
        self.state.token_grants.load(Ordering::SeqCst)
    }

    /// `GET .../users/{id}` requests served (with a valid token).
    pub fn user_lookups(&self) -> usize {
        self.state.user_lookups.load(Ordering::SeqCst)
    }

    /// The most user lookups that were in progress at once.
    pub fn max_concurrent_lookups(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

async fn token(
    State(state): State<Arc<FakeState>>,
    Path(realm): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    if state.outage.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "outage");
    }
    if realm != state.realm {
        return error(
            StatusCode::NOT_FOUND,
            "Realm does not exist",
            "unknown realm",
        );
    }
    if form.grant_type != "client_credentials" {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials",
        );
    }
    let valid = form.client_id.as_deref() == Some(state.client_id.as_str())
        && form.client_secret.as_deref() == Some(state.client_secret.as_str());
    if !valid {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Invalid client or Invalid client credentials",
        );
    }
    let grant = state.token_grants.fetch_add(1, Ordering::SeqCst);
    let access_token = format!("kc-token-{grant}-{}", uuid_like());
    lock(&state.tokens).insert(access_token.clone(), Instant::now() + state.token_lifetime);
    Json(json!({
        "access_token": access_token,
        "expires_in": state.token_lifetime.as_secs(),
        "refresh_expires_in": 0,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "scope": "profile email"
    }))
    .into_response()
}

fn uuid_like() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Why an admin API request was refused, answered as Keycloak answers it.
enum Refusal {
    /// Status, `error`, `error_description`.
    Error(StatusCode, &'static str, &'static str),
    UserNotFound,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Error(status, kind, description) => error(status, kind, description),
            Refusal::UserNotFound => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "User not found"})),
            )
                .into_response(),
        }
    }
}

/// Checks the outage switch, the realm and the bearer token.
fn admit(state: &FakeState, realm: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    if state.outage.load(Ordering::SeqCst) {
        return Err(Refusal::Error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "outage",
        ));
    }
    if realm != state.realm {
        return Err(Refusal::Error(
            StatusCode::NOT_FOUND,
            "Realm not found.",
            "unknown realm",
        ));
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let live = token
        .and_then(|t| lock(&state.tokens).get(t).copied())
        .is_some_and(|expires| Instant::now() < expires);
    if live {
        Ok(())
    } else {
        Err(Refusal::Error(
            StatusCode::UNAUTHORIZED,
            "HTTP 401 Unauthorized",
            "token missing, unknown or expired",
        ))
    }
}

/// The user stored under `id`.
fn known_user(state: &FakeState, id: &str) -> Result<FakeUser, Refusal> {
    lock(&state.users)
        .get(id)
        .cloned()
        .ok_or(Refusal::UserNotFound)
}

async fn user(
    State(state): State<Arc<FakeState>>,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    admit(&state, &realm, &headers)?;
    state.user_lookups.fetch_add(1, Ordering::SeqCst);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(state.lookup_delay).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let user = known_user(&state, &id)?;
    let mut body = json!({
        "id": user.id,
        "username": user.username,
        "enabled": true,
        "emailVerified": user.email.is_some(),
        "createdTimestamp": 1714564800000u64,
    });
    if let Some(email) = &user.email {
        body["email"] = json!(email);
    }
    Ok(Json(body).into_response())
}

async fn federated_identity(
    State(state): State<Arc<FakeState>>,
    Path((realm, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    admit(&state, &realm, &headers)?;
    let user = known_user(&state, &id)?;
    let identities: Vec<_> = user
        .github
        .iter()
        .map(|login| {
            json!({"identityProvider": GITHUB_ALIAS, "userId": account_id(login).to_string(), "userName": login})
        })
        .collect();
    Ok(Json(identities).into_response())
}

/// The alias of the realm's GitHub identity provider.
const GITHUB_ALIAS: &str = "github";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserSearch {
    idp_alias: Option<String>,
    idp_user_id: Option<String>,
}

/// `GET .../users?idpAlias=&idpUserId=`: the users linked to that identity (brief representations).
async fn search_users(
    State(state): State<Arc<FakeState>>,
    Path(realm): Path<String>,
    Query(search): Query<UserSearch>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    admit(&state, &realm, &headers)?;
    let (Some(alias), Some(linked)) = (search.idp_alias, search.idp_user_id) else {
        return Err(Refusal::Error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the fake searches by idpAlias and idpUserId only",
        ));
    };
    let found: Vec<_> = lock(&state.users)
        .values()
        .filter(|user| {
            alias == GITHUB_ALIAS
                && user
                    .github
                    .as_deref()
                    .is_some_and(|login| account_id(login).to_string() == linked)
        })
        .map(|user| json!({"id": user.id, "username": user.username, "enabled": true}))
        .collect();
    Ok(Json(found).into_response())
}
