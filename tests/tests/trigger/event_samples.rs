//! `events/eventbridge/proactive-conversation-requested.json`, the event as the API destination delivers
//! it to the nodes' `POST /internal/proactive`: the documented detail schema, the domain type, and the
//! trigger id of the webhook samples' red commit.

use e2e::lambda_tools::workspace_root;
use e2e::webhook_samples::{HEAD_SHA, PR_NUMBER, REPOSITORY_ID};
use serde_json::Value;
use shared::domain::{
    GroupKey, HeadSha, ProactiveConversationRequested, RepoId, TRIGGER_DETAIL_TYPE, TRIGGER_SOURCE,
};

fn read(relative: &str) -> Value {
    let path = workspace_root().join(relative);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_delivered_event_sample_is_a_trigger_of_the_samples_red_commit() {
    let event = read("events/eventbridge/proactive-conversation-requested.json");
    assert_eq!(event["source"], TRIGGER_SOURCE);
    assert_eq!(event["detail-type"], TRIGGER_DETAIL_TYPE);

    let schema = read("events/schemas/ProactiveConversationRequested.schema.json");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&event["detail"])
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let detail: ProactiveConversationRequested =
        serde_json::from_value(event["detail"].clone()).expect("the domain type reads it");
    let key = GroupKey {
        repo_id: RepoId::from_github(REPOSITORY_ID),
        pr_number: PR_NUMBER,
        head_sha: HeadSha::parse(HEAD_SHA).expect("the samples' commit"),
    };
    assert_eq!(detail.group_key(), key);
    assert_eq!(detail.trigger_id, key.trigger_id());
}
