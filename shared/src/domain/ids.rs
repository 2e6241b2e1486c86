//! Identifier newtypes that parse instead of validate: a value of these types is always well formed.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A conversation node's identity in the cluster (`NODE_ID`, else generated at start).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub fn new(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    pub fn random() -> Self {
        Self(format!(
            "node-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product user: the identity provider's subject (the `sub` of the user's token), or `github:<id>`
/// for a user known only by a GitHub account: up to 255 bytes, not blank, no control character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    const MAX_LEN: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let well_formed = !raw.trim().is_empty()
            && raw.len() <= Self::MAX_LEN
            && !raw.chars().any(char::is_control);
        if well_formed {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidId {
                kind: "user id",
                reason: "expected up to 255 bytes, not blank, without control characters",
            })
        }
    }

    /// The user known by the GitHub account `account_id`.
    pub fn from_github(account_id: u64) -> Self {
        Self(format!("github:{account_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = InvalidId;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> Self {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a raw string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// The product's id of a repository: `github##<repository id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoId(String);

impl RepoId {
    const PREFIX: &'static str = "github##";

    pub fn from_github(repository_id: u64) -> Self {
        Self(format!("{}{repository_id}", Self::PREFIX))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RepoId {
    type Error = InvalidId;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        match raw.strip_prefix(Self::PREFIX) {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Self(raw))
            }
            _ => Err(InvalidId {
                kind: "repository id",
                reason: "expected github##<digits>",
            }),
        }
    }
}

impl From<RepoId> for String {
    fn from(id: RepoId) -> Self {
        id.0
    }
}

/// A commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits, kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeadSha(String);

impl HeadSha {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let well_formed =
            matches!(raw.len(), 40 | 64) && raw.bytes().all(|b| b.is_ascii_hexdigit());
        if well_formed {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(InvalidId {
                kind: "head sha",
                reason: "expected 40 or 64 hexadecimal digits",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HeadSha {
    type Error = InvalidId;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<HeadSha> for String {
    fn from(sha: HeadSha) -> Self {
        sha.0
    }
}

/// GitHub's `X-GitHub-Delivery`: a GUID in practice; any short printable token is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeliveryId(String);

impl DeliveryId {
    const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        let raw = raw.trim();
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidId {
                kind: "delivery id",
                reason: "expected 1 to 128 characters",
            });
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidId {
                kind: "delivery id",
                reason: "expected printable ASCII",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeliveryId {
    type Error = InvalidId;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<DeliveryId> for String {
    fn from(id: DeliveryId) -> Self {
        id.0
    }
}

/// The key of a workflow-run group: one pull request's head commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupKey {
    pub repo_id: RepoId,
    pub pr_number: u64,
    pub head_sha: HeadSha,
}

impl GroupKey {
    /// The deterministic id of the trigger this group can fire (at most one per group).
    pub fn trigger_id(&self) -> TriggerId {
        let digest = Sha256::digest(self.to_string().as_bytes());
        TriggerId(format!("trg-{}", &hex::encode(digest)[..32]))
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{}#{}",
            self.repo_id.as_str(),
            self.pr_number,
            self.head_sha.as_str()
        )
    }
}

/// The id of a proactive trigger, derived from its group so that every path names it alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TriggerId(String);

impl TriggerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TriggerId {
    type Error = InvalidId;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        let well_formed = raw
            .strip_prefix("trg-")
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if well_formed {
            Ok(Self(raw))
        } else {
            Err(InvalidId {
                kind: "trigger id",
                reason: "expected trg-<32 hex digits>",
            })
        }
    }
}

impl From<TriggerId> for String {
    fn from(id: TriggerId) -> Self {
        id.0
    }
}

impl fmt::Display for TriggerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_refuses_blank_long_and_control_characters() {
        assert_eq!(UserId::parse("4f1c-a7").unwrap().as_str(), "4f1c-a7");
        assert_eq!(UserId::from_github(21031067).as_str(), "github:21031067");
        for bad in ["", "  ", "a\nb", &"x".repeat(256)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        let id: UserId = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"alice\"");
    }

    #[test]
    fn head_sha_is_lower_cased_and_length_checked() {
        let sha = HeadSha::parse("EC26C3E57CA3A959CA5AAD62DE7213C562F8C821").unwrap();
        assert_eq!(sha.as_str(), "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
        assert!(HeadSha::parse("ec26c3e").is_err());
        assert!(HeadSha::parse("zz26c3e57ca3a959ca5aad62de7213c562f8c821").is_err());
    }

    #[test]
    fn repo_id_round_trips_through_serde() {
        let id = RepoId::from_github(186853002);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"github##186853002\"");
        assert_eq!(serde_json::from_str::<RepoId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RepoId>("\"gitlab##1\"").is_err());
    }

    #[test]
    fn trigger_id_is_deterministic_per_group() {
        let key = |pr| GroupKey {
            repo_id: RepoId::from_github(1),
            pr_number: pr,
            head_sha: HeadSha::parse(&"a".repeat(40)).unwrap(),
        };
        assert_eq!(key(2).trigger_id(), key(2).trigger_id());
        assert_ne!(key(2).trigger_id(), key(3).trigger_id());
        let parsed: TriggerId = key(2).trigger_id().as_str().to_owned().try_into().unwrap();
        assert_eq!(parsed, key(2).trigger_id());
    }

    #[test]
    fn delivery_id_refuses_blank_and_control_characters() {
        assert!(DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").is_ok());
        assert!(DeliveryId::parse("  ").is_err());
        assert!(DeliveryId::parse("a\u{7}b").is_err());
    }
}
