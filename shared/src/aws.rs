//! The AWS SDK configuration every AWS client is built from, once per process. `AWS_ENDPOINT_URL`
//! points every service at a local AWS-compatible server. Credentials come from the environment when
//! they are there (Lambda puts its role's there), else from the usual chain (ECS, profiles, web identity).

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// The roots of Amazon Trust Services, which every AWS endpoint's certificate chains to.
pub(crate) const AMAZON_TRUST_SERVICES: &[u8] =
    include_bytes!("../certs/amazon-trust-services.pem");

pub async fn sdk_config() -> aws_config::SdkConfig {
    let region = crate::config::var("AWS_REGION")
        .or_else(|| crate::config::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .http_client(http_client());
    // The default chain builds every provider at start (an STS client among them): a fifth of a
    // Lambda's init work (quality bar P1) when the first provider, the environment, is the one used.
    let loader = if crate::config::var("AWS_ACCESS_KEY_ID").is_some() {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    loader.load().await
}

/// The SDK's own HTTPS client, trusting only Amazon's roots: the default one reads and parses the
/// system CA bundle at start, and each client built checks its ~150 roots again (quality bar P1).
fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    let trust = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES);
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context without options builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https()
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

#[cfg(test)]
mod tests {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::AMAZON_TRUST_SERVICES;

    #[test]
    fn the_amazon_roots_are_five_trust_anchors() {
        // The SDK's client parses them when its first connector is built, and panics on a bad one.
        let roots: Vec<CertificateDer> = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES)
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        let mut store = rustls::RootCertStore::empty();
        assert_eq!(store.add_parsable_certificates(roots), (5, 0));
    }
}
