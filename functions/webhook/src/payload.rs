//! The parts of GitHub's webhook payloads the product reads. Unknown fields are ignored (GitHub adds
//! them freely); a missing or mistyped field the product needs is reported with its path.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use shared::github::{ApiActor, ApiWorkflowRun};

/// A payload that did not parse; the message names the offending field (e.g. `workflow_run.head_sha`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct PayloadError {
    pub field: String,
    pub message: String,
}

/// Parses `body` as `T`, naming the field at fault on failure.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, PayloadError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let field = missing_field_name(&inner.to_string())
            .map(|missing| {
                if path == "." {
                    missing.to_owned()
                } else {
                    format!("{path}.{missing}")
                }
            })
            .unwrap_or(path);
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("body is not valid JSON: {inner}")
        } else {
            format!("field `{field}`: {inner}")
        };
        PayloadError { field, message }
    })
}

/// serde reports a missing field on its parent's path; the field itself is only in the message.
fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Account {
    pub login: String,
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InstallationRef {
    pub id: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RepositoryPayload {
    /// Required (a payload without it is refused), though the registry is looked up by name.
    #[allow(dead_code)]
    pub id: u64,
    pub name: String,
    pub full_name: String,
}

impl RepositoryPayload {
    /// The owner's login, taken from `full_name` (`owner/name`).
    pub(crate) fn owner(&self) -> &str {
        self.full_name
            .split_once('/')
            .map_or(&self.full_name, |(owner, _)| owner)
    }
}

/// `ping`: only the fact that it is one matters.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PingEvent {
    #[serde(default)]
    pub zen: Option<String>,
    #[serde(default)]
    pub hook_id: Option<u64>,
}

/// `installation`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InstallationEvent {
    pub action: String,
    pub installation: Installation,
    /// Listed on `created` (and sometimes other actions); absent otherwise.
    #[serde(default)]
    pub repositories: Vec<InstallationRepository>,
    pub sender: Account,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Installation {
    pub id: u64,
    pub account: Account,
}

/// A repository as installation events list it (no owner object; `full_name` carries it).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InstallationRepository {
    pub id: u64,
    pub name: String,
    pub full_name: String,
}

/// `installation_repositories`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InstallationRepositoriesEvent {
    pub action: String,
    pub installation: Installation,
    #[serde(default)]
    pub repositories_added: Vec<InstallationRepository>,
    #[serde(default)]
    pub repositories_removed: Vec<InstallationRepository>,
    pub sender: Account,
}

/// `workflow_run`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WorkflowRunEvent {
    pub action: String,
    pub workflow_run: ApiWorkflowRun,
    pub repository: RepositoryPayload,
    pub sender: ApiActor,
    #[serde(default)]
    pub installation: Option<InstallationRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/github-webhooks");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture present beside the checkout")
    }

    #[test]
    fn real_workflow_run_payloads_parse() {
        for name in [
            "workflow_run.completed.json",
            "workflow_run.completed.with-pull-requests.json",
            "workflow_run.requested.json",
            "workflow_run.requested.with-conclusion.json",
        ] {
            let event: WorkflowRunEvent =
                parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(event.workflow_run.head_sha.len(), 40, "{name}");
        }
        let with_pr: WorkflowRunEvent =
            parse(&fixture("workflow_run.completed.with-pull-requests.json")).unwrap();
        assert_eq!(with_pr.workflow_run.pull_requests[0].number, 2);
        assert_eq!(with_pr.repository.owner(), "octo-org");
    }

    #[test]
    fn a_missing_nested_field_is_named_with_its_path() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&fixture("workflow_run.completed.json")).unwrap();
        value["workflow_run"]
            .as_object_mut()
            .unwrap()
            .remove("head_sha");
        let error = parse::<WorkflowRunEvent>(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(error.field, "workflow_run.head_sha");
        assert!(
            error.message.contains("workflow_run.head_sha"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_mistyped_field_is_named_and_broken_json_is_reported_as_such() {
        let mut value: serde_json::Value =
            serde_json::from_slice(&fixture("workflow_run.completed.json")).unwrap();
        value["workflow_run"]["id"] = serde_json::json!("not a number");
        let error = parse::<WorkflowRunEvent>(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(error.field, "workflow_run.id");
        let error = parse::<WorkflowRunEvent>(b"{\"action\": ").unwrap_err();
        assert!(
            error.message.starts_with("body is not valid JSON"),
            "{}",
            error.message
        );
    }
}
