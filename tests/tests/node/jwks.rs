//! Tokens verified against a JWKS URL (a Keycloak realm's certificates, faked): issuer and audience
//! checked, unknown keys and other algorithms refused, over REST and Socket.IO.

use e2e::fakes::jwks::FakeJwks;
use e2e::node::{NodeOptions, Stores, TestNode, token};
use e2e::socketio::{ConnectOptions, SocketClient};
use reqwest::StatusCode;
use serde_json::json;

use conversation_node::config::JwtKeys;

const AUDIENCE: &str = "proactive-node";

async fn node_on(jwks: &FakeJwks) -> TestNode {
    let mut options = NodeOptions::new();
    options.config.auth.keys = JwtKeys::JwksUrl(jwks.jwks_url());
    options.config.auth.issuer = Some(jwks.issuer());
    options.config.auth.audience = Some(AUDIENCE.into());
    TestNode::standalone(&Stores::embedded().await, options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realm_tokens_are_accepted_and_others_refused() {
    let jwks = FakeJwks::start().await;
    let node = node_on(&jwks).await;
    let alice = jwks.token("alice", AUDIENCE);
    let id = node.create_conversation(&alice, None).await;
    let (status, _) = node
        .get(&format!("/api/conversations/{id}"), Some(&alice))
        .await;
    assert_eq!(status, StatusCode::OK);
    SocketClient::connect(&node.url, &ConnectOptions::conversation(&id, &alice, None)).await;

    let exp = chrono::Utc::now().timestamp() + 300;
    let refused = [
        ("another audience", jwks.token("alice", "another-client")),
        (
            "another issuer",
            jwks.sign(
                e2e::fakes::jwks::KEY_ID,
                &json!({ "sub": "alice", "iss": "http://elsewhere/realms/x", "aud": AUDIENCE, "exp": exp }),
            ),
        ),
        (
            "expired",
            jwks.sign(
                e2e::fakes::jwks::KEY_ID,
                &json!({ "sub": "alice", "iss": jwks.issuer(), "aud": AUDIENCE, "exp": exp - 3600 }),
            ),
        ),
        (
            "an unknown key id",
            jwks.sign("rotated-away", &json!({ "sub": "alice", "iss": jwks.issuer(), "aud": AUDIENCE, "exp": exp })),
        ),
        ("an HS256 token", token("alice")),
    ];
    for (what, forged) in refused {
        let (status, body) = node.get("/api/conversations", Some(&forged)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    }
    let mut client = SocketClient::start(
        &node.url,
        &ConnectOptions::conversation(&id, &jwks.token("alice", "x"), None),
    );
    assert_eq!(client.connection().await, Err("invalid token".into()));
    // Unknown key ids do not make the node fetch the keys again and again.
    assert!(jwks.fetches() <= 2, "fetched {} times", jwks.fetches());
}
