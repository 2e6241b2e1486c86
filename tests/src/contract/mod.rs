//! Contract suites: the behaviour every adapter of a store port must show, written once as
//! adapter-agnostic async cases over `Arc<dyn Port>`. An integration test file runs a whole suite
//! against one adapter with one macro line, e.g. `e2e::proactive_store_contract!(fresh_store);`,
//! where `fresh_store` is an async fn returning a store with no data in it.

pub mod conversation_store;
pub mod coordination;
pub mod event_store;
pub mod proactive_store;

/// One `#[tokio::test]` per case of a suite, each on a fresh store from `$make`.
#[macro_export]
macro_rules! contract_tests {
    ($suite:ident, $make:path, [$($case:ident),+ $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::contract::$suite::$case($make().await).await;
            }
        )+
    };
}
