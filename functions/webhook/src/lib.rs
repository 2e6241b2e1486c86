//! The webhook Lambda function: API Gateway HTTP API (`POST /webhooks/github`) -> [`WebhookService`].
//! `main` only wires; this adapter turns a `lambda_http` request into the service's call and back.

use lambda_http::{Body, Request, Response};
use shared::webhook::{WebhookAnswer, WebhookService};

/// Answers one API Gateway request. Infallible: every outcome is an HTTP answer with a JSON body.
pub async fn handle(service: &WebhookService, request: Request) -> Response<Body> {
    // lambda_http has already decoded a base64 body: these are the exact bytes GitHub signed.
    let answer = service
        .handle(request.headers(), request.body().as_ref())
        .await;
    to_response(answer)
}

fn to_response(answer: WebhookAnswer) -> Response<Body> {
    Response::builder()
        .status(answer.status)
        .header("content-type", "application/json")
        .body(Body::Text(answer.body.to_string()))
        .expect("a status and one static header always make a valid response")
}
