//! A local fake of an identity provider's token keys, as Keycloak publishes them: the realm's JWKS at
//! `/realms/{realm}/protocol/openid-connect/certs` (an RS256 signing key with its `kid`, beside an
//! encryption key that verifiers must skip), and RS256 tokens signed with that key for test users.
//! The key is the GitHub fake's throwaway test key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::github::TEST_APP_PRIVATE_KEY_PEM;

pub const REALM: &str = "proactive";
pub const KEY_ID: &str = "fake-signing-key";

struct Shared {
    jwks: Value,
    fetches: AtomicUsize,
}

/// A running fake; the server stops when this is dropped.
pub struct FakeJwks {
    base_url: String,
    key: EncodingKey,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FakeJwks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeJwks {
    pub async fn start() -> Self {
        let key = EncodingKey::from_rsa_pem(TEST_APP_PRIVATE_KEY_PEM.as_bytes())
            .expect("the test key is an RSA PEM");
        let mut signing = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("a JWK of the key");
        signing.common.key_id = Some(KEY_ID.into());
        signing.common.public_key_use = Some(PublicKeyUse::Signature);
        let mut encryption = signing.clone();
        encryption.common.key_id = Some("fake-encryption-key".into());
        encryption.common.key_algorithm = Some(KeyAlgorithm::RSA_OAEP);
        encryption.common.public_key_use = Some(PublicKeyUse::Encryption);
        let shared = Arc::new(Shared {
            jwks: json!({ "keys": [encryption, signing] }),
            fetches: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binding a loopback port for the JWKS fake");
        let base_url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let app = axum::Router::new()
            .route("/realms/{realm}/protocol/openid-connect/certs", get(certs))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url,
            key,
            shared,
            server,
        }
    }

    /// The realm's issuer (`iss` of its tokens).
    pub fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.base_url)
    }

    /// The JWKS URL to configure (`JWT_JWKS_URL`).
    pub fn jwks_url(&self) -> String {
        format!("{}/protocol/openid-connect/certs", self.issuer())
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.shared.fetches.load(Ordering::SeqCst)
    }

    /// An RS256 token with these claims, signed with the realm's key under `kid`.
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.key).expect("a token is signed")
    }

    /// A valid access token for `user` with audience `audience`.
    pub fn token(&self, user: &str, audience: &str) -> String {
        let exp = chrono::Utc::now().timestamp() + 300;
        self.sign(
            KEY_ID,
            &json!({ "sub": user, "iss": self.issuer(), "aud": audience, "exp": exp }),
        )
    }
}

async fn certs(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.fetches.fetch_add(1, Ordering::SeqCst);
    Json(shared.jwks.clone())
}
