//! The AWS SDK configuration every AWS client is built from, once per process. `AWS_ENDPOINT_URL`
//! points every service at a local AWS-compatible server; credentials and region come from the usual chain.

use aws_config::{BehaviorVersion, Region};

pub async fn sdk_config() -> aws_config::SdkConfig {
    let region = crate::config::var("AWS_REGION")
        .or_else(|| crate::config::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .load()
        .await
}
