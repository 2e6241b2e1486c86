//! The AWS SDK configuration every AWS client is built from, once per process. `AWS_ENDPOINT_URL`
//! points every service at a local AWS-compatible server; credentials and region come from the usual chain.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub async fn sdk_config() -> aws_config::SdkConfig {
    let region = crate::config::var("AWS_REGION")
        .or_else(|| crate::config::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .load()
        .await
}

/// A short description of a failed SDK call, safe to log and to answer with: the service's error code
/// (`ProvisionedThroughputExceededException`, `ResourceNotFoundException`...) or the kind of transport
/// failure, never the request. Every SDK crate re-exports these same `SdkError` and metadata types.
pub fn failure_cause<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> &str {
    match error {
        SdkError::ServiceError(_) => error.code().unwrap_or("service error"),
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "network failure",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ConstructionFailure(_) => "request not built",
        _ => "unknown failure",
    }
}
