//! Entry point: build the clients once, then serve API Gateway events.

use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let service = shared::wiring::webhook_service_from_env().await?;
    run(service_fn(|request| {
        let service = &service;
        async move { Ok::<_, Error>(webhook::handle(service, request).await) }
    }))
    .await
}
