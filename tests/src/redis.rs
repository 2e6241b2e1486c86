//! The harness of every test that talks to Redis: the server `make test` starts (`TEST_REDIS_URL`)
//! and a fresh key prefix per test, so that tests share one server without seeing each other.

/// The variable naming the Redis server's URL.
pub const URL_VAR: &str = "TEST_REDIS_URL";

/// The Redis server's URL; panics with directions when it is not configured.
pub fn url() -> String {
    std::env::var(URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{URL_VAR} is not set: run the tests with `make test`, which starts Redis, or \
                 export {URL_VAR}=redis://127.0.0.1:6379 with a server running there"
            )
        })
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("test-{}:", &uuid::Uuid::new_v4().simple().to_string()[..12])
}
