//! Entry point: build the service once, then serve API Gateway events through the webhook's router.

use lambda_http::{Error, run};
use webhook::{WebhookService, lambda_app};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let service = WebhookService::from_env().await?;
    run(lambda_app(service)).await
}
