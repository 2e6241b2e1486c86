//! The event schemas of `events/schemas/` (JSON Schema Draft 4, a format the EventBridge schema registry
//! accepts), one per detail-type, each describing the event's `detail`.

use serde_json::Value;

use crate::lambda_tools::workspace_root;

/// The `$schema` every event schema declares.
pub const DRAFT_4: &str = "http://json-schema.org/draft-04/schema#";

/// The schema of `detail_type`'s `detail`: `events/schemas/<detail_type>.schema.json`.
pub fn schema(detail_type: &str) -> Value {
    let path = workspace_root().join(format!("events/schemas/{detail_type}.schema.json"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where `detail` breaks `detail_type`'s schema (the draft taken from its `$schema`), one line each.
pub fn violations(detail_type: &str, detail: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&schema(detail_type))
        .unwrap_or_else(|e| panic!("{detail_type}: not a valid schema: {e}"));
    validator
        .iter_errors(detail)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect()
}
