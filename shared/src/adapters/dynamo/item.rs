//! Reading and writing DynamoDB items: typed attribute access that reports undecodable items as
//! `StoreError::Corrupt`, sortable timestamps, update expressions, and the mapping of SDK failures.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ports::StoreError;

pub(super) type Item = HashMap<String, AttributeValue>;

/// The partition key attribute of every table.
pub(super) const PK: &str = "pk";
/// The sort key attribute of the proactive table.
pub(super) const SK: &str = "sk";

pub(super) fn string(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn number(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A UTC timestamp as a fixed-width string (`2026-01-02T03:04:05.123456789Z`), so that string order is
/// time order: the form of every timestamp used in a sort key or compared in a key condition.
pub(super) fn sortable_time(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A value that serialises to a JSON string (a snake_case enum) as that string.
pub(super) fn enum_name<T: Serialize>(value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        _ => Err(StoreError::Corrupt("value has no string form".into())),
    }
}

pub(super) fn json(value: &impl Serialize) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

/// Typed, named access to one item's attributes; `kind` names the item in error messages.
pub(super) struct Fields<'a> {
    kind: &'static str,
    item: &'a Item,
}

impl<'a> Fields<'a> {
    pub(super) fn of(kind: &'static str, item: &'a Item) -> Self {
        Self { kind, item }
    }

    fn corrupt(&self, name: &str, problem: &str) -> StoreError {
        StoreError::Corrupt(format!("{} item: attribute `{name}` {problem}", self.kind))
    }

    pub(super) fn opt_string(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value)),
            Some(_) => Err(self.corrupt(name, "is not a string")),
        }
    }

    pub(super) fn string(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_string(name)?
            .ok_or_else(|| self.corrupt(name, "is missing"))
    }

    pub(super) fn opt_number<T: FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(raw)) => raw
                .parse()
                .map(Some)
                .map_err(|_| self.corrupt(name, "is out of range")),
            Some(_) => Err(self.corrupt(name, "is not a number")),
        }
    }

    pub(super) fn number<T: FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_number(name)?
            .ok_or_else(|| self.corrupt(name, "is missing"))
    }

    pub(super) fn boolean(&self, name: &str) -> Result<bool, StoreError> {
        match self.item.get(name) {
            Some(AttributeValue::Bool(value)) => Ok(*value),
            Some(_) => Err(self.corrupt(name, "is not a boolean")),
            None => Err(self.corrupt(name, "is missing")),
        }
    }

    pub(super) fn time(&self, name: &str) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(self.string(name)?)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| self.corrupt(name, "is not a timestamp"))
    }

    /// A string attribute parsed into a domain type (an id newtype, a snake_case enum...).
    pub(super) fn parsed<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        let raw = self.string(name)?;
        serde_json::from_value(serde_json::Value::String(raw.to_owned()))
            .map_err(|_| self.corrupt(name, "has an unknown value"))
    }

    pub(super) fn opt_parsed<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.opt_string(name)? {
            None => Ok(None),
            Some(_) => self.parsed(name).map(Some),
        }
    }

    /// A string attribute holding a JSON document.
    pub(super) fn json<T: DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        serde_json::from_str(self.string(name)?)
            .map_err(|e| self.corrupt(name, &format!("is not valid JSON: {e}")))
    }
}

/// `SET #a0 = :a0, #a1 = :a1, ...` over `attributes`, with placeholders for every name (so that
/// reserved words such as `state` need no special care). Returns the expression and both maps.
pub(super) fn set_expression(
    attributes: Vec<(&'static str, AttributeValue)>,
) -> (String, HashMap<String, String>, Item) {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut assignments = Vec::with_capacity(attributes.len());
    for (i, (name, value)) in attributes.into_iter().enumerate() {
        names.insert(format!("#a{i}"), name.to_owned());
        values.insert(format!(":a{i}"), value);
        assignments.push(format!("#a{i} = :a{i}"));
    }
    (format!("SET {}", assignments.join(", ")), names, values)
}

/// A failed call: the operation and the cause, never the request or the service's message.
pub(super) fn unavailable<E: ProvideErrorMetadata, R>(
    operation: &str,
    error: &SdkError<E, R>,
) -> StoreError {
    StoreError::Unavailable(format!(
        "dynamodb {operation}: {}",
        crate::aws::failure_cause(error)
    ))
}

/// Whether a conditional write failed on its condition (rather than on the service or network).
pub(super) fn is_conditional_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

/// A request shape the SDK refused to build (a required field missing): a bug, reported, not panicked on.
pub(super) fn unbuilt(error: BuildError) -> StoreError {
    StoreError::Unavailable(format!("dynamodb request not built: {error}"))
}
