//! The event samples of `events/eventbridge/` (each event as EventBridge delivers it: the trigger as the
//! API destination posts it to the nodes' `POST /internal/proactive`, a node's state change) against
//! their schemas in `events/schemas/` and the domain types; and the schemas themselves: JSON Schema
//! Draft 4 (the EventBridge schema registry's format), strict enough to refuse a broken event.

use e2e::event_schemas::{DRAFT_4, schema, violations};
use e2e::lambda_tools::workspace_root;
use e2e::webhook_samples::{HEAD_SHA, PR_NUMBER, REPOSITORY_ID};
use serde_json::{Value, json};
use shared::domain::state_changed::{
    ConversationStateChanged, NODE_SOURCE, STATE_CHANGED_DETAIL_TYPE,
};
use shared::domain::{
    ConversationId, GroupKey, HeadSha, ProactiveConversationRequested, RepoId, TRIGGER_DETAIL_TYPE,
    TRIGGER_SOURCE,
};

const TRIGGER_SAMPLE: &str = "events/eventbridge/proactive-conversation-requested.json";
const STATE_CHANGED_SAMPLE: &str = "events/eventbridge/conversation-state-changed.json";

fn read(relative: &str) -> Value {
    let path = workspace_root().join(relative);
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The samples' red commit, as the webhook samples describe it.
fn samples_group() -> GroupKey {
    GroupKey {
        repo_id: RepoId::from_github(REPOSITORY_ID),
        pr_number: PR_NUMBER,
        head_sha: HeadSha::parse(HEAD_SHA).expect("the samples' commit"),
    }
}

#[test]
fn the_delivered_event_sample_is_a_trigger_of_the_samples_red_commit() {
    let event = read(TRIGGER_SAMPLE);
    assert_eq!(event["source"], TRIGGER_SOURCE);
    assert_eq!(event["detail-type"], TRIGGER_DETAIL_TYPE);
    let errors = violations(TRIGGER_DETAIL_TYPE, &event["detail"]);
    assert!(errors.is_empty(), "{errors:?}");

    let detail: ProactiveConversationRequested =
        serde_json::from_value(event["detail"].clone()).expect("the domain type reads it");
    assert_eq!(detail.group_key(), samples_group());
    assert_eq!(detail.trigger_id, samples_group().trigger_id());
}

#[test]
fn the_state_change_sample_is_of_the_samples_proactive_conversation() {
    let event = read(STATE_CHANGED_SAMPLE);
    assert_eq!(event["source"], NODE_SOURCE);
    assert_eq!(event["detail-type"], STATE_CHANGED_DETAIL_TYPE);
    let errors = violations(STATE_CHANGED_DETAIL_TYPE, &event["detail"]);
    assert!(errors.is_empty(), "{errors:?}");

    let detail: ConversationStateChanged =
        serde_json::from_value(event["detail"].clone()).expect("the domain type reads it");
    let trigger_id = samples_group().trigger_id();
    assert_eq!(
        detail.conversation_id,
        ConversationId::for_trigger(&trigger_id)
    );
    assert_eq!(detail.trigger_id, Some(trigger_id));
}

/// Keywords JSON Schema added after Draft 4: the registry's Draft 4 would ignore them silently.
const LATER_KEYWORDS: [&str; 16] = [
    "$defs",
    "$id",
    "$anchor",
    "$comment",
    "const",
    "contains",
    "propertyNames",
    "examples",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
];

/// Every keyword used in `schema` (not the names of the properties or definitions it declares).
fn keywords(schema: &Value, found: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                if matches!(
                    key.as_str(),
                    "properties" | "definitions" | "patternProperties"
                ) {
                    for declared in value.as_object().into_iter().flat_map(|m| m.values()) {
                        keywords(declared, found);
                    }
                } else if key != "enum" {
                    found.push(key.clone());
                    keywords(value, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| keywords(item, found)),
        _ => {}
    }
}

#[test]
fn every_schema_is_draft_4() {
    let dir = workspace_root().join("events/schemas");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("events/schemas") {
        let name = entry.expect("a schema file").file_name();
        let name = name.to_string_lossy();
        let detail_type = name
            .strip_suffix(".schema.json")
            .unwrap_or_else(|| panic!("{name}: not <detail-type>.schema.json"));
        let schema = schema(detail_type);
        assert_eq!(schema["$schema"], DRAFT_4, "{name}");
        assert_eq!(schema["title"], detail_type, "{name}");
        if let Err(error) = jsonschema::draft4::meta::validate(&schema) {
            panic!("{name} is not a Draft 4 schema: {error}");
        }
        let mut used = Vec::new();
        keywords(&schema, &mut used);
        let later: Vec<_> = used
            .iter()
            .filter(|keyword| LATER_KEYWORDS.contains(&keyword.as_str()))
            .collect();
        assert!(
            later.is_empty(),
            "{name} uses keywords after Draft 4: {later:?}"
        );
        checked.push(detail_type.to_owned());
    }
    checked.sort();
    assert_eq!(checked, [STATE_CHANGED_DETAIL_TYPE, TRIGGER_DETAIL_TYPE]);
}

/// `sample`'s detail with `change` applied at the JSON pointer `at` (`None`: the field removed).
fn broken(sample: &str, at: &str, change: Option<Value>) -> Value {
    let mut detail = read(sample)["detail"].clone();
    let (parent, field) = at.rsplit_once('/').expect("a pointer");
    let parent = detail.pointer_mut(parent).expect("the field's parent");
    match change {
        Some(value) => parent[field] = value,
        None => {
            parent.as_object_mut().expect("an object").remove(field);
        }
    }
    detail
}

#[test]
fn the_schemas_refuse_a_broken_event() {
    // (the field's JSON pointer, its broken value; `None`: the field left out)
    let trigger = [
        ("/trigger_id", Some(json!("trg-1"))),
        ("/user_id", None),
        ("/pull_request/number", Some(json!(0))),
        ("/outcome", Some(json!("amber"))),
        ("/repository/url", Some(json!("not in the schema"))),
    ];
    let state_changed = [
        ("/new_state", Some(json!("user_confirmed"))),
        ("/old_state", Some(json!("asleep"))),
        ("/trigger_id", None),
        ("/event_id", Some(json!(-1))),
        ("/conversation_id", Some(json!("a b"))),
        ("/extra", Some(json!("not in the schema"))),
    ];
    let samples = [
        (TRIGGER_SAMPLE, TRIGGER_DETAIL_TYPE, &trigger[..]),
        (
            STATE_CHANGED_SAMPLE,
            STATE_CHANGED_DETAIL_TYPE,
            &state_changed[..],
        ),
    ];
    for (sample, detail_type, cases) in samples {
        for (at, change) in cases {
            let detail = broken(sample, at, change.clone());
            assert!(
                !violations(detail_type, &detail).is_empty(),
                "{detail_type} accepts {at} = {change:?}"
            );
        }
    }
    // The nulls the schema allows, and the first state of a conversation a user started.
    let mut first = read(STATE_CHANGED_SAMPLE)["detail"].clone();
    first["old_state"] = Value::Null;
    first["trigger_id"] = Value::Null;
    first["new_state"] = json!("loading");
    let errors = violations(STATE_CHANGED_DETAIL_TYPE, &first);
    assert!(errors.is_empty(), "{errors:?}");
}
