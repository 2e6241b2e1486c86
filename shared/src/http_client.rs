//! What the HTTP clients of third-party APIs share: their TLS trust, one `reqwest` client with timeouts,
//! and the reading of an error answer (its status, a bounded body with e-mail addresses masked, the
//! server's wait hint).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Response;
use reqwest::header::HeaderMap;

use crate::retry::parse_retry_after;

/// The longest error body kept: enough for a reason, never a whole page.
const MAX_ERROR_BODY: usize = 1024;

/// A client builder trusting Mozilla's root certificates as compiled in (`webpki-roots`, already parsed):
/// a Lambda start reads and parses no CA bundle (about 8M instructions, 1 ms of init per bundle; quality
/// bar P1). A server behind a private CA is not trusted.
pub fn builder() -> reqwest::ClientBuilder {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // What reqwest offers on its own TLS configuration (its `http2` feature is on).
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// A client with a connect timeout and a whole-request timeout (a timed-out request is retried).
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .build()
}

/// Statuses worth another attempt: timeouts, rate limiting, server errors.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429) || status >= 500
}

/// A non-success answer, read for an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    /// At most 1 KiB of the body, e-mail addresses masked.
    pub body: String,
    /// How long the server asked to wait: a body's `rateLimit.waitMs`, else `Retry-After` (seconds or
    /// a date), else `X-RateLimit-Reset` (epoch seconds).
    pub wait: Option<Duration>,
}

impl ErrorAnswer {
    pub async fn read(response: Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.text().await.unwrap_or_default();
        let now = Utc::now();
        let wait = wait_ms(&raw).or_else(|| header_wait(&headers, now));
        let mut body = mask_emails(&raw);
        if body.len() > MAX_ERROR_BODY {
            let mut end = MAX_ERROR_BODY;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
        }
        Self { status, body, wait }
    }
}

fn wait_ms(body: &str) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value
        .pointer("/rateLimit/waitMs")
        .and_then(serde_json::Value::as_u64)
        .map(Duration::from_millis)
}

/// The wait a server asks for in its headers: `Retry-After` (either form), else `X-RateLimit-Reset`.
pub fn header_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    text("retry-after")
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| {
            let reset: i64 = text("x-ratelimit-reset")?.trim().parse().ok()?;
            let at = DateTime::from_timestamp(reset, 0)?;
            Some((at - now).to_std().unwrap_or(Duration::ZERO))
        })
}

/// Replaces every e-mail address in `text` with `***@***`.
pub fn mask_emails(text: &str) -> String {
    let is_part = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '@' {
            let local = out.chars().rev().take_while(|&c| is_part(c)).count();
            let domain = chars[i + 1..].iter().take_while(|&&c| is_part(c)).count();
            if local > 0 && domain > 0 {
                let keep = out.chars().count() - local;
                out = out.chars().take(keep).collect();
                out.push_str("***@***");
                i += 1 + domain;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn e_mail_addresses_are_masked_and_the_rest_kept() {
        assert_eq!(
            mask_emails(r#"{"reason":"bad email jane.doe+x@example.co.uk here","n":"@x"}"#),
            r#"{"reason":"bad email ***@*** here","n":"@x"}"#
        );
        assert_eq!(mask_emails("no address"), "no address");
    }

    #[test]
    fn the_body_wait_comes_before_the_headers() {
        let now = Utc::now();
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(header_wait(&headers, now), Some(Duration::from_secs(7)));
        assert_eq!(
            wait_ms(r#"{"reason":"x","rateLimit":{"waitMs":1500}}"#),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(wait_ms("not json"), None);

        let mut headers = HeaderMap::new();
        let reset = (now.timestamp() + 30).to_string();
        headers.insert("x-ratelimit-reset", HeaderValue::from_str(&reset).unwrap());
        let wait = header_wait(&headers, now).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(29));
    }

    #[test]
    fn transient_statuses() {
        assert!(is_transient_status(429) && is_transient_status(503) && is_transient_status(408));
        assert!(!is_transient_status(400) && !is_transient_status(404));
    }
}
