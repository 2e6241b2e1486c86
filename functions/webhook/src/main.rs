//! Entry point: read the secret (`SECRETS_ARN`), build the service, then serve API Gateway events through
//! the webhook's router; the service is built again when the secret's re-read finds a new version.

use lambda_http::tower::ServiceExt;
use lambda_http::{Error, Request, run, service_fn};
use shared::secrets::{self, Refreshed};
use webhook::{WebhookService, lambda_app};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let started = async {
        secrets::load().await?;
        Refreshed::build(|| async { WebhookService::from_env().await.map(lambda_app) })
            .await
            .map_err(Error::from)
    };
    let app = match started.await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "webhook stopped");
            return Err(error);
        }
    };
    run(service_fn(|request: Request| {
        let app = &app;
        async move { app.current().await.as_ref().clone().oneshot(request).await }
    }))
    .await
}
