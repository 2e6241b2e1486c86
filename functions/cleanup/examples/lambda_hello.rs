//! The bare `lambda_runtime` hello world: the floor the Lambda init benchmark
//! (`tests/examples/lambda_init_bench.rs`) compares every function with. Here because it needs only
//! this crate's dependencies, so its release build costs nothing extra.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
