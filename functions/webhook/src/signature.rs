//! `X-Hub-Signature-256`: `sha256=` + hex HMAC-SHA256 of the exact body bytes, compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The header value GitHub sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `secret`. An empty secret verifies nothing.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(given) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(given) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.finalize().into_bytes().as_slice().ct_eq(&given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented known answer.
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const EXPECTED: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn matches_githubs_known_answer() {
        assert_eq!(sign(SECRET, BODY), EXPECTED);
        assert!(verify(SECRET, BODY, Some(EXPECTED)));
    }

    #[test]
    fn refuses_missing_malformed_and_wrong_signatures() {
        assert!(!verify(SECRET, BODY, None));
        assert!(!verify(SECRET, BODY, Some("sha1=757107ea")));
        assert!(!verify(SECRET, BODY, Some("sha256=not-hex")));
        assert!(!verify(SECRET, b"Hello, World?", Some(EXPECTED)));
        assert!(!verify(b"another secret", BODY, Some(EXPECTED)));
        assert!(
            !verify(b"", BODY, Some(&sign(b"", BODY))),
            "an unset secret must not verify"
        );
    }
}
