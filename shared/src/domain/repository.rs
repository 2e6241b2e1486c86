//! The repository registry's entry: a repository the GitHub App is installed on.

use serde::{Deserialize, Serialize};

use super::ids::{RepoId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub id: RepoId,
    pub owner: String,
    pub name: String,
    pub installation_id: Option<u64>,
    /// Login of the account the App was installed by (or on).
    pub account: String,
    /// The product user the repository belongs to (`github:<account id>` without an identity provider).
    pub user_id: UserId,
    pub proactive_enabled: bool,
}

impl Repository {
    /// This repository as a delivery names it: the installation the delivery came through, when it
    /// names one, is the current one (an App re-installed since the registration has a new id).
    pub fn with_installation(self, delivered: Option<u64>) -> Self {
        Self {
            installation_id: delivered.or(self.installation_id),
            ..self
        }
    }

    /// `owner/name` folded to lower case: GitHub names are case-insensitive.
    pub fn lookup_name(owner: &str, name: &str) -> String {
        format!("{owner}/{name}").to_lowercase()
    }

    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}
